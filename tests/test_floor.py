"""The repeatability floor of the fidelity study (harness.studies.floor): hand calculations,
and a perfect predictor on synthetic noisy runs as the oracle of its scaling."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.studies.floor import floor, loo_errors


def _runs(real: dict[str, list[float]], sim: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"config": c, "pass": k, "real_throughput_seq_s": x, "real_latency_p99len_s": 1 / x,
                          "sim_throughput_seq_s": sim[c], "sim_latency_p99len_s": 1 / sim[c]}
                         for c, xs in real.items() for k, x in enumerate(xs)])


def test_leave_one_out_errors_by_hand() -> None:
    # run 10: the others' mean 13 -> +30%, scaled by sqrt(2/3); run 12: 0; run 14: 11/14 - 1
    s = math.sqrt(2 / 3)
    assert loo_errors(np.array([10.0, 12.0, 14.0])) == pytest.approx([0.3 * s, 0.0, (11 / 14 - 1) * s])
    assert loo_errors(np.array([5.0, 5.0])) == pytest.approx([0.0, 0.0])
    assert np.isnan(loo_errors(np.array([5.0]))).all()


def test_floor_and_the_simulator_per_pass_by_hand() -> None:
    s = math.sqrt(2 / 3)
    runs = _runs({"a": [10, 12, 14], "b": [20, 20, 20], "one": [7]}, {"a": 12, "b": 22, "one": 7})
    out = floor(runs)
    assert out["floor_passes"] == 3 and out["floor_configs"] == 2          # "one" ran once: left out
    # |LOO| per pass (a, b): (0.3s, 0), (0, 0), (3/14 s, 0) -> medians .15s, 0, 3/28 s; maxima .3s, 0, 3/14 s
    assert out["floor_median_abs_err_throughput"] == pytest.approx(3 / 28 * s)
    assert out["floor_max_abs_err_throughput"] == pytest.approx(3 / 14 * s)
    # simulator 12 and 22 against each pass: (.2, .1), (0, .1), (1/7, .1)
    assert out["sim_per_run_median_abs_err_throughput"] == pytest.approx((1 / 7 + 0.1) / 2)
    assert out["sim_per_run_max_abs_err_throughput"] == pytest.approx(1 / 7)
    # latency 1/x: a's runs 1/10, 1/12, 1/14, the others' mean for run 1/10 is 13/168
    assert out["sim_per_run_max_abs_err_latency"] == pytest.approx(1 / 6)         # (1/12) / (1/10) - 1
    assert out["floor_max_abs_err_latency"] == pytest.approx(abs((1 / 12 + 1 / 14) / 2 * 10 - 1) * s)
    # hindsight: a's runs 10..14 -> no p within 4/24 of all three (p = 2/(1/10 + 1/14) = 11.67); b's 0
    assert out["hindsight_max_abs_err_throughput"] == pytest.approx(4 / 24)
    assert out["hindsight_median_abs_err_throughput"] == pytest.approx(2 / 24)
    assert out["hindsight_over_target_throughput"] == 1 and out["hindsight_over_target_latency"] == 1
    p = 2 / (1 / 10 + 1 / 14)
    assert max(abs(p / x - 1) for x in (10, 12, 14)) == pytest.approx(4 / 24)
    assert floor(_runs({"one": [7]}, {"one": 7})) == {}
    assert floor(pd.DataFrame([])) == {}                      # every configuration failed: no runs


def test_floor_estimates_what_a_perfect_predictor_scores() -> None:
    """Oracle: runs are mu * (1 + e), e ~ N(0, 8%); a predictor that outputs mu exactly has the
    error the floor must estimate, without knowing mu."""
    rng = np.random.default_rng(7)
    mu = rng.uniform(2, 60, 2000)
    real = {str(i): list(m * (1 + rng.normal(0, 0.08, 3))) for i, m in enumerate(mu)}
    out = floor(_runs(real, {str(i): m for i, m in enumerate(mu)}))
    assert out["floor_median_abs_err_throughput"] == pytest.approx(out["sim_per_run_median_abs_err_throughput"], rel=0.06)
    assert out["floor_max_abs_err_throughput"] == pytest.approx(out["sim_per_run_max_abs_err_throughput"], rel=0.15)
    # hindsight by hand: the best constant p for runs in [lo, hi] misses both ends by
    # (hi - lo) / (hi + lo) (p = 2 / (1/lo + 1/hi)); a lower bound on the exact predictor's misses
    runs = _runs(real, {str(i): m for i, m in enumerate(mu)})
    worst = (runs.sim_throughput_seq_s / runs.real_throughput_seq_s - 1).abs().groupby(runs.config).max()
    spread = runs.groupby("config").real_throughput_seq_s.agg(lambda x: (x.max() - x.min()) / (x.max() + x.min()))
    assert out["hindsight_max_abs_err_throughput"] == pytest.approx(spread.max())
    assert out["hindsight_median_abs_err_throughput"] == pytest.approx(spread.median())
    assert out["hindsight_max_abs_err_throughput"] <= worst.max() and out["hindsight_median_abs_err_throughput"] <= worst.median()
    # without the sqrt((R-1)/R) scaling the estimate would be 22% high, outside the tolerance
    assert out["floor_median_abs_err_throughput"] / math.sqrt(2 / 3) > 1.12 * out["sim_per_run_median_abs_err_throughput"]
