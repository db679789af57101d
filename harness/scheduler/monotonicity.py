"""How monotone throughput and latency are in each knob (ExeGPT §5 and Table 5).

The branch-and-bound search (§5) assumes throughput and latency move monotonically with every
control variable, within tolerances. The paper checked this on GPT-3 39B: with a 5% tolerance
97% of points are monotone in throughput and 96% in latency; the worst case is B_m on task T
(~10.5% non-monotone latency). This module repeats the measurement on our cost model.

Directions are the **paper's** (§4 table: as the knob grows), not the KnobSpec's, which marks
knobs we found non-monotone with 0:
    B_E (encode_batch_size): throughput up,   latency up
    N_D (decode_iters):      throughput down, latency down   (smaller N_D raises both)
    B_m (micro_batches):     throughput down, latency down
    T_P #GPUs (tp_gpus):     throughput down, latency down
A neighbouring pair (a, b) of feasible grid points, b's knob value larger and every other knob
equal, is monotone in the direction "up" if value(b) >= value(a) - tol*scale, "down" if
value(b) <= value(a) + tol*scale. Two readings of the scale (`Tolerance`), both reported:
- `value` (ours until now): scale = value(a), each pair's own value (a relative tolerance);
- `bound` (the paper's, §5: eps_L is a slack on the latency bound L_B, eps_T one on
  throughput): latency scale = L_B, the scenario's p70 FT-derived bound (§7); throughput
  keeps scale = value(a). Columns `*_lb`.
The T_P degree is categorical: it is held at each legal degree in turn (`tp_degrees`) and
never walked. The paper measured GPT-3 39B only (`STUDY_MODEL`); `paper_models_table` adds
T5-11B and GPT-3 101B, each on its paper cluster.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from harness.policies import EXEGPT_POLICIES, Context, get_policy
from harness.policies.common import tp_degrees
from harness.simulator.expected import evaluate
from harness.specs.paper import (
    MONOTONE_SHARES,
    MONOTONE_TOLERANCE_REL,
    PAPER_CLUSTER,
    PAPER_DIRECTIONS,
    PAPER_TASKS,
    TABLE5_MODEL,
)

TOLERANCE = MONOTONE_TOLERANCE_REL                 # 5% (§5)
STUDY_POLICIES = EXEGPT_POLICIES
STUDY_TASKS = PAPER_TASKS                          # paper tasks (§7), all on GPT-3 39B
STUDY_MODEL, STUDY_CLUSTER = TABLE5_MODEL, PAPER_CLUSTER[TABLE5_MODEL]
# Beyond the paper (which measured GPT-3 39B only): two more models on their paper clusters.
TABLE5_MODELS = (TABLE5_MODEL, "t5-11b", "gpt3-101b")
PAPER_SHARES = {k: v.value for k, v in MONOTONE_SHARES.items()}
# (throughput, latency) direction as the knob grows: PAPER_DIRECTIONS, the §4 table (specs.paper).
# Sampled values of each walked knob (ours: the paper gives no numeric ranges, §4); other
# knobs are held at every combination of theirs.
GRID: dict[str, tuple[int, ...]] = {
    "encode_batch_size": (1, 2, 4, 8, 16, 32, 64, 128),
    "decode_iters": (1, 2, 4, 8, 16, 32, 64),
    "micro_batches": (1, 2, 4, 8),
}
COLUMNS = ["policy", "task", "knob", "pairs", "thr_monotone_share", "lat_monotone_share",
           "thr_any_direction_share", "lat_any_direction_share", "thr_data_dir", "lat_data_dir",
           "model", "cluster", "latency_bound_s", "thr_monotone_share_lb", "lat_monotone_share_lb"]
SHARE_COLUMNS = ["thr_monotone_share", "lat_monotone_share", "thr_any_direction_share",
                 "lat_any_direction_share", "thr_monotone_share_lb", "lat_monotone_share_lb"]


@dataclass(frozen=True, slots=True)
class Tolerance:
    """A pair's slack is `rel` x scale; a scale of None is the pair's own `before` value."""

    name: str = "value"
    rel: float = TOLERANCE
    throughput_scale_seq_s: float | None = None
    latency_scale_s: float | None = None


def bound_tolerance(ctx: Context, rel: float = TOLERANCE) -> Tolerance:
    """The paper's reading (§5): latency slack rel x L_B, L_B = the scenario's p70 FT-derived
    bound (§7; NaN where FT is infeasible); throughput slack rel x each pair's value."""
    from harness.scheduler.bounds import derive_bounds
    p70 = derive_bounds(ctx).p70_s
    return Tolerance("bound", rel, None, math.nan if p70 is None else p70)


def is_monotone(before: float, after: float, direction: int, tol: float = TOLERANCE,
                scale: float | None = None) -> bool:
    """Does `before -> after` (knob grown) move in `direction` (+1 up, -1 down) within
    `tol` x `scale` (scale None: `before`, a relative tolerance)?"""
    slack = tol * (before if scale is None else scale)
    if direction > 0:
        return after >= before - slack
    return after <= before + slack


@dataclass(frozen=True, slots=True)
class Shares:
    """Share of pairs monotone in the paper's direction, in the better of the two directions
    (the data's own; NaN without pairs), and that direction (+1/-1, 0 without pairs)."""

    paper: float
    any_direction: float
    data_dir: int


def monotone_shares(pairs: Sequence[tuple[float, float]], direction: int, tol: float = TOLERANCE,
                    scale: float | None = None) -> Shares:
    """Classify each (before, after) pair; see `is_monotone`. A NaN scale gives NaN shares."""
    if not pairs or (scale is not None and math.isnan(scale)):
        return Shares(float("nan"), float("nan"), 0)
    share = {d: sum(is_monotone(a, b, d, tol, scale) for a, b in pairs) / len(pairs) for d in (+1, -1)}
    data_dir = max(share, key=lambda d: (share[d], d == direction))
    return Shares(share[direction], share[data_dir], data_dir)


def layouts(ctx: Context, tp_gpus_high: int) -> list[tuple[int, int]]:
    """(T_P degree, T_P #GPUs) pairs with TP in use: each legal degree > 1 on every multiple
    of it up to `tp_gpus_high`; plus (1, 0), no TP."""
    return [(1, 0)] + [(d, g) for d in tp_degrees(ctx) if d > 1 for g in range(d, tp_gpus_high + 1, d)]


def knob_grid(policy: str, ctx: Context) -> dict[str, tuple[int, ...]]:
    """Grid of every walked knob of `policy` here, capped by its KnobSpec range."""
    space = {k.name: k for k in get_policy(policy).knob_space(ctx)}
    return {name: tuple(v for v in values if space[name].low <= v <= space[name].high)
            for name, values in GRID.items() if name in space}


def axis_pairs(policy: str, ctx: Context) -> dict[str, list[tuple[tuple[float, float], tuple[float, float]]]]:
    """For each walked knob: ((thr_a, lat_a), (thr_b, lat_b)) of every pair of neighbouring
    grid points along its axis, others fixed, both feasible. tp_gpus walks 0, d, 2d, ...
    at each degree d > 1 (0 = no TP); the other knobs are walked at every TP layout."""
    p = get_policy(policy)
    grid = knob_grid(policy, ctx)
    tp_high = next(k.high for k in p.knob_space(ctx) if k.name == "tp_gpus")
    cache: dict[tuple[tuple[str, int], ...], tuple[float, float] | None] = {}

    def point(knobs: dict[str, int]) -> tuple[float, float] | None:
        key = tuple(sorted(knobs.items()))
        if key not in cache:
            e = evaluate(p.plan(ctx, knobs), ctx.workload)
            cache[key] = (e.throughput_seq_s, e.latency_s) if e.feasible else None
        return cache[key]

    def walk(axis: str, values: Sequence[int], fixed: Iterable[dict[str, int]]) -> list:
        out = []
        for rest in fixed:
            pts = [point({**rest, axis: v}) for v in values]
            out += [(a, b) for a, b in itertools.pairwise(pts) if a is not None and b is not None]
        return out

    def combos(names: Sequence[str]) -> list[dict[str, int]]:
        return [dict(zip(names, vs, strict=True)) for vs in itertools.product(*(grid[n] for n in names))]

    result = {}
    for axis, values in grid.items():
        others = combos([n for n in grid if n != axis])
        fixed = [{**o, "tp_degree": d, "tp_gpus": g} for o in others for d, g in layouts(ctx, tp_high)]
        result[axis] = walk(axis, values, fixed)
    result["tp_gpus"] = [pair for d in tp_degrees(ctx) if d > 1
                         for pair in walk("tp_gpus", [0, *range(d, tp_high + 1, d)],
                                          [{**o, "tp_degree": d} for o in combos(list(grid))])]
    return result


def _row(policy: str, task: str, knob: str, ctx: Context, pairs: list, tol: float, lb: Tolerance) -> list:
    thr_dir, lat_dir = PAPER_DIRECTIONS[knob]
    thr_pairs, lat_pairs = [(a[0], b[0]) for a, b in pairs], [(a[1], b[1]) for a, b in pairs]
    thr, lat = monotone_shares(thr_pairs, thr_dir, tol), monotone_shares(lat_pairs, lat_dir, tol)
    thr_lb = monotone_shares(thr_pairs, thr_dir, lb.rel, lb.throughput_scale_seq_s)
    lat_lb = monotone_shares(lat_pairs, lat_dir, lb.rel, lb.latency_scale_s)
    return [policy, task, knob, len(pairs), thr.paper, lat.paper, thr.any_direction, lat.any_direction,
            thr.data_dir, lat.data_dir, ctx.model.name, ctx.cluster.name, lb.latency_scale_s,
            thr_lb.paper, lat_lb.paper]


def monotonicity_table(scenarios: Sequence[tuple[str, Context]], policies: Sequence[str] = STUDY_POLICIES,
                       tol: float = TOLERANCE) -> pd.DataFrame:
    """One row per (model, policy, task, knob): pairs measured and the shares under both
    tolerance readings (module docstring). `scenarios` are (task label, context) pairs."""
    rows = []
    for task, ctx in scenarios:
        lb = bound_tolerance(ctx, tol)
        for policy in policies:
            rows += [_row(policy, task, knob, ctx, pairs, tol, lb) for knob, pairs in axis_pairs(policy, ctx).items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def paper_models_table(context_for: Callable[[str, str, str], Context], models: Sequence[str] = TABLE5_MODELS,
                       tasks: Sequence[str] = STUDY_TASKS, policies: Sequence[str] = STUDY_POLICIES,
                       tol: float = TOLERANCE) -> pd.DataFrame:
    """`monotonicity_table` for each model on its paper cluster (§7) x every task;
    `context_for(model, cluster, task)` builds the contexts (and so carries the mode)."""
    return monotonicity_table([(t, context_for(m, PAPER_CLUSTER[m], t)) for m in models for t in tasks],
                              policies, tol)


def overall_shares(table: pd.DataFrame) -> dict[str, float]:
    """Pair-weighted shares over the whole table, as the paper pools all points (§5); rows
    whose share is NaN (no L_B: FT infeasible) are left out of that share's pool."""
    out: dict[str, float] = {"pairs": int(table["pairs"].sum())}
    for col in (c for c in SHARE_COLUMNS if c in table.columns):
        ok = table[col].notna()
        n = table.loc[ok, "pairs"].sum()
        out[col] = float((table.loc[ok, col] * table.loc[ok, "pairs"]).sum() / n) if n else float("nan")
    return out


def shares_by_model(table: pd.DataFrame) -> pd.DataFrame:
    """`overall_shares` per (model, cluster): the Table 5 summary under both readings."""
    rows = [{"model": m, "cluster": c, **overall_shares(g)} for (m, c), g in table.groupby(["model", "cluster"],
                                                                                          sort=False)]
    return pd.DataFrame(rows)
