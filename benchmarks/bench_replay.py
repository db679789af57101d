"""Online replay at scale (issue 17): the discrete-event simulator plays 1,000,000 Poisson
requests through every registered policy's batching program, target <= 30 s each on this
2-core machine; and the search time per scenario of every policy (target <= 1 s median).

Scenario: OPT-13B on its paper cluster (4 x A40), task S lengths (ExeGPT §7). Each policy
runs the schedule XScheduler picks for it at the Inf bound (coarse grid), at an arrival
rate of 80% of that schedule's offline throughput (a loaded but stable system). The replay
time covers drawing the stream and the simulation; the search and the plan are not timed.
Search times: each policy searched at the p30 and Inf bounds on opt-13b/S, gpt3-39b/C1
and t5-11b/T (one cold search each, fresh process memo not reset: realistic for a sweep).
"""

from __future__ import annotations

import statistics
import time

from harness.policies import POLICIES, get_policy
from harness.scheduler.bounds import derive_bounds
from harness.scheduler.oracle_study import scenario_context
from harness.scheduler.search import search_policy
from harness.simulator.discrete_event import simulate
from harness.specs.mode import OURS
from harness.workload.streams import poisson

REPLAY_REQUESTS = 1_000_000
REPLAY_TARGET_S = 30.0
SEARCH_TARGET_S = 1.0
LOAD = 0.8
SEARCH_SCENARIOS = (("opt-13b", "S"), ("gpt3-39b", "C1"), ("t5-11b", "T"))


def _replay(name: str, num_requests: int = REPLAY_REQUESTS) -> dict:
    ctx = scenario_context("opt-13b", "S", OURS)
    found = search_policy(ctx, name, float("inf"), "coarse").best
    if found is None:
        return {"status": "NS", "reason": "no schedule at the Inf bound"}
    plan = get_policy(name).plan(ctx, dict(found.knobs))
    rate = LOAD * found.throughput_seq_s
    t0 = time.perf_counter()
    reqs = poisson(ctx.workload, num_requests, rate, seed=0)
    res = simulate(plan, reqs)
    seconds = time.perf_counter() - t0
    m = res.metrics
    return {"knobs": dict(found.knobs), "rate_per_s": round(rate, 3), "seconds": round(seconds, 2),
            "decode_iterations": int(res.records.iter_end_s.size), "throughput_seq_s": round(m.throughput_seq_s, 3),
            "ttft_p99_s": round(m.ttft_p99_s, 3), "e2e_p99_s": round(m.e2e_p99_s, 3),
            "meets_target": seconds <= REPLAY_TARGET_S}


def _search_times(name: str) -> dict:
    times = []
    for model, task in SEARCH_SCENARIOS:
        ctx = scenario_context(model, task, OURS)
        b = derive_bounds(ctx)
        for bound in (b.p30_s, b.inf_s):
            if bound is None:
                continue
            t0 = time.perf_counter()
            search_policy(ctx, name, bound)
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"median_s": round(med, 3), "max_s": round(max(times), 3), "searches": len(times),
            "meets_target": med <= SEARCH_TARGET_S}


def run(num_requests: int = REPLAY_REQUESTS) -> dict:
    names = POLICIES.names()
    return {"replay": {"workload": f"opt-13b / a40x4 / task S / Poisson at {LOAD:.0%} of capacity",
                       "num_requests": num_requests, "target_seconds": REPLAY_TARGET_S,
                       **{n: _replay(n, num_requests) for n in names}},
            "search": {"target_median_s": SEARCH_TARGET_S, "scenarios": [f"{m}/{t}" for m, t in SEARCH_SCENARIOS],
                       "bounds": ["p30", "inf"], **{n: _search_times(n) for n in names}}}


if __name__ == "__main__":
    import json
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else REPLAY_REQUESTS
    print(json.dumps(run(n), indent=2))
