"""XScheduler (ExeGPT §5): maximise throughput subject to latency < L_bound.

For every policy (rra, waa-c, waa-m by default) and every combination of its enumerated knobs
(harness.scheduler.space: the TP degree always; under `mode.monotone_axes=measured` also T_P
#GPUs and B_m), branch-and-bound runs over the box axes (B_E, N_D; under `paper` also T_P
#GPUs and B_m); the best feasible schedule over all of them is chosen. Where a policy's
structure changes with the knobs (`Policy.regime`: WAA's encode/decode split moves with B_E
and T_P), each box of equal structure is searched separately, as each TP degree is.

How the boxes are searched (`SearchOptions`, by default from `ctx.mode.monotone_axes`):
- `paper`: Algorithm 1 as written: one independent run per box (per TP degree and regime),
  the mode's split and prune rules (`corners`, `slack`); keep the best.
- `measured` (ours): all boxes of a policy form one best-first forest sharing one incumbent T*
  (a combination whose bound cannot beat the best schedule found in any other is dropped
  unexpanded, after one evaluation: lower corners are evaluated lazily), and N_D's
  unimodality is probed (harness.scheduler.bnb). These only drop what the bounds say cannot
  win, so the per-policy best stays within eps_T of that policy's optimum wherever the bounds
  hold. `SearchOptions(False, False, False)` gives independent runs over the same axes (the
  search as it was before these three, results bit-identical).
On Fig. 6 ∪ Fig. 8 (80 scenarios, fine grid, eps_T 1%; benchmarks/bench_search_oracle.py)
the forest needs a median 86x fewer evaluations than the grid (independent runs: 58x) with
every scenario within eps_T of the oracle (independent runs: one 2.3% miss, N_D).
`exhaustive=True` evaluates every grid point instead (the oracle). Infeasible everywhere ->
"NS" with the reasons seen.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from harness.policies import EXEGPT_POLICIES, Context, Estimate, get_policy
from harness.policies.base import Policy
from harness.scheduler.bnb import Index, Point, Root, Rules, exhaustive, search_forest
from harness.scheduler.space import Group, build_space
from harness.simulator.expected import evaluate
from harness.specs.mode import Mode

DEFAULT_POLICIES = EXEGPT_POLICIES


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """How the boxes of one policy are searched (module docstring)."""

    share_incumbent: bool = True      # one forest per policy instead of one run per box
    probe_quasi_concave: bool = True  # probe the axes space.py flags quasi-concave (N_D)
    lazy_lower: bool = True           # a box's lower corner only once it is popped (bnb.search_forest)

    @staticmethod
    def for_mode(mode: Mode) -> SearchOptions:
        measured = mode.monotone_axes == "measured"
        return SearchOptions(measured, measured, measured)


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


def _guillotine(codes: np.ndarray, lo: Index, hi: Index, axis: int) -> list[tuple[Index, Index]]:
    """Cut the box [lo, hi] of `codes` along `axis` wherever its slice changes, then each piece
    along the next axis: boxes of one code each (for one axis: the runs of equal code)."""
    box = codes[tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))]
    if axis == codes.ndim or (box == box.flat[0]).all():
        return [(lo, hi)]
    n = box.shape[axis]
    cuts = [0, *(i for i in range(1, n) if (box.take(i, axis) != box.take(i - 1, axis)).any()), n]
    out = []
    for a, b in itertools.pairwise(cuts):
        sub_lo, sub_hi = lo[:axis] + (lo[axis] + a,) + lo[axis + 1:], hi[:axis] + (lo[axis] + b - 1,) + hi[axis + 1:]
        out += _guillotine(codes, sub_lo, sub_hi, axis + 1)
    return out


@lru_cache(maxsize=4096)
def regime_boxes(policy: Policy, ctx: Context, group: Group) -> tuple[tuple[Index, Index], ...]:
    """Boxes [lo, hi] covering the group's grid over each of which `policy.regime` is constant
    (the whole grid when the policy has none). The regime is a plan property, not an
    evaluation: it is read at every grid point and the grid cut axis by axis (`_guillotine`)."""
    shape = group.shape
    lo, hi = tuple(0 for _ in shape), tuple(s - 1 for s in shape)
    if not shape or policy.regime(ctx, group.knobs(lo)) is None:
        return ((lo, hi),)
    # Read the regime over the axes it depends on (`Policy.regime_knobs`; None: all of them)
    # and broadcast along the others (WAA's split ignores B_m: one read per B_E x T_P #GPUs).
    used = policy.regime_knobs
    sub = tuple(n if used is None or a.name in used else 1 for a, n in zip(group.axes, shape, strict=True))
    ids: dict[object, int] = {}
    codes = np.empty(sub, dtype=np.int64)
    for idx in itertools.product(*(range(s) for s in sub)):
        codes[idx] = ids.setdefault(policy.regime(ctx, group.knobs(idx)), len(ids))
    return tuple(_guillotine(np.broadcast_to(codes, shape), lo, hi, 0))


class _Evaluator:
    """Grid point -> Point for the search, remembering each Estimate and why points fail."""

    def __init__(self, policy: Policy, ctx: Context, groups: tuple[Group, ...], bound_s: float):
        self.policy, self.ctx, self.groups, self.bound_s = policy, ctx, groups, bound_s
        self.estimates: dict[tuple, Estimate] = {}
        self.reasons: Counter[str] = Counter()

    def __call__(self, key: int, idx: Index) -> Point:
        knobs = self.groups[key].knobs(idx)
        plan = self.policy.plan(self.ctx, knobs)
        est = evaluate(plan, self.ctx.workload)
        self.estimates[tuple(sorted(knobs.items()))] = est
        if not est.feasible:
            self.reasons[est.reason.split(":")[0]] += 1
            relaxed = evaluate(plan, self.ctx.workload, relaxed=True) if plan.costs is not None else None
            return Point(0.0, math.inf, False, relaxed.throughput_seq_s if relaxed else math.inf)
        if est.latency_s >= self.bound_s:
            self.reasons["latency"] += 1
        return Point(est.throughput_seq_s, est.latency_s, True)

    def estimate(self, key: int, idx: Index) -> Estimate:
        return self.estimates[tuple(sorted(self.groups[key].knobs(idx).items()))]


def _runs(ev: _Evaluator, bound_s: float, rules: Rules, opts: SearchOptions,
          use_exhaustive: bool) -> list[tuple[tuple[int, Index] | None, int]]:
    """(best (group, index) or None, evaluations) of each independent run."""
    if use_exhaustive:
        out = []
        for key, g in enumerate(ev.groups):
            res = exhaustive(lambda idx, key=key: ev(key, idx), g.shape, bound_s)
            out.append((None if res.best is None else (key, res.best), res.evaluations))
        return out
    roots = [Root(key, lo, hi) for key, g in enumerate(ev.groups) if g.axes
             for lo, hi in regime_boxes(ev.policy, ev.ctx, g)]
    if opts.share_incumbent:
        res = search_forest(ev, roots, bound_s, rules, opts.lazy_lower)
        return [(res.best, res.evaluations)]
    return [(res.best, res.evaluations)
            for res in (search_forest(ev, [r], bound_s, rules, opts.lazy_lower) for r in roots)]


def search_policy(ctx: Context, policy_name: str, bound_s: float, resolution: str = "fine",
                  use_exhaustive: bool = False, eps_throughput_rel: float = 0.01,
                  eps_latency_s: float = 0.0, options: SearchOptions | None = None) -> PolicyResult:
    policy = get_policy(policy_name)
    space = build_space(policy, ctx, policy.search_resolution or resolution)
    opts = options or SearchOptions.for_mode(ctx.mode)
    probes = space.groups[0].probe_axes() if space.groups and opts.probe_quasi_concave else ()
    rules = Rules(ctx.mode.bnb_split, ctx.mode.eps_throughput, eps_throughput_rel, eps_latency_s, probes)
    ev = _Evaluator(policy, ctx, space.groups, bound_s)
    best: Estimate | None = None
    total = 0
    for found, n in _runs(ev, bound_s, rules, opts, use_exhaustive):
        total += n
        if found is not None:
            est = ev.estimate(*found)
            if best is None or est.throughput_seq_s > best.throughput_seq_s:
                best = est
    reasons = ev.reasons
    reason = "" if best else (f"no schedule under the bound; most common: {reasons.most_common(1)[0][0]}"
                              if reasons else "no legal knob combination")
    return PolicyResult(policy_name, best, total, reason)


def find_schedule(ctx: Context, bound_s: float, policies: tuple[str, ...] = DEFAULT_POLICIES,
                  resolution: str = "fine", use_exhaustive: bool = False,
                  eps_throughput_rel: float = 0.01, eps_latency_s: float = 0.0,
                  options: SearchOptions | None = None) -> SearchResult:
    t0 = time.perf_counter()
    opts = options or SearchOptions.for_mode(ctx.mode)
    results = tuple(search_policy(ctx, p, bound_s, resolution, use_exhaustive, eps_throughput_rel,
                                  eps_latency_s, opts) for p in policies)
    feasible = [r.best for r in results if r.best is not None]
    best = max(feasible, key=lambda e: e.throughput_seq_s) if feasible else None
    return SearchResult(bound_s, best, results, sum(r.evaluations for r in results),
                        time.perf_counter() - t0, "exhaustive" if use_exhaustive else "branch-and-bound",
                        {"resolution": resolution, "eps_throughput_rel": eps_throughput_rel,
                         "eps_latency_s": eps_latency_s, "policies": list(policies),
                         "bnb_split": ctx.mode.bnb_split, "eps_throughput": ctx.mode.eps_throughput,
                         "monotone_axes": ctx.mode.monotone_axes,
                         **{f"search_{k}": v for k, v in asdict(opts).items()}})
