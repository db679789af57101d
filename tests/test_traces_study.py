"""Real-trace study (ExeGPT §7.5, Fig. 10): seeded 10/90 split, input/output correlation,
the study's tables on a small synthetic trace, and (where ../shared has them) the real traces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import requires_shared

from harness.studies.traces import correlation, study
from harness.workload import Trace, load_trace


def _trace(n: int = 1000) -> Trace:
    return Trace(np.arange(1, n + 1), np.full(n, 5), np.linspace(0, 100, n), name="t")


def test_split_is_deterministic_disjoint_and_ordered():
    t = _trace()
    est, ev = t.split(0.1, seed=7)
    est2, ev2 = t.split(0.1, seed=7)
    np.testing.assert_array_equal(est.input_len, est2.input_len)
    np.testing.assert_array_equal(ev.input_len, ev2.input_len)
    assert len(est) == 100 and len(ev) == 900
    a, b = set(est.input_len.tolist()), set(ev.input_len.tolist())      # inputs are unique ids
    assert not a & b and a | b == set(range(1, 1001))
    assert np.all(np.diff(ev.arrival_s) >= 0) and np.all(np.diff(est.input_len) > 0)
    assert set(t.split(0.1, seed=8)[0].input_len.tolist()) != a


def test_correlation_of_synthetic_trace():
    """Bivariate normal with rho 0.6, shifted far from 0 so rounding barely matters: Pearson ~
    0.6, Spearman ~ (6/pi) asin(rho/2) = 0.582 (Pearson's formula for the normal); an
    independent pair gives ~0."""
    rng = np.random.default_rng(0)
    z = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=20000)
    t = Trace(np.rint(1000 + 100 * z[:, 0]), np.rint(500 + 50 * z[:, 1]), None)
    p, s = correlation(t)
    assert p == pytest.approx(0.6, abs=0.02)
    assert s == pytest.approx(6 / np.pi * np.arcsin(0.3), abs=0.02)
    ind = Trace(np.rint(1000 + 100 * z[:, 0]), rng.integers(1, 500, 20000), None)
    assert abs(correlation(ind)[0]) < 0.03
    assert np.isnan(correlation(Trace(np.full(5, 3), np.arange(1, 6), None))[0])


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory):
    """400 requests, Poisson arrivals (mean gap 0.5 s), inputs and outputs drawn independently."""
    path = tmp_path_factory.mktemp("traces") / "synthetic.csv"
    rng = np.random.default_rng(1)
    n = 400
    pd.DataFrame({"arrived_at": np.cumsum(rng.exponential(0.5, n)),
                  "num_prefill_tokens": rng.integers(20, 400, n),
                  "num_decode_tokens": np.minimum(rng.geometric(1 / 60, n), 400)}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def small_study(synthetic_csv) -> dict[str, pd.DataFrame]:
    return study(synthetic_csv.parent, n_offline=200, n_online=150, models=(("opt-13b", "a40x4"),))


def test_study_gains_and_correlation(small_study, synthetic_csv):
    g = small_study["gains"]
    assert list(g["bound"]) == ["p30", "inf"]
    assert (g["estimate_requests"] == 40).all() and (g["evaluate_requests"] == 360).all()
    # ExeGPT above FT under the same bound in both simulators (§8; real datasets: 4.4x average)
    assert (g["gain_des"] > 1).all() and (g["gain_expected"] > 1).all()
    # FT's slot use by hand: it runs the first 200 evaluation requests in batches of ft_batch,
    # each batch holding all its slots until its longest output ends (§1's white boxes):
    # tokens made / slot-iterations = sum(outputs) / sum over batches of (size x longest output)
    out = load_trace(synthetic_csv).split(0.1, seed=0)[1].output_len[:200]
    for _, row in g.iterrows():
        batches = [out[i:i + row.ft_batch] for i in range(0, len(out), row.ft_batch)]
        assert row.ft_slot_use == pytest.approx(out.sum() / sum(len(b) * b.max() for b in batches), rel=1e-12)
    # the correlations against pandas on the raw CSV (independent draws: near 0, |r| < 3/sqrt(400))
    raw = pd.read_csv(synthetic_csv)
    c = small_study["correlation"].iloc[0]
    assert c.requests == 400
    assert c.pearson == pytest.approx(raw.num_prefill_tokens.corr(raw.num_decode_tokens), abs=1e-12)
    assert c.spearman == pytest.approx(raw.num_prefill_tokens.corr(raw.num_decode_tokens, method="spearman"),
                                       abs=1e-12)
    assert abs(c.pearson) < 0.15


def test_study_online_reports_every_policy(small_study, synthetic_csv):
    on = small_study["online"]
    assert set(on["policy"]) == {"ft", "rra", "waa-c", "waa-m"}
    ok = on[on.status == "ok"]
    assert len(ok) >= 2
    assert (ok["ttft_p50_s"] > 0).all() and (ok["ttft_p50_s"] <= ok["e2e_p50_s"]).all()
    # oracle: FT's row replayed by hand (its batch, the trace's own arrivals of the first 150
    # evaluation requests), latencies and goodput counted with numpy
    import ast
    from dataclasses import replace

    from harness.policies import get_policy
    from harness.simulator.discrete_event import simulate
    from harness.studies.common import scenario
    from harness.workload import replay
    est, ev = load_trace(synthetic_csv).split(0.1, seed=0)
    ctx = replace(scenario(["model=opt-13b", "cluster=a40x4"])[1], workload=est.workload())
    (row,) = ok[(ok.policy == "ft") & (ok.load == "trace")].itertuples()
    rec = simulate(get_policy("ft").plan(ctx, ast.literal_eval(row.knobs)), replay(ev, 150)).records
    e2e = rec.finish_s - rec.arrival_s
    assert row.requests == len(e2e) == 150
    assert (row.e2e_p50_s, row.e2e_p99_s) == pytest.approx((np.median(e2e), np.quantile(e2e, 0.99)), rel=1e-12)
    assert row.goodput_share == pytest.approx(np.mean(e2e <= row.bound_s), rel=1e-12)
    assert row.goodput_rps == pytest.approx((e2e <= row.bound_s).sum() / (rec.finish_s.max() - rec.arrival_s.min()),
                                            rel=1e-12)


@pytest.mark.shared_data
def test_shared_traces_correlations():
    root = requires_shared("traces/splitwise_code.csv", "traces/splitwise_conv.csv")
    for name in ("splitwise_code", "splitwise_conv"):
        t = load_trace(root / "traces" / f"{name}.csv")
        p, s = correlation(t)
        raw = pd.read_csv(root / "traces" / f"{name}.csv")          # pandas on the file itself
        assert p == pytest.approx(raw.num_prefill_tokens.corr(raw.num_decode_tokens), abs=1e-9)
        assert s == pytest.approx(raw.num_prefill_tokens.corr(raw.num_decode_tokens, method="spearman"), abs=1e-9)
        assert p == pytest.approx(t.correlation(), abs=1e-9)


@pytest.mark.slow
@pytest.mark.shared_data
def test_run_on_shared_traces(tmp_path):
    shared = requires_shared("traces/splitwise_code.csv")
    from harness.cli.output import write_study
    from harness.figures.traces import fig10, summary
    from harness.studies.traces import study
    tables = study(shared / "traces", n_offline=300, n_online=300)
    write_study(tmp_path / "fig10", tables, {"fig10": fig10(tables["gains"], tables["online"])},
                {"summary.md": summary(tables)})
    assert (tmp_path / "fig10" / "summary.md").exists() and (tmp_path / "fig10" / "fig10.png").exists()
    assert tables["gains"]["gain_des"].notna().any()
