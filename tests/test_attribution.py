"""The attribution factorial (harness.studies.attribution) and how the report ranks it
(harness.figures.attribution), against hand-built tables and hand calculations."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.figures.attribution import attribution_key, cause_text, causes
from harness.figures.verdicts import headline_by_mode
from harness.specs.mode import OPTIONS, OURS, PAPER
from harness.studies.attribution import _miss, suspects, variant_claims


def _attr(rows):
    """rows: (base_mode, suspect, claim, value, paper) -> the factorial's table shape."""
    df = pd.DataFrame(rows, columns=["base_mode", "suspect", "claim", "value", "paper"])
    df["kind"] = ["base" if s == "—" else "x" for s in df["suspect"]]
    df["ratio"] = df["value"] / df["paper"]
    base = df[df["suspect"] == "—"].set_index(["base_mode", "claim"])["ratio"]
    df["base_ratio"] = [base[(b, c)] for b, c in zip(df["base_mode"], df["claim"], strict=True)]
    df["closer_by"] = df["base_ratio"].map(_miss) - df["ratio"].map(_miss)
    return df


def test_a_switch_that_lands_within_tolerance_explains_the_miss():
    # Paper 10; ours 20 (2x) in both modes. Switch A gives 11 (1.1x: within ±25%), B gives 15.
    t = _attr([("ours", "—", "c", 20.0, 10.0), ("paper", "—", "c", 20.0, 10.0),
               ("ours", "A", "c", 11.0, 10.0), ("ours", "B", "c", 15.0, 10.0),
               ("paper", "A", "c", 19.0, 10.0)])
    c = causes(t).iloc[0]
    assert c["misses in both modes"] and c["best single switch"] == "A" and c["verdict"] == "explained"
    assert c["gives ours/paper"] == pytest.approx(1.1)
    assert cause_text(c) == "explained: A (from mode=ours) gives 1.10× the paper"
    # a second switch that alone lands within ±25% is named too: several hypotheses can fit
    t2 = _attr([("ours", "—", "c", 20.0, 10.0), ("ours", "A", "c", 11.0, 10.0), ("ours", "B", "c", 12.0, 10.0)])
    assert cause_text(causes(t2).iloc[0]) == ("explained: A (from mode=ours) gives 1.10× the paper; "
                                             "also within ±25% alone: B (mode=ours: 1.20×)")


def test_half_the_log_gap_is_a_main_contributor_less_is_partly_none_is_unexplained():
    # Base 4x (log 4 = 1.386). 2x closes log 2 = 0.693: exactly half -> main contributor.
    main = causes(_attr([("ours", "—", "c", 40.0, 10.0), ("ours", "A", "c", 20.0, 10.0)])).iloc[0]
    assert main["verdict"] == "main contributor"
    partly = causes(_attr([("ours", "—", "c", 40.0, 10.0), ("ours", "A", "c", 30.0, 10.0)])).iloc[0]
    assert partly["verdict"] == "partly"
    none = causes(_attr([("ours", "—", "c", 40.0, 10.0), ("ours", "A", "c", 50.0, 10.0)])).iloc[0]
    assert none["verdict"] == "unexplained by the listed suspects"


def test_a_claim_that_holds_in_one_mode_has_no_cause():
    c = causes(_attr([("ours", "—", "c", 11.0, 10.0), ("paper", "—", "c", 30.0, 10.0),
                      ("paper", "A", "c", 10.0, 10.0)])).iloc[0]
    assert not c["misses in both modes"] and cause_text(c) == "holds in one mode"


def test_every_mode_option_is_a_suspect_switched_to_the_other_reading():
    names = {s.name for s in suspects(OURS)}
    for option, (paper_v, _, _) in OPTIONS.items():
        assert f"mode.{option}={paper_v}" in names
    assert {"ft_baseline.max_batch=half", "ft_baseline.kv_reservation=p99"} <= names
    assert all(s.name != f"mode.{o}={PAPER.options()[o]}" for s in suspects(PAPER) for o in OPTIONS)


def test_table6_claims_map_to_the_factorial():
    assert attribution_key("OPT-13B S, L = 3.1 s: WAA-C B_E=4") == "Table 6 L=3.1 s: ExeGPT throughput (seq/s)"
    assert attribution_key("OPT-13B S FT-derived bound p70") == "§7 OPT-13B S bound p70 (s)"
    assert attribution_key("not a claim") is None


def test_halving_the_ft_batch_range_recomputes_the_bounds_from_the_halved_sweep():
    # One pair only (OPT-13B S on 4 x A40): the p70 bound must be the FT latency at the batch
    # index floor(0.7 * (n - 1)) of the halved sweep 1, 4, 8, ..., 4 * floor(top / 8).
    from harness.scheduler.bounds import derive_bounds, max_ft_batch
    from harness.studies.attribution import _ft_half_range, base_context
    ctx = base_context("opt-13b", "a40x4", "S", OURS)
    top = max_ft_batch(ctx)
    halved = _ft_half_range(ctx)
    sweep = [1, *range(4, top // 2 + 1, 4)]
    b = derive_bounds(halved)
    assert list(b.batch_sizes) == sweep
    assert b.p70_s == b.ft_latencies_s[math.floor(0.7 * (len(sweep) - 1))]


@pytest.mark.parametrize("mode", [OURS, PAPER], ids=["ours", "paper"])
def test_variant_claims_of_one_pair_read_the_bounds_of_that_pair(mode):
    v = variant_claims(mode, None, "coarse", pairs=[("opt-13b", "a40x4", "S")])
    from harness.scheduler.bounds import derive_bounds
    from harness.studies.attribution import base_context
    b = derive_bounds(base_context("opt-13b", "a40x4", "S", mode))
    assert v["§7 OPT-13B S bound p30 (s)"] == b.p30_s
    assert math.isnan(v["§8 large average"])          # no large-model pair was run


def test_headline_by_mode_gives_each_mode_its_own_verdict():
    rows = []
    for mode, speedup in (("ours", 2.1), ("paper", 5.0)):
        for pol, st in (("exegpt", "ok"), ("ft", "ok")):
            rows.append({"experiment": "fig6", "model": "opt-13b", "cluster": "a40x4", "task": "S",
                         "bound": "p10", "bound_s": 3.0, "policy": pol, "status": st, "mode": mode,
                         "chosen_policy": "rra", "speedup_over_ft": speedup if pol == "exegpt" else 1.0,
                         "weight_bytes_per_gpu": 1.0})
    t = headline_by_mode(pd.DataFrame(rows))
    row = t[t["claim"] == "small/mid models: average"].iloc[0]
    assert row["ours (mode=ours)"] == "2.10×" and row["holds (mode=ours)"] == "holds (±25%)"
    assert row["ours (mode=paper)"] == "5.00×" and row["holds (mode=paper)"] == "direction only"
    assert row["cause"] == ""                   # holds in one mode: no cause needed


def test_a_who_wins_share_is_judged_against_its_threshold_one_sided():
    # Paper: WAA wins (> half). Base share 0.25 (ratio 0.5 to the 0.5 threshold) misses; a
    # switch giving 0.9 explains it (a share far above one half is no "overshoot"), 0.4 is partly.
    claim = "who wins: small/mid, tight bounds p10/p30: WAA share"
    t = _attr([("ours", "—", claim, 0.25, 0.5), ("ours", "A", claim, 0.9, 0.5), ("ours", "B", claim, 0.4, 0.5)])
    t["closer_by"] = [_miss(b, True) - _miss(r, True) for b, r in zip(t["base_ratio"], t["ratio"], strict=True)]
    c = causes(t).iloc[0]
    assert c["misses in both modes"] and c["best single switch"] == "A" and c["verdict"] == "explained"
    assert _miss(1.8, True) == 0.0 and _miss(0.5, True) == pytest.approx(math.log(2))
    assert attribution_key("small/mid (fig6), tight bounds p10/p30: WAA chosen") == claim


def test_report_sections_read_the_oracle_and_attribution_tables(tmp_path):
    from harness.figures.paper_sections import claims_section, search_section
    assert "make bench" in "\n".join(search_section(tmp_path))            # absent: says how to get it
    (tmp_path / "search").mkdir()
    pd.DataFrame([{"variant": "ours", "mode": "ours", "model": "m", "task": "S", "bound": "p10",
                   "evaluations": 10, "grid_points": 1000, "pruning_ratio": 100.0, "gap_rel": 0.0,
                   "below_oracle": False, "beyond_eps": False, "bnb_s": 0.1, "oracle_s": 1.0}]
                 ).to_csv(tmp_path / "search" / "oracle.csv", index=False)
    text = "\n".join(search_section(tmp_path))
    assert "| ours | ours | 1 | 100 |" in text
    t = _attr([("ours", "—", "c", 20.0, 10.0), ("paper", "—", "c", 20.0, 10.0), ("ours", "A", "c", 11.0, 10.0)])
    claims = pd.DataFrame([{"section": "s", "claim": "x", "paper": "10", "ours (mode=ours)": "20",
                            "holds (mode=ours)": "no", "cause": "explained: A", "how (mode=ours)": "h"}])
    text = "\n".join(claims_section(claims, causes(t), t))
    assert "- **x**: paper 10; explained: A." in text and "<summary>c</summary>" in text
