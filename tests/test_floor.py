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


# ---- every number beside the floor (issue 20, point 3) -------------------------------------------
def test_verdict_rule_by_hand() -> None:
    from harness.studies.floor import verdict
    assert verdict(0.09, 0.07) == "at the floor"                        # exactly 2 points above
    assert verdict(0.03, 0.06) == "at the floor"                        # below it
    assert verdict(0.121, 0.10) == "above the floor by 2.1 points"
    assert verdict(0.137, 0.066) == "above the floor by 7.1 points"
    assert verdict(0.05, None) == verdict(0.05, math.nan) == "floor not measured"


def _two_pass_runs() -> pd.DataFrame:
    """a (rra): runs 10, 15, simulator 12, expected-value 15, drift 1.25 then 0.8; b (ft): runs
    20, 20, simulator 22, expected-value 30, drift 1.1; `one` (ft) ran once (left out)."""
    rows = [("a", "rra", 0, 10, 12, 15, 1.25), ("a", "rra", 1, 15, 12, 15, 0.8),
            ("b", "ft", 0, 20, 22, 30, 1.1), ("b", "ft", 1, 20, 22, 30, 1.1), ("one", "ft", 0, 7, 70, 70, 1.0)]
    return pd.DataFrame([{"config": c, "policy": p, "pass": k, "real_throughput_seq_s": x,
                          "real_latency_p99len_s": 1 / x, "sim_throughput_seq_s": s, "sim_latency_p99len_s": 1 / s,
                          "ev_throughput_seq_s": e, "ev_latency_s": 1 / e, "speed_drift": d}
                         for c, p, k, x, s, e, d in rows])


def _row(out: dict, scope: str, pred: str, metric: str = "throughput") -> dict:
    (r,) = [r for r in out["rows"] if (r["scope"], r["predictor"], r["metric"]) == (scope, pred, metric)]
    return r


def test_every_predictor_beside_the_floor_by_hand() -> None:
    from harness.studies.floor import vs_floor
    out = vs_floor(_two_pass_runs())
    assert out["measured"] and out["note"] is None and out["margin"] == 0.02
    s = math.sqrt(1 / 2)                       # R = 2: leave-one-out scaled by sqrt(1/2)
    # floor: a's LOO 0.5 s (pass 0), -1/3 s (pass 1); b's 0 -> per pass median 0.25 s, 1/6 s; max 0.5 s, 1/3 s
    des = _row(out, "all", "discrete-event")
    assert des["configs"] == 2                                            # `one` left out
    assert des["floor_median_abs_err"] == pytest.approx(5 / 24 * s)
    assert des["floor_max_abs_err"] == pytest.approx(5 / 12 * s)
    assert des["hindsight_max_abs_err"] == pytest.approx(5 / 25)          # a: (15 - 10) / (15 + 10)
    # simulator 12, 22 against (10, 20) and (15, 20): |0.2|, 0.1 each pass
    assert des["median_abs_err"] == pytest.approx(0.15) and des["max_abs_err"] == pytest.approx(0.2)
    assert des["median_verdict"] == "at the floor" and des["max_verdict"] == "at the floor"   # 0.15 vs 0.147
    # expected-value 15, 30: pass 0 (0.5, 0.5), pass 1 (0, 0.5) -> median (0.5 + 0.25) / 2, max 0.5
    ev = _row(out, "all", "expected-value")
    assert ev["median_abs_err"] == pytest.approx(0.375) and ev["max_abs_err"] == pytest.approx(0.5)
    assert ev["median_verdict"] == f"above the floor by {100 * (0.375 - 5 / 24 * s):.1f} points" == \
        "above the floor by 22.8 points"
    assert ev["max_verdict"] == "above the floor by 20.5 points"           # 0.5 - 5/12 s
    # at the run's speed: 12 / 1.25 = 9.6 vs 10, 12 / 0.8 = 15 vs 15, 22 / 1.1 = 20 vs 20
    dr = _row(out, "all", "drift-scaled")
    assert dr["median_abs_err"] == pytest.approx(0.01) and dr["max_abs_err"] == pytest.approx(0.02)
    # latency: 1/12 against 1/10 and 1/15 -> 10/12 - 1 and 15/12 - 1; b 20/22 - 1
    lat = _row(out, "all", "discrete-event", "latency")
    assert lat["max_abs_err"] == pytest.approx((1 / 6 + 1 / 4) / 2)


def test_each_policy_against_its_own_floor_by_hand() -> None:
    from harness.studies.floor import vs_floor
    out = vs_floor(_two_pass_runs())
    s = math.sqrt(1 / 2)
    rra, ft = _row(out, "rra", "discrete-event"), _row(out, "ft", "discrete-event")
    assert (rra["configs"], ft["configs"]) == (1, 1)
    # rra = a alone: floor per pass 0.5 s and 1/3 s -> 5/12 s (median and max alike)
    assert rra["floor_median_abs_err"] == pytest.approx(5 / 12 * s) and rra["median_abs_err"] == pytest.approx(0.2)
    assert rra["median_verdict"] == "at the floor"
    assert _row(out, "rra", "expected-value")["median_abs_err"] == pytest.approx(0.25)      # (0.5 + 0) / 2
    # ft = b alone (ran 20, 20: no noise): floor 0, simulator 10% off, expected-value 50%
    assert ft["floor_median_abs_err"] == pytest.approx(0.0, abs=1e-12)
    assert ft["median_verdict"] == "above the floor by 10.0 points"
    assert _row(out, "ft", "expected-value")["median_verdict"] == "above the floor by 50.0 points"
    assert _row(out, "ft", "drift-scaled")["median_verdict"] == "at the floor"              # 22 / 1.1 = 20


def test_one_run_each_says_the_floor_was_not_measured() -> None:
    from harness.studies.floor import NO_FLOOR, vs_floor
    out = vs_floor(_two_pass_runs().query("`pass` == 0"))
    assert not out["measured"] and out["note"] == NO_FLOOR == "floor not measured: run with runner.fidelity.repeats>=2"
    des = _row(out, "all", "discrete-event")
    assert des["configs"] == 3 and des["floor_median_abs_err"] is None     # every run counts: no floor to match
    assert des["median_abs_err"] == pytest.approx(0.2)                    # |0.2|, 0.1, 9 -> median 0.2
    assert des["median_verdict"] == des["max_verdict"] == "floor not measured"
    assert vs_floor(pd.DataFrame([])) == {}
