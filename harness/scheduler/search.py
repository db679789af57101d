"""XScheduler (ExeGPT §5): maximise throughput subject to latency < L_bound.

For every policy (rra, waa-c, waa-m by default) and every combination of its enumerated knobs
(TP degree and #GPUs, B_m), branch-and-bound runs over the monotone knobs (B_E, N_D); the best
feasible schedule over all of them is chosen. Where a policy's structure changes with a
monotone knob (`Policy.regime`: WAA's encode/decode split moves with B_E), each run of equal
structure is searched separately, as each TP degree is. `exhaustive=True` evaluates every grid point
instead (the oracle). Infeasible everywhere -> "NS" with the reasons seen.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from dataclasses import dataclass, field

from harness.policies import Context, Estimate, get_policy
from harness.policies.base import Policy
from harness.scheduler.bnb import BnBResult, Point, branch_and_bound, exhaustive
from harness.scheduler.space import SearchSpace, build_space
from harness.simulator.expected import evaluate

DEFAULT_POLICIES = ("rra", "waa-c", "waa-m")


@dataclass(frozen=True, slots=True)
class PolicyResult:
    policy: str
    best: Estimate | None          # None: no feasible schedule ("NS")
    evaluations: int
    reason: str = ""               # why NS: the most common infeasibility reason seen

    def as_dict(self) -> dict:
        if self.best is None:
            return {"policy": self.policy, "status": "NS", "reason": self.reason, "evaluations": self.evaluations}
        return {"policy": self.policy, "status": "ok", "evaluations": self.evaluations,
                **{k: v for k, v in self.best.as_dict().items() if k != "policy"}}


@dataclass(frozen=True, slots=True)
class SearchResult:
    bound_s: float
    best: Estimate | None
    per_policy: tuple[PolicyResult, ...]
    evaluations: int
    search_s: float
    method: str = "branch-and-bound"
    settings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        best = None if self.best is None else self.best.as_dict()
        return {"method": self.method, "bound_s": None if math.isinf(self.bound_s) else self.bound_s,
                "status": "NS" if best is None else "ok", "chosen": best,
                "evaluations": self.evaluations, "search_s": self.search_s, "settings": self.settings,
                "policies": [p.as_dict() for p in self.per_policy]}


def regime_segments(policy: Policy, ctx: Context, space: SearchSpace,
                    fixed: tuple) -> list[tuple[int, int]]:
    """[start, stop) runs of the first axis over which `policy.regime` is constant (the whole
    axis when the policy has none). The regime may depend on the first axis and the
    enumerated knobs only (WAA: B_E, T_P); it is a plan property, not an evaluation."""
    if not space.axes:
        return [(0, 0)]
    n = space.shape[0]
    rest = tuple(0 for _ in space.axes[1:])
    regimes = [policy.regime(ctx, space.knobs((i, *rest), fixed)) for i in range(n)]
    if regimes[0] is None:
        return [(0, n)]
    cuts = [0, *(i for i in range(1, n) if regimes[i] != regimes[i - 1]), n]
    return list(itertools.pairwise(cuts))


def _shifted(run, point, shape: tuple[int, ...], start: int, stop: int, bound_s: float, **kw) -> BnBResult:
    """Branch-and-bound over the slab [start, stop) of the first axis, in whole-space indices."""
    if not shape:
        return run(point, shape, bound_s, **kw)
    res = run(lambda idx: point((idx[0] + start, *idx[1:])), (stop - start, *shape[1:]), bound_s, **kw)
    best = None if res.best is None else (res.best[0] + start, *res.best[1:])
    return BnBResult(best, res.best_throughput_seq_s, res.evaluations)


def search_policy(ctx: Context, policy_name: str, bound_s: float, resolution: str = "fine",
                  use_exhaustive: bool = False, eps_throughput_rel: float = 0.01,
                  eps_latency_s: float = 0.0) -> PolicyResult:
    policy = get_policy(policy_name)
    space = build_space(policy, ctx, resolution)
    estimates: dict[tuple, Estimate] = {}
    reasons: Counter[str] = Counter()
    best: Estimate | None = None
    total = 0
    for fixed in space.fixed:
        def point(idx: tuple[int, ...], fixed: tuple = fixed) -> Point:
            knobs = space.knobs(idx, fixed)
            plan = policy.plan(ctx, knobs)
            est = evaluate(plan, ctx.workload)
            estimates[tuple(sorted(knobs.items()))] = est
            if not est.feasible:
                reasons[est.reason.split(":")[0]] += 1
                relaxed = evaluate(plan, ctx.workload, relaxed=True) if plan.costs is not None else None
                return Point(0.0, math.inf, False, relaxed.throughput_seq_s if relaxed else math.inf)
            if est.latency_s >= bound_s:
                reasons["latency"] += 1
            return Point(est.throughput_seq_s, est.latency_s, True)

        if use_exhaustive:
            runs = [exhaustive(point, space.shape, bound_s)]
        else:
            runs = [_shifted(branch_and_bound, point, space.shape, start, stop, bound_s,
                             eps_throughput_rel=eps_throughput_rel, eps_latency_s=eps_latency_s)
                    for start, stop in regime_segments(policy, ctx, space, fixed)]
        for res in runs:
            total += res.evaluations
            if res.best is not None:
                est = estimates[tuple(sorted(space.knobs(res.best, fixed).items()))]
                if best is None or est.throughput_seq_s > best.throughput_seq_s:
                    best = est
    reason = "" if best else (f"no schedule under the bound; most common: {reasons.most_common(1)[0][0]}"
                              if reasons else "no legal knob combination")
    return PolicyResult(policy_name, best, total, reason)


def find_schedule(ctx: Context, bound_s: float, policies: tuple[str, ...] = DEFAULT_POLICIES,
                  resolution: str = "fine", use_exhaustive: bool = False,
                  eps_throughput_rel: float = 0.01, eps_latency_s: float = 0.0) -> SearchResult:
    t0 = time.perf_counter()
    results = tuple(search_policy(ctx, p, bound_s, resolution, use_exhaustive, eps_throughput_rel,
                                  eps_latency_s) for p in policies)
    feasible = [r.best for r in results if r.best is not None]
    best = max(feasible, key=lambda e: e.throughput_seq_s) if feasible else None
    return SearchResult(bound_s, best, results, sum(r.evaluations for r in results),
                        time.perf_counter() - t0, "exhaustive" if use_exhaustive else "branch-and-bound",
                        {"resolution": resolution, "eps_throughput_rel": eps_throughput_rel,
                         "eps_latency_s": eps_latency_s, "policies": list(policies)})
