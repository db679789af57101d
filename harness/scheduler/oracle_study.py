"""Branch-and-bound against the exhaustive oracle on the fine grid (ExeGPT §5), per reading.

The paper reports its search as 3 s - 5 min against 5 h - 1 day exhaustively (§5) and gives
no optimality gap. Here, on the 80 scenarios of Fig. 6 ∪ Fig. 8 (harness/conf/experiment/fig6.yaml,
fig8.yaml: 20 model x task pairs on their paper clusters x bounds p10/p30/p70/Inf, §7), each
variant's `find_schedule` is compared with the oracle: every grid point of the same policies
through the same plan/evaluate, the best throughput under the bound. The grid is the same in
both readings (space.py), so the oracle enumerates every knob combination whatever the
search treats as an axis; it is evaluated once per pair and mode and read at each bound.

Columns of `study` (one row per variant x scenario): grid_points / evaluations =
pruning_ratio; gap_rel = 1 - B&B / oracle throughput (0 when both are NS, 1 when only the
oracle finds a schedule); below_oracle (gap_rel > 1e-9) and beyond_eps (gap_rel > eps_T).
`summary` condenses a table per variant. Compute only: callers write the files.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.cost_model import get_cost_model
from harness.policies import Context, get_policy
from harness.scheduler.bounds import resolve_bound
from harness.scheduler.search import DEFAULT_POLICIES, SearchOptions, find_schedule
from harness.scheduler.space import build_space
from harness.simulator.expected import evaluate
from harness.specs import get_cluster, get_model
from harness.specs.mode import Mode
from harness.specs.paper import BOUND_LABELS, LARGE_MODELS, PAPER_CLUSTER, SMALL_MID_MODELS
from harness.workload import get_task

# Fig. 6: small/mid models x S, T, C1; Fig. 8: large models x G, C1, C2 (§7); GPT-3 101B C1 is in both.
PAIRS: tuple[tuple[str, str], ...] = tuple(dict.fromkeys(
    [(m, t) for m in SMALL_MID_MODELS for t in ("S", "T", "C1")]
    + [(m, t) for m in LARGE_MODELS for t in ("G", "C1", "C2")]))
GAP_TOL = 1e-9          # a relative gap above this is "below the oracle" (float noise aside)
SEARCH_OPTIONS = ("bnb_split", "eps_throughput", "monotone_axes")   # change the search, not the points


@dataclass(frozen=True, slots=True)
class Variant:
    """A reading (`mode`) and how its boxes are searched (None: the mode's default)."""

    name: str
    mode: Mode
    options: SearchOptions | None = None


@dataclass(frozen=True, slots=True)
class Oracle:
    """Every grid point of every policy: the feasible ones' throughput and latency."""

    grid_points: int
    throughput_seq_s: np.ndarray
    latency_s: np.ndarray
    policy: tuple[str, ...]
    wall_s: float

    def best(self, bound_s: float) -> tuple[float, str]:
        """(best throughput with latency < bound, its policy); (0, "") if none."""
        ok = np.flatnonzero(self.latency_s < bound_s)
        if not len(ok):
            return 0.0, ""
        i = ok[np.argmax(self.throughput_seq_s[ok])]
        return float(self.throughput_seq_s[i]), self.policy[i]


def scenario_context(model: str, task: str, mode: Mode, cluster: str | None = None) -> Context:
    """Analytic cost model on `cluster` (default: the model's paper cluster, §7), read in `mode`."""
    c = get_cluster(cluster or PAPER_CLUSTER[model])
    return Context(get_model(model), c, get_task(task), get_cost_model("analytic", c), mode=mode)


def oracle(ctx: Context, policies: Sequence[str] = DEFAULT_POLICIES, resolution: str = "fine") -> Oracle:
    """Plan and evaluate every point of every policy's grid (what `exhaustive=True` visits)."""
    t0 = time.perf_counter()
    thr, lat, pol, n = [], [], [], 0
    for name in policies:
        policy = get_policy(name)
        for g in build_space(policy, ctx, resolution).groups:
            for idx in itertools.product(*(range(s) for s in g.shape)):
                est = evaluate(policy.plan(ctx, g.knobs(idx)), ctx.workload)
                n += 1
                if est.feasible:
                    thr.append(est.throughput_seq_s)
                    lat.append(est.latency_s)
                    pol.append(name)
    return Oracle(n, np.asarray(thr, float), np.asarray(lat, float), tuple(pol), time.perf_counter() - t0)


def evaluation_mode(mode: Mode) -> Mode:
    """`mode` with its search-only options at fixed values: modes equal under this evaluate
    (and grid) every point alike, so they share one oracle."""
    for option in SEARCH_OPTIONS:
        mode = mode.with_option(option, "bisect" if option == "bnb_split" else
                                "gap" if option == "eps_throughput" else "measured")
    return mode


def _row(v: Variant, model: str, task: str, label: str, bound_s: float, orc: Oracle,
         resolution: str, eps: float) -> dict:
    ctx = scenario_context(model, task, v.mode)
    res = find_schedule(ctx, bound_s, resolution=resolution, eps_throughput_rel=eps, options=v.options)
    got = res.best.throughput_seq_s if res.best else 0.0
    best, best_policy = orc.best(bound_s)
    gap = 1 - got / best if best > 0 else 0.0
    return {"variant": v.name, "mode": v.mode.label(), "model": model, "cluster": PAPER_CLUSTER[model],
            "task": task, "bound": label, "bound_s": None if math.isinf(bound_s) else bound_s,
            "grid_points": orc.grid_points, "evaluations": res.evaluations,
            "pruning_ratio": orc.grid_points / max(1, res.evaluations),
            "bnb_seq_s": got, "oracle_seq_s": best, "gap_rel": gap,
            "below_oracle": gap > GAP_TOL, "beyond_eps": gap > eps + GAP_TOL,
            "bnb_policy": res.best.policy if res.best else "", "oracle_policy": best_policy,
            "bnb_s": res.search_s, "oracle_s": orc.wall_s}


def study(variants: Sequence[Variant], pairs: Sequence[tuple[str, str]] = PAIRS,
          labels: Sequence[str] = BOUND_LABELS, resolution: str = "fine", eps: float = 0.01,
          progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per variant x (pair x bound label); the oracle once per pair and evaluation mode."""
    rows = []
    for model, task in pairs:
        for mode in dict.fromkeys(evaluation_mode(v.mode) for v in variants):
            ctx = scenario_context(model, task, mode)
            orc = oracle(ctx, DEFAULT_POLICIES, resolution)
            for label in labels:
                _, bound_s = resolve_bound(ctx, label, None)
                rows += [_row(v, model, task, label, bound_s, orc, resolution, eps)
                         for v in variants if evaluation_mode(v.mode) == mode]
            if progress:
                progress(f"{model}/{task} mode={mode.label()}: {orc.grid_points} points, {orc.wall_s:.1f} s")
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> dict[str, dict]:
    """Per variant: pruning ratio (median/min/max), scenarios below the oracle and beyond eps,
    the worst gap and where, and wall times."""
    out = {}
    for name, g in df.groupby("variant", sort=False):
        worst = g.loc[g["gap_rel"].idxmax()]
        out[str(name)] = {
            "mode": str(g["mode"].iloc[0]), "scenarios": len(g),
            "pruning_ratio_median": statistics.median(g["pruning_ratio"]),
            "pruning_ratio_min": float(g["pruning_ratio"].min()),
            "pruning_ratio_max": float(g["pruning_ratio"].max()),
            "evaluations_total": int(g["evaluations"].sum()), "grid_points_total": int(g["grid_points"].sum()),
            "below_oracle": int(g["below_oracle"].sum()), "beyond_eps": int(g["beyond_eps"].sum()),
            "worst_gap_rel": float(worst["gap_rel"]),
            "worst_scenario": f"{worst['model']}/{worst['task']}/{worst['bound']}",
            "bnb_s_total": float(g["bnb_s"].sum()),
            "oracle_s_total": float(g.drop_duplicates(["model", "task"])["oracle_s"].sum()),
        }
    return out
