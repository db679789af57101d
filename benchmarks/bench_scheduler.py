"""Scheduler speed and correctness (issue #5):
- search time per scenario over the full matrix (6 models x 5 tasks x 4 bounds, paper clusters),
  fine grids: median <= 1 s, whole matrix <= 120 s on the 2-core machine;
- branch-and-bound vs the exhaustive oracle on coarse grids (3 models x 3 tasks x 4 bounds):
  share of scenarios where B&B is optimal (within eps_T), worst gap, speed-up.
"""

from __future__ import annotations

import statistics
import time

from harness.cost_model import get_cost_model
from harness.policies import Context
from harness.scheduler import find_schedule
from harness.scheduler.bounds import derive_bounds
from harness.specs import get_cluster, get_model
from harness.specs.paper import PAPER_CLUSTER
from harness.workload import TASKS, get_task


def _ctx(model: str, cluster: str, task: str) -> Context:
    c = get_cluster(cluster)
    return Context(get_model(model), c, get_task(task), get_cost_model("analytic", c))


def _bounds(ctx: Context) -> dict[str, float]:
    """The scenario's derived bounds; labels FT cannot define (FT infeasible) are left out."""
    return {k: v for k, v in derive_bounds(ctx).by_label().items() if v is not None}


def full_matrix() -> dict:
    times, ns, t0 = [], 0, time.perf_counter()
    for model, cluster in PAPER_CLUSTER.items():
        for task in TASKS:
            ctx = _ctx(model, cluster, task)
            for bound_s in _bounds(ctx).values():
                r = find_schedule(ctx, bound_s)
                times.append(r.search_s)
                ns += r.best is None
    total = time.perf_counter() - t0
    return {"scenarios": len(times), "ns_scenarios": ns, "median_search_s": statistics.median(times),
            "max_search_s": max(times), "total_s": total, "target_median_s": 1.0, "target_total_s": 120.0,
            "meets_target": statistics.median(times) <= 1.0 and total <= 120.0}


def oracle() -> dict:
    gaps, bb_evals, ex_evals, bb_s, ex_s, n = [], 0, 0, 0.0, 0.0, 0
    for model in ("opt-13b", "t5-11b", "gpt3-39b"):
        for task in ("S", "T", "C1"):
            ctx = _ctx(model, PAPER_CLUSTER[model], task)
            for bound_s in _bounds(ctx).values():
                bb = find_schedule(ctx, bound_s, resolution="coarse")
                ex = find_schedule(ctx, bound_s, resolution="coarse", use_exhaustive=True)
                n += 1
                bb_evals, ex_evals = bb_evals + bb.evaluations, ex_evals + ex.evaluations
                bb_s, ex_s = bb_s + bb.search_s, ex_s + ex.search_s
                if ex.best is not None:
                    got = bb.best.throughput_seq_s if bb.best else 0.0
                    gaps.append(1 - got / ex.best.throughput_seq_s)
    return {"scenarios": n, "share_optimal_within_eps": sum(g <= 0.01 for g in gaps) / len(gaps),
            "share_exactly_optimal": sum(g <= 1e-9 for g in gaps) / len(gaps),
            "worst_gap": max(gaps), "evaluations_bnb": bb_evals, "evaluations_exhaustive": ex_evals,
            "speedup_evaluations": ex_evals / bb_evals, "speedup_seconds": ex_s / bb_s}


def run() -> dict:
    return {"full_matrix": full_matrix(), "oracle_coarse": oracle()}
