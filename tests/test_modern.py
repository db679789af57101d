"""The baselines study (harness/studies/modern.py) and its figures/claims (harness/figures/modern.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness.config import build_scenario, compose
from harness.figures.modern import fig7_claims, ft_vs_baselines, modern_findings, online_findings
from harness.simulator.metrics import SimRecords
from harness.studies import modern, modern_online
from harness.studies.modern import ONLINE_COLUMNS, OnlineSettings, StudySettings
from harness.studies.modern_online import (
    goodput_slo_rps,
    online_metrics,
    request_latencies,
    slo_attained,
)


@pytest.mark.parametrize(("exp", "n_jobs"), [("fig7", 20), ("modern", 6), ("modern_full", 120)])
def test_experiment_configs_load(exp, n_jobs):
    st = modern.load_settings(exp)
    jobs = modern.jobs(exp, st)
    assert len(jobs) == n_jobs
    s = build_scenario(compose(jobs[0]))
    assert set(st.exegpt) <= set(st.policies)
    if exp == "fig7":
        assert (s.model.name, s.cluster.name) == ("opt-13b", "a40x4")
        assert {p: st.pins(p) for p in ("dsi", "vllm", "orca")} == {p: {"tp_degree": 4} for p in ("dsi", "vllm", "orca")}
    if exp == "modern":
        assert st.online is not None and st.online.bound == "inf" and st.online.slo_scale > 0


def _records() -> SimRecords:
    # three requests: arrival, first token, finish, output length
    arr = np.array([0.0, 1.0, 2.0])
    first = np.array([0.5, 1.5, 6.0])        # TTFT 0.5, 0.5, 4.0
    fin = np.array([2.5, 1.5, 7.0])          # out 5 -> TPOT 0.5; out 1 -> TPOT 0; out 3 -> TPOT 0.5
    out = np.array([5, 1, 3])
    z = np.zeros(3)
    return SimRecords(arr, arr, z, first, fin, np.array([8, 8, 8]), out, np.zeros(3, dtype=np.int64),
                      np.array([1.0]), np.array([1]), np.array([1]))


def test_slo_goodput_by_hand():
    rec = _records()
    lat = request_latencies(rec)
    assert lat["ttft_s"].tolist() == [0.5, 0.5, 4.0]
    assert lat["tpot_s"].tolist() == [0.5, 0.0, 0.5]
    assert lat["e2e_s"].tolist() == [2.5, 0.5, 5.0]
    assert slo_attained(rec, 1.0, 0.5).tolist() == [True, True, False]     # the third misses TTFT
    assert slo_attained(rec, 5.0, 0.4).tolist() == [False, True, False]    # TPOT 0.5 > 0.4
    assert goodput_slo_rps(rec, 1.0, 0.5) == pytest.approx(2 / 7.0)        # span: 0 -> 7 s
    m = online_metrics(rec, 1.0, 0.5)
    assert m["slo_attainment"] == pytest.approx(2 / 3) and m["throughput_rps"] == pytest.approx(3 / 7)
    assert m["ttft_p50_s"] == pytest.approx(0.5) and m["e2e_p50_s"] == pytest.approx(2.5)


def test_pinned_policy_hides_and_applies_its_knobs():
    from harness.policies import get_policy
    from harness.studies.common import scenario
    _, ctx = scenario(["model=opt-13b", "cluster=a40x4", "task=S"])
    name = modern.search_name("vllm", {"tp_degree": 4})
    assert name == "vllm[tp_degree=4]" and modern.search_name("vllm", {"tp_degree": 4}) == name
    p = get_policy(name)
    assert "tp_degree" not in {k.name for k in p.search_space(ctx)}
    assert p.engine == "vllm" and p.estimator == "discrete-event"
    plan = p.plan(ctx, {"max_num_seqs": 8})
    assert dict(plan.knobs)["tp_degree"] == 4 and dict(plan.derived)["replicas"] == 1


def test_offline_rows_schema_and_unloadable_policy():
    st = StudySettings(("dsi", "waa-c", "no-such-policy"), ("waa-c",), (("dsi", (("tp_degree", 4),)),))
    rows = pd.DataFrame(modern.offline_rows(compose(["experiment=fig7", "task=S", "bound=inf"]), st))
    assert rows["policy"].tolist() == ["ft", "dsi", "waa-c", "no-such-policy", "exegpt"]
    assert {"model", "cluster", "task", "bound", "policy", "status", "reason", "throughput_seq_s", "latency_s",
            "knobs", "engine", "estimator", "pinned", "speedup_over_ft", "chosen_policy"} <= set(rows.columns)
    by = rows.set_index("policy")
    assert by.loc["no-such-policy", "status"] == "failed"
    assert json.loads(by.loc["dsi", "knobs"])["tp_degree"] == 4 and by.loc["dsi", "pinned"] == '{"tp_degree": 4}'
    assert by.loc["exegpt", "throughput_seq_s"] == by.loc["waa-c", "throughput_seq_s"]
    assert by.loc["ft", "speedup_over_ft"] == pytest.approx(1.0)


def test_online_table_schema():
    on = OnlineSettings((("opt-13b", "S"),), "inf", (0.5,), 40, 5.0, ("no-such-trace.csv",))
    st = StudySettings(("waa-c",), ("waa-c",), (), on)
    t = modern_online.online_rows(st)
    assert list(t.columns) == ONLINE_COLUMNS
    ok = t[t["status"] == "ok"]
    assert set(ok["policy"]) == {"ft", "waa-c", "exegpt"}
    # oracle: WAA-C's row replayed by hand (its knobs, the Poisson stream at the row's rate,
    # seed 0) and its SLO metrics counted with numpy from the request stamps
    from harness.policies import get_policy
    from harness.simulator.discrete_event import simulate
    from harness.studies.common import scenario
    from harness.workload import poisson
    (row,) = ok[ok["policy"] == "waa-c"].itertuples()
    _, ctx = scenario(["model=opt-13b", "task=S", "use_paper_cluster=true"])
    plan = get_policy("waa-c").plan(ctx, json.loads(row.knobs))
    rec = simulate(plan, poisson(ctx.workload, 40, row.offered_rps, 0)).records
    ttft = rec.first_token_s - rec.arrival_s
    tpot = np.array([(f - s) / (n - 1) if n > 1 else 0.0
                     for f, s, n in zip(rec.finish_s, rec.first_token_s, rec.output_len, strict=True)])
    met = (ttft <= row.ttft_slo_s) & (tpot <= row.tpot_slo_s)
    span = rec.finish_s.max() - rec.arrival_s.min()
    assert row.requests == 40 and row.throughput_rps == pytest.approx(40 / span, rel=1e-12)
    assert row.slo_attainment == pytest.approx(met.mean(), rel=1e-12)
    assert row.goodput_rps == pytest.approx(met.sum() / span, rel=1e-12)
    assert row.ttft_p99_s == pytest.approx(np.quantile(ttft, 0.99), rel=1e-12)
    # ExeGPT's choice among {waa-c} is WAA-C itself: the same replay
    (ex,) = ok[ok["policy"] == "exegpt"].itertuples()
    assert (ex.chosen_policy, ex.goodput_rps, ex.slo_attainment) == ("waa-c", row.goodput_rps, row.slo_attainment)
    skipped = t[t["stream"] == "no-such-trace.csv"]
    assert len(skipped) >= 1 and (skipped["status"] == "skipped").all()


def _fig7_frame(vllm_thr: float, orca_status: str) -> pd.DataFrame:
    rows = []
    for task in ("S", "T"):
        for bound in ("p10", "inf"):
            rows += [{"model": "opt-13b", "task": task, "bound": bound, "policy": "ft", "status": "ok", "throughput_seq_s": 10.0},
                     {"model": "opt-13b", "task": task, "bound": bound, "policy": "dsi", "status": "ok", "throughput_seq_s": 9.0},
                     {"model": "opt-13b", "task": task, "bound": bound, "policy": "vllm", "status": "ok",
                      "throughput_seq_s": vllm_thr},
                     {"model": "opt-13b", "task": task, "bound": bound, "policy": "orca",
                      "status": orca_status if bound != "inf" else "ok", "throughput_seq_s": 5.0}]
    return pd.DataFrame(rows)


def test_fig7_claim_verdicts_on_synthetic_frames():
    holds = fig7_claims(_fig7_frame(8.0, "NS")).set_index("claim")
    beats, misses = holds.iloc[0], holds.iloc[1]
    assert beats["holds"] == "holds" and beats["ours_value"] == pytest.approx(100.0)
    assert misses["holds"] == "holds" and misses["ours_value"] == pytest.approx(100.0)   # NS at both finite bounds
    fails = fig7_claims(_fig7_frame(12.0, "ok")).set_index("claim")
    assert fails.iloc[0]["holds"] == "no: FT wins 8 of 12" and fails.iloc[0]["ours_value"] == pytest.approx(200 / 3)
    assert fails.iloc[1]["holds"] == "no" and fails.iloc[1]["ours_value"] == pytest.approx(0.0)
    pairs = ft_vs_baselines(_fig7_frame(12.0, "ok"))
    assert pairs.loc[pairs["baseline"] == "vllm", "ft_over_baseline"].tolist() == pytest.approx([10 / 12] * 4)


def test_findings_text_on_synthetic_frames():
    df = pd.DataFrame([
        {"model": "m", "task": "S", "bound": "inf", "policy": "exegpt", "status": "ok", "throughput_seq_s": 10.0},
        {"model": "m", "task": "S", "bound": "inf", "policy": "vllm", "status": "ok", "throughput_seq_s": 20.0},
        {"model": "m", "task": "T", "bound": "inf", "policy": "exegpt", "status": "ok", "throughput_seq_s": 10.0},
        {"model": "m", "task": "T", "bound": "inf", "policy": "vllm", "status": "NS", "throughput_seq_s": None}])
    _, win, lose = modern_findings(df)
    assert "in 1 of 2" in win and "m T inf" in win and "vLLM 20 vs ExeGPT 10 seq/s (2.00×)" in lose
    on = pd.DataFrame([{"model": "m", "task": "S", "stream": "poisson", "load": x, "policy": p, "status": "ok",
                        "goodput_rps": g, "slo_attainment": a}
                       for x, p, g, a in ((0.5, "vllm", 3.0, 1.0), (1.0, "vllm", 4.0, 0.5), (1.0, "exegpt", 2.0, 0.2))])
    (line,) = online_findings(on)
    assert "vLLM 4" in line and "ExeGPT 20%" in line


def test_narrowed_axes_run_from_overrides(tmp_path):
    """`make reproduce-quick`'s form: swept keys narrowed on the command line (`bound=p30,inf`)
    with the output folder taken from the config (runs_dir override), not from an argument."""
    out, tables, _ = modern.run(["experiment=fig7", "task=S", "bound=p30,inf", f"runs_dir={tmp_path}"])
    assert out == tmp_path / "fig7"
    df = tables["results"]
    assert set(df["bound"]) == {"p30", "inf"} and set(df["task"]) == {"S"}
    assert (tmp_path / "fig7" / "results.parquet").exists()
