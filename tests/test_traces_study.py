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
def small_study(tmp_path_factory) -> dict[str, pd.DataFrame]:
    d = tmp_path_factory.mktemp("traces")
    rng = np.random.default_rng(1)
    n = 400
    pd.DataFrame({"arrived_at": np.cumsum(rng.exponential(0.5, n)),
                  "num_prefill_tokens": rng.integers(20, 400, n),
                  "num_decode_tokens": np.minimum(rng.geometric(1 / 60, n), 400)}).to_csv(d / "synthetic.csv", index=False)
    return study(d, n_offline=200, n_online=150, models=(("opt-13b", "a40x4"),))


def test_study_gains_and_correlation(small_study):
    g = small_study["gains"]
    assert list(g["bound"]) == ["p30", "inf"]
    assert (g["estimate_requests"] == 40).all() and (g["evaluate_requests"] == 360).all()
    assert (g["gain_des"] > 0).all() and (g["gain_expected"] > 0).all()
    assert (g["ft_slot_use"] <= 1).all()
    c = small_study["correlation"].iloc[0]
    assert c.requests == 400 and -1 <= c.pearson <= 1


def test_study_online_reports_every_policy(small_study):
    on = small_study["online"]
    assert set(on["policy"]) == {"ft", "rra", "waa-c", "waa-m"}
    ok = on[on.status == "ok"]
    assert len(ok) >= 2
    assert (ok["goodput_rps"] >= 0).all() and (ok["goodput_share"] <= 1).all()
    assert (ok["e2e_p99_s"] >= ok["e2e_p50_s"]).all() and (ok["ttft_p50_s"] > 0).all()


@pytest.mark.shared_data
def test_shared_traces_correlations():
    root = requires_shared("traces/splitwise_code.csv", "traces/splitwise_conv.csv")
    for name in ("splitwise_code", "splitwise_conv"):
        t = load_trace(root / "traces" / f"{name}.csv")
        p, s = correlation(t)
        assert -1 <= p <= 1 and -1 <= s <= 1
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
