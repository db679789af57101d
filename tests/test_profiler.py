"""Profiler grid validation (fails before timing), the profiled cost model's interpolation on a
synthetic table with known values, CLI errors, and (slow) the CI-sized real run:
profile + `harness fidelity runner.fidelity.size=tiny` on the 2-worker mini-cluster."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from helpers import PROFILE_GRID as GRID
from helpers import cpu_scenario as scenario
from helpers import synthetic_profile as _synthetic

from harness.cli.main import main
from harness.cost_model import get_cost_model
from harness.cost_model.profiled import ProfiledCostModel, profile_path
from harness.errors import UserError
from harness.policies import Context, get_policy
from harness.profiler.profile import build_grid, points
from harness.simulator.expected import evaluate


def test_every_profile_op_has_a_timing_and_the_grid_makes_only_those() -> None:
    from harness.cost_model.profiled import PROFILE_OPS
    from harness.profiler.bench import COMM_OPS, LAYER_OPS, PIPE_OPS
    assert sorted([*LAYER_OPS, *COMM_OPS, *PIPE_OPS]) == sorted(PROFILE_OPS)
    for m in ("opt-20m", "t5-20m"):
        s = scenario(f"model={m}")
        ops = {p.op for p in points(build_grid(GRID, s.model, s.cluster), s.model)}
        assert ops == set(PROFILE_OPS) - ({"cross_kv"} if m == "opt-20m" else set())


@pytest.mark.parametrize(("patch", "field"), [
    ({"batch_sizes": []}, "runner.profile.batch_sizes"),
    ({"batch_sizes": [0, 2]}, "runner.profile.batch_sizes"),
    ({"tp_degrees": [3]}, "runner.profile.tp_degrees"),
    ({"tp_degrees": [4]}, "runner.profile.tp_degrees"),
    ({"repeats": 0}, "runner.profile.repeats"),
    ({"bogus": 1}, "runner.profile"),
])
def test_bad_grid_is_a_one_line_error_naming_the_field(patch, field) -> None:
    s = scenario("model=opt-20m")
    with pytest.raises(UserError) as e:
        build_grid({**GRID, **patch}, s.model, s.cluster)
    assert str(e.value).startswith(field) and "\n" not in str(e.value)


def test_a_model_without_a_real_engine_is_refused_before_timing() -> None:
    s = scenario("model=opt-13b")
    with pytest.raises(UserError, match="model: opt-13b needs .* GB of float32 weights"):
        build_grid(GRID, s.model, s.cluster)
    s = scenario("model=llama2-7b")
    with pytest.raises(UserError, match="model.family.*valid: t5, opt, gpt"):
        build_grid(GRID, s.model, s.cluster)


def test_cli_profile_fails_before_starting_workers(capsys) -> None:
    assert main(["profile", "model=opt-20m", "cluster=cpu-2w", "runner.profile.tp_degrees=[3]"]) == 2
    assert "runner.profile.tp_degrees" in capsys.readouterr().err


def test_cli_run_needs_the_profiled_cost_model_on_cpu(capsys) -> None:
    assert main(["run", "model=opt-20m", "cluster=cpu-2w", "task=T-cpu", "policy=ft"]) == 2
    assert "cost_model=profiled" in capsys.readouterr().err


def test_profiled_cost_model_interpolates_the_table(tmp_path) -> None:
    s = scenario("model=opt-20m", "task=T-cpu")
    _synthetic(s.model, s.cluster, profile_path(tmp_path, s.model, s.cluster))
    cm = ProfiledCostModel(s.cluster, tmp_path)
    assert cm.encode_layer(s.model, 4, 16, 1).total_s == pytest.approx(1e-3 + 1e-5 * 64)
    assert cm.decode_layer(s.model, 4, 32, 1).total_s == pytest.approx(1e-3 + 4e-4 + 1.28e-4)
    # linear between grid points and beyond them (attention is linear in batch and context)
    assert cm.decode_layer(s.model, 8, 20, 1).total_s == pytest.approx(1e-3 + 8e-4 + 1.6e-4)
    assert cm.decode_layer(s.model, 32, 64, 1).total_s == pytest.approx(1e-3 + 3.2e-3 + 2.048e-3)
    # the runner's cache rewrites (compaction / join), bilinear in (rows, context): exact for b * ctx
    assert cm.kv_copy_s(s.model, 8, 20, 1) == pytest.approx(2e-5 + 1.6e-5)
    assert cm.kv_copy_s(s.model, 8, 20, 1, kind="join") == pytest.approx(4e-5 + 3.2e-5)
    assert cm.kv_copy_s(s.model, 0, 20, 1) == 0.0
    lt = cm.decode_layer(s.model, 4, 32, 2)
    assert lt.total_s == pytest.approx((1e-3 + 4e-4 + 1.28e-4) / 2) and lt.comm_s > 0
    assert cm.lm_head_s(s.model, 4, 1) == pytest.approx(5.4e-4)
    assert cm.p2p_s(1024) == pytest.approx(5e-5 + 1024e-9)
    assert cm.allreduce_s(1e6, 2) > cm.allreduce_s(1e3, 2) > 0 == cm.allreduce_s(1e6, 1)
    est = evaluate(get_policy("rra").plan(Context(s.model, s.cluster, s.workload, cm),
                                          {"encode_batch_size": 4, "decode_iters": 4}), s.workload)
    assert est.feasible and math.isfinite(est.throughput_seq_s) and est.throughput_seq_s > 0


def test_waa_t5_encode_worker_pays_the_cross_kv_projection(tmp_path) -> None:
    """The runner's WAA encode worker projects every decoder layer's cross K/V after its
    encoder stack (programs._waa_encoder); the profiled model charges it there, by hand:
    4 encoder layers x (1 ms + 10 us * 4 * 16 tokens) + 4 decoder layers x 2 us * 64 tokens."""
    import dataclasses
    s = scenario("model=t5-20m", "task=T-cpu")
    _synthetic(s.model, s.cluster, profile_path(tmp_path, s.model, s.cluster))
    assert (s.model.num_encoder_layers, s.model.num_decoder_layers) == (4, 4)
    cm = ProfiledCostModel(s.cluster, tmp_path)
    plan = get_policy("waa-c").plan(Context(s.model, s.cluster, s.workload, cm), {"encode_batch_size": 4})
    assert plan.costs.encode_s(4, 16) == pytest.approx(4 * (1e-3 + 1e-5 * 64) + 4 * 2e-6 * 64)
    off = dataclasses.replace(cm, cross_kv_on_encoder=False)      # GPU cost models: not modelled
    plan = get_policy("waa-c").plan(Context(s.model, s.cluster, s.workload, off), {"encode_batch_size": 4})
    assert plan.costs.encode_s(4, 16) == pytest.approx(4 * (1e-3 + 1e-5 * 64))


def test_speed_drift_prices_every_call_at_its_own_shape(tmp_path) -> None:
    from harness.runner.drift import CALL_COLUMNS, speed_drift
    s = scenario("model=opt-20m", "task=T-cpu")
    _synthetic(s.model, s.cluster, profile_path(tmp_path, s.model, s.cluster))
    cm = ProfiledCostModel(s.cluster, tmp_path)
    one, two = 1e-3 + 4e-4 + 1.28e-4, 1e-3 + 8e-4 + 1.6e-4      # decode_layer(4, 32), (8, 20): above
    calls = np.array([[0, 4, 32, 0, 2, 1, 2 * one * 1.5],          # CALL_COLUMNS, 2 layers each,
                      [1, 8, 20, 0, 2, 1, 2 * two * 1.0]])          # one 50% slow, one on time
    assert len(CALL_COLUMNS) == calls.shape[1]
    assert speed_drift(cm, s.model, calls) == pytest.approx((3 * one + 2 * two) / (2 * one + 2 * two))
    assert math.isnan(speed_drift(cm, s.model, np.zeros((0, len(CALL_COLUMNS)))))


def test_profiled_cost_model_without_a_profile_says_how_to_make_one(tmp_path) -> None:
    s = scenario("model=gpt2-20m")
    cm = get_cost_model("profiled", s.cluster)
    cm = ProfiledCostModel(s.cluster, tmp_path)
    with pytest.raises(UserError, match="harness profile model=gpt2-20m cluster=cpu-2w"):
        cm.decode_layer(s.model, 1, 8, 1)


@pytest.mark.slow
def test_ci_sized_profile_and_fidelity_run(tmp_path, capsys, request) -> None:
    """The tiny real-engine run CI executes (< 3 min): a small profile of opt-20m, then three
    configurations (FT, RRA 2-stage pipeline, WAA) real vs simulated, twice each. It takes ~1 min of both
    cores, so it runs only when selected: `pytest -m slow tests/test_profiler.py`."""
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("real-engine run: select it with -m slow")
    grid = ["runner.profile.batch_sizes=[1,4,16,32]", "runner.profile.encode_lengths=[4,16,64]",
            "runner.profile.decode_contexts=[4,32,64]", "runner.profile.repeats=3",
            f"runner.profile.out_dir={tmp_path / 'profiles'}"]
    assert main(["fidelity", "runner.fidelity.size=tiny", "runner.progress=false", "runner.fidelity.repeats=2",
                 f"runner.fidelity.out_dir={tmp_path / 'fid'}", *grid]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["configs"] == 3 and out["ok"] == 3 and out["profiled_now"] == ["opt-20m"]
    df = pd.read_csv(tmp_path / "fid" / "fidelity-tiny.csv")
    assert (tmp_path / "fid" / "fidelity-tiny.png").stat().st_size > 10_000
    # FT and RRA are deterministic schedules: the real decoding batch is the simulator's
    det = df[df.policy.isin(["ft", "rra"])]
    assert (det.real_decode_batch_mean - det.sim_decode_batch_mean).abs().max() < 1e-9
    assert df[["err_throughput", "err_latency"]].notna().all().all()
    assert (df.real_throughput_seq_s > 0).all()
    # the profile's 3 rounds were taken around the runs, and the plans re-made on the final
    # table schedule the same work as the ones executed
    prof = pd.read_parquet(tmp_path / "profiles" / "opt-20m-cpu-2w.parquet")
    assert set(prof[~prof.op.isin(["allreduce", "p2p"])].repeats) == {3}
    assert df.replanned.all()
    # every run timed its decode-stack calls against the profile (harness.runner.drift); the
    # drift-scaled errors are the simulated metrics at that speed: throughput / drift, latency * drift
    assert (df.speed_drift > 0).all() and df[["err_throughput_drift", "err_latency_drift"]].notna().all().all()
    assert df.err_throughput_drift.to_numpy() == pytest.approx(
        (df.sim_throughput_seq_s / df.speed_drift / df.real_throughput_seq_s - 1).to_numpy())
    assert df.err_latency_drift.to_numpy() == pytest.approx(
        (df.sim_latency_p99len_s * df.speed_drift / df.real_latency_p99len_s - 1).to_numpy())
    assert out["median_abs_err_throughput_drift"] == pytest.approx(df.err_throughput_drift.abs().median())
    assert out["max_abs_err_latency"] == pytest.approx(df.err_latency.abs().max())
    # two passes: every run is kept in the runs table, and the repeatability floor is computed
    runs = pd.read_csv(tmp_path / "fid" / "fidelity-runs-tiny.csv")
    assert len(runs) == 6 and sorted(runs["pass"]) == [0, 0, 0, 1, 1, 1] and runs.kept.sum() == 3
    assert (runs.speed_drift > 0).all() and out["floor_passes"] == 2
    # every predictor per run, beside the floor of the same runs (harness.studies.floor.vs_floor)
    assert {"ev_throughput_seq_s", "ev_latency_s"} <= set(runs.columns) and out["vs_floor"]["measured"]
    assert {r["predictor"] for r in out["vs_floor"]["rows"]} == {"discrete-event", "discrete-event, pipeline points",
                                                                  "expected-value", "drift-scaled"}
    # the floor and the hindsight bound by hand from the two runs (a, b) of each configuration:
    # leave-one-out with R = 2 predicts run a by b, scaled by sqrt(1/2): |b/a - 1| / sqrt(2) (and
    # |a/b - 1| / sqrt(2) for run b); per pass the median and max over the 3 configurations, then
    # the median (= mean) of the two passes. Hindsight: |a - b| / (a + b) per configuration.
    by = {c: g.sort_values("pass") for c, g in runs.groupby("config")}
    thr = {c: g.real_throughput_seq_s.to_numpy() for c, g in by.items()}
    lat = {c: g.real_latency_p99len_s.to_numpy() for c, g in by.items()}
    loo = [[abs(x[1 - k] / x[k] - 1) / math.sqrt(2) for x in thr.values()] for k in (0, 1)]
    assert out["floor_median_abs_err_throughput"] == pytest.approx(np.mean([np.median(p) for p in loo]))
    assert out["floor_max_abs_err_throughput"] == pytest.approx(np.mean([max(p) for p in loo]))
    hind = [abs(x[0] - x[1]) / (x[0] + x[1]) for x in lat.values()]
    assert out["hindsight_median_abs_err_latency"] == pytest.approx(np.median(hind))
    assert out["hindsight_max_abs_err_latency"] == pytest.approx(max(hind))


def test_profile_rounds_are_spread_evenly_between_the_runs() -> None:
    from harness.studies.fidelity import between_runs
    assert between_runs(9, 2) == [3, 6]          # 9 configurations, rounds 2 and 3 of 3
    assert between_runs(27, 2) == [9, 18]        # 3 passes (runner.fidelity.repeats=3)
    assert between_runs(1, 2) == [0, 1]          # one run: one round before it, one after
    assert between_runs(5, 0) == []


@pytest.mark.parametrize("bad", ["repeats=0", "ct2=maybe", "ratio=3"])
def test_fidelity_rejects_bad_settings_before_any_work(bad, capsys) -> None:
    assert main(["fidelity", f"runner.fidelity.{bad}", "runner.fidelity.size=tiny"]) == 2
    assert f"runner.fidelity.{bad.split('=')[0]}" in capsys.readouterr().err
