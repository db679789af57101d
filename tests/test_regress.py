"""The throughput regression gate (`make regress`): verdicts on hand-made outcomes."""

from __future__ import annotations

import json
import math

from harness.results.golden import Outcome, benchmark_json, compare
from harness.studies.regress import GOLDEN_SCENARIOS


def golden(thr=10.0, status="ok", bound_s=5.0):
    return {"s": {"bound_s": bound_s, "status": status, "policy": "rra", "throughput_seq_s": thr, "latency_s": 4.0}}


def now(thr=10.0, status="ok", latency_s=4.0, bound_s=5.0):
    return {"s": Outcome("s", bound_s, status, "rra" if status == "ok" else "", thr, latency_s)}


def test_equal_and_within_tolerance_pass():
    for thr in (10.0, 9.95, 10.05):
        rows, failures = compare(golden(), now(thr))
        assert not failures and rows[0]["verdict"] == "ok"


def test_a_drop_over_one_percent_fails():
    rows, failures = compare(golden(), now(9.8))
    assert failures == ["s: throughput -2.0%"] and rows[0]["verdict"].startswith("FAIL")


def test_feasibility_change_fails_both_ways():
    assert compare(golden(), now(0.0, "NS", None))[1] == ["s: feasibility ok -> NS"]
    assert compare(golden(0.0, "NS"), now())[1] == ["s: feasibility NS -> ok"]


def test_a_violated_bound_fails_even_if_faster():
    _, failures = compare(golden(), now(12.0, latency_s=5.0))
    assert failures and "latency" in failures[0]


def test_a_rise_is_reported_not_failed():
    rows, failures = compare(golden(), now(11.0))
    assert not failures and rows[0]["verdict"].startswith("improved +10.0%")


def test_missing_and_new_scenarios_fail():
    assert compare(golden(), {})[1] == ["s: missing from this run"]
    assert compare({}, now())[1] == ["s: new scenario, not in golden"]


def test_benchmark_json_is_github_action_benchmark_format():
    out = benchmark_json(now(12.5))
    assert out == [{"name": "s searched throughput", "unit": "seq/s", "value": 12.5,
                    "extra": "policy=rra latency_s=4.0 bound_s=5.0"}]
    json.dumps(out)


def test_the_committed_golden_covers_the_scenario_set():
    from harness.cli.studies import GOLDEN
    from harness.results.golden import load_golden, scenario_key
    g = load_golden(GOLDEN)
    from harness.specs.mode import MODES
    assert set(g) == {scenario_key(*s, mode) for s in GOLDEN_SCENARIOS for mode in MODES}
    assert "opt-13b/a40x4/S/p10 mode=paper" in g and "opt-13b/a40x4/S/p10" in g    # both readings
    bounded = [v for v in g.values() if v["status"] == "ok" and v["bound_s"] is not None]
    assert bounded, "no feasible scenario under a finite bound in the golden: nothing to check"
    for v in g.values():
        assert v["status"] in ("ok", "NS")
    for v in bounded:
        assert v["latency_s"] < v["bound_s"] and math.isfinite(v["throughput_seq_s"])
