"""Simulator speed: expected-value evaluations per second (what a knob search pays per
point, ExeGPT §5) and seconds for the discrete-event engine to play 5,000 requests.

Both start from a fresh cost model, so the first pass pays the layer-time memo's misses;
the warm figures repeat the same work with the memo filled.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time

from harness.cost_model import get_cost_model
from harness.policies import Context, get_policy
from harness.simulator.discrete_event import simulate
from harness.simulator.expected import evaluate
from harness.specs import get_cluster, get_model
from harness.workload import get_task, offline

EVALS_PER_S_TARGET = 10_000
DES_5000_S_TARGET = 1.0
DES_KNOBS = {"encode_batch_size": 32, "decode_iters": 8, "tp_degree": 4}


def _context(task: str) -> Context:
    cl = get_cluster("a40x4")
    return Context(get_model("opt-13b"), cl, get_task(task), get_cost_model("analytic", cl))


def _grid() -> list[dict[str, int]]:
    """1,536 distinct RRA knob points: B_E 4..252, N_D 1..61, TP degree 1/2/4."""
    return [{"encode_batch_size": b, "decode_iters": n, "tp_degree": d}
            for b in range(4, 256, 8) for n in range(1, 64, 4) for d in (1, 2, 4)]


def _evals_per_s(ctx: Context, grid: list[dict[str, int]]) -> float:
    policy = get_policy("rra")
    start = time.perf_counter()
    for knobs in grid:
        evaluate(policy.plan(ctx, knobs), ctx.workload)
    return len(grid) / (time.perf_counter() - start)


def _profile_top(ctx: Context, grid: list[dict[str, int]], n: int = 8) -> list[str]:
    """The `n` functions with the most own time over the grid (fresh cost model)."""
    prof = cProfile.Profile()
    prof.enable()
    _evals_per_s(ctx, grid)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO()).sort_stats("tottime")
    rows = []
    for (path, line, func), (_, calls, tottime, cumtime, _) in list(stats.stats.items()):
        rows.append((tottime, f"{path.split('/')[-1]}:{line}({func}) calls={calls} "
                              f"tottime={tottime:.3f}s cumtime={cumtime:.3f}s"))
    return [text for _, text in sorted(rows, reverse=True)[:n]]


def run() -> dict:
    grid = _grid()
    ctx = _context("S")
    evals_cold = _evals_per_s(ctx, grid)
    evals_warm = _evals_per_s(ctx, grid)

    ctx_c1 = _context("C1")
    plan = get_policy("rra").plan(ctx_c1, DES_KNOBS)
    requests = offline(ctx_c1.workload, 5000, seed=0)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = simulate(plan, requests)
        times.append(time.perf_counter() - start)

    out = {
        "expected_value": {
            "workload": "opt-13b / a40x4 / task S / rra", "grid_points": len(grid),
            "evals_per_s": round(evals_cold, 1), "evals_per_s_warm": round(evals_warm, 1),
            "target_evals_per_s": EVALS_PER_S_TARGET,
            "meets_target": evals_cold >= EVALS_PER_S_TARGET,
        },
        "discrete_event": {
            "workload": "opt-13b / a40x4 / task C1 / rra " + str(DES_KNOBS), "num_requests": 5000,
            "seconds": round(times[0], 4), "seconds_warm_best": round(min(times[1:]), 4),
            "decode_iterations": int(result.records.iter_end_s.size),
            "target_seconds": DES_5000_S_TARGET, "meets_target": times[0] <= DES_5000_S_TARGET,
        },
    }
    if not out["expected_value"]["meets_target"]:
        out["expected_value"]["profile_top"] = _profile_top(_context("S"), grid)
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
