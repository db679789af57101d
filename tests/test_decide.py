"""Decision fidelity's scoring (harness/studies/decide.py) on hand-made tables, and the
search's batch cap (`Context.batch_cap`) that keeps its candidates within a finite run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.studies.decide import decision_metrics, score, summary


def _cands(est, chosen, bound_s=2.0):
    return pd.DataFrame({"model": "m", "task": "t", "bound": "p30", "bound_s": bound_s, "runnable": True,
                         "candidate": [f"c{i}" for i in range(len(est))], "policy": "rra",
                         "est_throughput_seq_s": est, "chosen": [i == chosen for i in range(len(est))]})


def test_regret_bound_and_tau_by_hand() -> None:
    """Estimates 10, 8, 6 (c0 chosen); measured 9, 10, 5 at latencies 1, 1, 3 s, bound 2 s:
    c2 misses the bound, the real best that meets it is c1 (10), regret 10/9 - 1; of the three
    pairs (c0,c1) is discordant, the other two concordant: tau = (2 - 1) / 3."""
    m = decision_metrics(_cands([10.0, 8.0, 6.0], 0), np.array([9.0, 10.0, 5.0]), np.array([1.0, 1.0, 3.0]), 2.0)
    assert m["regret"] == pytest.approx(10 / 9 - 1) and m["chosen_meets_bound"]
    assert m["tau"] == pytest.approx(1 / 3)


def test_score_means_over_passes_and_brackets_with_the_bootstrap() -> None:
    c = _cands([10.0, 8.0], 0)
    runs = pd.DataFrame({"model": "m", "task": "t", "candidate": ["c0", "c1", "c0", "c1"], "pass": [0, 0, 1, 1],
                         "real_throughput_seq_s": [10.0, 8.0, 6.0, 9.0], "real_latency_s": [1.0, 1.0, 3.0, 1.0],
                         "des_throughput_seq_s": [10.0, 8.0, 10.0, 8.0]})
    s = score(c, runs).iloc[0]
    # means: c0 8.0 at 2.0 s (not under 2.0: misses), c1 8.5 at 1.0 s: no regret defined vs c0?
    # the real best meeting the bound is c1 (8.5), the chosen c0 ran 8.0: regret 8.5/8 - 1
    assert s.regret == pytest.approx(8.5 / 8 - 1) and not s.chosen_meets_bound
    assert s.bound_met_share == 0.5                 # c0 met 2 s in pass 0 (1 s), not in pass 1 (3 s)
    assert s.regret_lo <= s.regret <= s.regret_hi
    assert s.real_best == "c1" and s.tau == pytest.approx(-1.0)


def _noisy_runs() -> pd.DataFrame:
    """Passes of c0, c1, c2: throughputs (8, 10, 5) then (9, 11, 12.5); c2 took 3 s in pass 1."""
    return pd.DataFrame({"model": "m", "task": "t", "candidate": ["c0", "c1", "c2"] * 2, "pass": [0, 0, 0, 1, 1, 1],
                         "real_throughput_seq_s": [8.0, 10.0, 5.0, 9.0, 11.0, 12.5],
                         "real_latency_s": [1.0, 1.0, 1.0, 1.0, 1.0, 3.0], "des_throughput_seq_s": [3.0, 2.0, 1.0] * 2})


def test_the_noise_floor_of_regret_and_tau_by_hand() -> None:
    """Estimates 10, 8, 6, c0 chosen, bound 2 s. Means over the two passes: c0 8.5, c1 10.5, c2 8.75
    at 2.0 s (misses), so a perfect chooser takes c1. Per pass, the chosen c0: pass 0 all meet,
    best 10 -> 10/8 - 1; pass 1 c2 misses, best 11 -> 11/9 - 1. The perfect chooser's c1 is the
    best meeting the bound in both passes: regret 0. Tau of the estimates per pass: (8, 10, 5) has
    (c0, c1) discordant -> 1/3; (9, 11, 12.5) has all three pairs discordant -> -1. Tau of the
    means (8.5, 10.5, 8.75): against pass 0 (c0, c2) discordant -> 1/3; pass 1 (c1, c2) -> 1/3."""
    s = score(_cands([10.0, 8.0, 6.0], 0), _noisy_runs()).iloc[0]
    assert s.regret == pytest.approx(10.5 / 8.5 - 1)              # on the means, as before
    assert s.regret_per_pass == pytest.approx((10 / 8 - 1 + 11 / 9 - 1) / 2)
    assert s.regret_floor == pytest.approx(0.0)
    assert s.tau_per_pass == pytest.approx((1 / 3 - 1) / 2)
    assert s.tau_floor == pytest.approx(1 / 3)
    summ = summary(score(_cands([10.0, 8.0, 6.0], 0), _noisy_runs()))
    assert summ["median_regret_per_pass"] == pytest.approx(17 / 72) and summ["max_regret_floor"] == pytest.approx(0.0)
    assert summ["median_tau_floor"] == pytest.approx(1 / 3)
    one = score(_cands([10.0, 8.0, 6.0], 0), _noisy_runs().query("`pass` == 0")).iloc[0]
    assert np.isnan([one.regret_per_pass, one.regret_floor, one.tau_per_pass, one.tau_floor]).all()  # 1 pass: none


def test_the_report_prints_the_noise_floor_beside_regret_and_tau(tmp_path) -> None:
    import json

    from harness.figures.decide import decide_section
    (tmp_path / "decide").mkdir()
    scores = pd.DataFrame([{"model": "m", "task": "t", "bound": "p30", "candidates": 3, "passes": 3, "chosen": "c0",
                            "real_best": "c1", "regret": 0.05, "regret_lo": 0.0, "regret_hi": 0.1, "tau": 0.5,
                            "tau_lo": 0.2, "tau_hi": 0.9, "tau_des": 0.6, "bound_met_share": 1.0,
                            "regret_per_pass": 0.08, "regret_floor": 0.03, "tau_per_pass": 0.4, "tau_floor": 0.7}])
    scores.to_csv(tmp_path / "decide" / "scores.csv", index=False)
    summ = {"scenarios": 1, "scored": 1, "median_regret": 0.05, "max_regret": 0.05, "median_tau": 0.5,
            "median_tau_des": 0.6, "bound_met_share": 1.0, "median_regret_per_pass": 0.08,
            "max_regret_per_pass": 0.08, "median_regret_floor": 0.03, "max_regret_floor": 0.03,
            "median_tau_per_pass": 0.4, "median_tau_floor": 0.7, "targets": {}}
    (tmp_path / "decide" / "summary.json").write_text(json.dumps(summ))
    text = "\n".join(decide_section(tmp_path))
    assert "median regret 8.0% (floor 3.0%), max 8.0% (floor 3.0%); median tau 0.40 (floor 0.70)." in text
    assert "| 5.0% [0.0%, 10.0%] | 8.0% (floor 3.0%) | 0.50 [0.20, 0.90] | 0.40 (floor 0.70) |" in text
    summ |= {"median_regret_floor": float("nan"), "median_tau_floor": float("nan")}
    (tmp_path / "decide" / "summary.json").write_text(json.dumps(summ))
    assert "**Noise floor not measured: run with study.passes>=2**" in "\n".join(decide_section(tmp_path))


def test_the_batch_cap_bounds_every_batch_knob_the_search_tries() -> None:
    from dataclasses import replace

    from harness.policies import get_policy
    from harness.scheduler.oracle_study import scenario_context
    from harness.scheduler.space import BATCH_KNOBS, build_space
    from harness.specs.mode import OURS
    ctx = replace(scenario_context("opt-13b", "S", OURS), batch_cap=16)
    for name in ("rra", "ft", "vllm"):
        tried = [v for g in build_space(get_policy(name), ctx, "coarse").groups
                 for a in g.axes if a.name in BATCH_KNOBS for v in a.values]
        assert tried and max(tried) == 16          # capped, and the cap itself is tried
    uncapped = [v for g in build_space(get_policy("rra"), replace(ctx, batch_cap=None), "coarse").groups
                for a in g.axes if a.name == "encode_batch_size" for v in a.values]
    assert max(uncapped) > 16


@pytest.mark.slow
def test_the_tiny_study_runs_end_to_end_on_the_mini_cluster(tmp_path, capsys) -> None:
    """`harness decide experiment=decide_tiny`: a profile, the search, real runs, the tables."""
    import json

    from harness.cli.main import main
    assert main(["decide", "experiment=decide_tiny", f"runs_dir={tmp_path}",
                 f"runner.profile.out_dir={tmp_path / 'profiles'}", "runner.progress=false"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scored"] == 1
    runs = pd.read_csv(tmp_path / "decide_tiny" / "runs.csv")
    assert len(runs) >= 2 and (runs.real_throughput_seq_s > 0).all()
    assert (tmp_path / "decide_tiny" / "decide.png").exists()


def test_the_margin_chooser_takes_the_best_estimate_under_the_tightened_bound() -> None:
    from harness.studies.decide import _margin_cols, margin_choice
    c = pd.DataFrame({"policy": ["rra", "vllm", "sarathi", "ft"], "candidate": ["a", "b", "c", "d"],
                      "est_throughput_seq_s": [50.0, 60.0, 40.0, 90.0], "est_latency_s": [0.90, 0.99, 0.80, 0.5],
                      "chosen": [False, True, False, False]})
    # bound 1.0, margin 5%: under 0.95 are a (50) and c (40), and FT (not a searched policy) -> a
    assert margin_choice(c, 1.0, 0.05).chosen.tolist() == [True, False, False, False]
    assert not margin_choice(c, 1.0, 0.5).chosen.any()          # nothing under 0.5 but FT
    # real: b misses the bound in both passes; a meets it in one of two, c in both
    thr = np.array([[45.0, 70.0, 38.0, 9.0], [47.0, 66.0, 42.0, 9.0]])
    lat = np.array([[0.97, 1.10, 0.80, 0.4], [1.02, 1.20, 0.85, 0.4]])
    out = _margin_cols(c, thr, lat, 1.0, 0.05)
    assert out["chosen_margin"] == "a" and out["bound_met_share_margin"] == 0.5
    # mean latencies: a 0.995 (meets), b 1.15, c 0.825, d 0.4; best meeting: a (46) -> regret 0
    assert out["regret_margin"] == pytest.approx(0.0)
    assert _margin_cols(c, thr, lat, 1.0, 0.0) == {}
