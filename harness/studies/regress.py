"""The scenarios of the throughput regression gate (`make regress`), searched: what
harness.results.golden compares against the committed golden file.

A fixed, deterministic set (analytic cost model, paper clusters, §7), both readings
(harness/specs/mode.py), 60 searches in about 20 s here.
"""

from __future__ import annotations

import math

from harness.results.golden import Outcome, scenario_key
from harness.scheduler import find_schedule
from harness.scheduler.bounds import derive_bounds
from harness.scheduler.oracle_study import scenario_context
from harness.specs.mode import MODES, make_mode

GOLDEN_SCENARIOS = tuple(
    (m, t, b)
    for m, tasks in (("t5-11b", ("S", "C1")), ("opt-13b", ("S", "T", "C1")), ("gpt3-39b", ("S", "C1")),
                     ("gpt3-175b", ("G", "C2")), ("gpt3-341b", ("C1",)))
    for t in tasks for b in ("p10", "p30", "inf"))


def run_scenarios(bounds_s: dict[str, float | None] | None = None) -> dict[str, Outcome]:
    """Search every golden scenario in both readings (harness/specs/mode.py); at the golden's
    stored bound when given, else derived (§7)."""
    out = {}
    for (model, task, label), mode in ((s, m) for s in GOLDEN_SCENARIOS for m in MODES):
        key, ctx = scenario_key(model, task, label, mode), scenario_context(model, task, make_mode(mode))
        if bounds_s is not None and key in bounds_s:
            b = bounds_s[key]
        else:
            b = None if label == "inf" else derive_bounds(ctx).by_label()[label]
        r = find_schedule(ctx, math.inf if b is None else b)
        best = r.best
        out[key] = Outcome(key, b, "ok" if best else "NS", best.policy if best else "",
                           best.throughput_seq_s if best else 0.0, best.latency_s if best else None)
    return out
