"""Latency bounds of a scenario, derived from FasterTransformer (ExeGPT §7).

The paper runs FT over batch sizes from the minimum to the largest that fits in memory, in
steps of 4, and takes the **bottom 10%, 30% and 70%** of the resulting FT latencies as the
bounds, plus no bound (Inf). FT's latency is held to the *maximum* output length (§5), which
is what `evaluate(ft_plan).latency_s` returns. "Bottom x%" is read as the x-th percentile of
the FT latencies with numpy's `method="lower"`, so every bound is an actual FT latency (the
one at index floor(x/100 * (n-1)) of the sorted list), never an interpolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.errors import UserError, unknown_name
from harness.policies import Context, get_policy
from harness.simulator.expected import evaluate
from harness.specs.paper import BOUND_LABELS, FT_BATCH_STEP, FT_BOUND_PERCENTILES, PAPER_BOUNDS_S


def percentile_lower(values: list[float] | tuple[float, ...], q: float) -> float:
    """The q-th percentile with `method="lower"`: an element of `values`, never interpolated."""
    return float(np.percentile(np.asarray(values, dtype=float), q, method="lower"))


def max_ft_batch(ctx: Context) -> int:
    """Largest FT batch that fits in memory (0 if none), by bisection on plan feasibility
    (monotone in the batch), capped by the `batch_size` knob's high."""
    ft = get_policy("ft")

    def fits(b: int) -> bool:
        return ft.plan(ctx, {"batch_size": b}).feasible

    (knob,) = ft.knob_space(ctx)
    lo, hi = knob.low, min(knob.high, ctx.ft.max_batch or knob.high)   # ft_baseline.max_batch caps it
    if not fits(lo):
        return 0
    if fits(hi):
        return hi
    while hi - lo > 1:                 # invariant: fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def ft_batch_sizes(ctx: Context) -> list[int]:
    """1, 4, 8, ... up to the largest multiple of 4 that fits (§7); [] if batch 1 does not fit."""
    top = max_ft_batch(ctx)
    return [1, *range(FT_BATCH_STEP, top + 1, FT_BATCH_STEP)] if top else []


@dataclass(frozen=True, slots=True)
class Bounds:
    """FT sweep of one scenario and the bounds derived from it (§7). With no feasible FT
    batch (the paper's "NS") the latencies are empty, p*_s are None and `reason` says why."""

    batch_sizes: tuple[int, ...]
    ft_latencies_s: tuple[float, ...]          # at the maximum output length (§5)
    ft_throughputs_seq_s: tuple[float, ...]
    p10_s: float | None
    p30_s: float | None
    p70_s: float | None
    inf_s: float = math.inf
    reason: str = ""

    @property
    def supported(self) -> bool:
        return bool(self.ft_latencies_s)

    def by_label(self) -> dict[str, float | None]:
        return {"p10": self.p10_s, "p30": self.p30_s, "p70": self.p70_s, "inf": self.inf_s}

    def as_dict(self) -> dict:
        """JSON-ready: inf becomes None (JSON has no Infinity)."""
        return {
            "batch_sizes": list(self.batch_sizes),
            "ft_latencies_s": [round(x, 4) for x in self.ft_latencies_s],
            "ft_throughputs_seq_s": [round(x, 4) for x in self.ft_throughputs_seq_s],
            "bounds_s": {k: None if v is None or math.isinf(v) else round(v, 4) for k, v in self.by_label().items()},
            "rule": "numpy percentile 10/30/70, method='lower': each bound is one of the FT latencies",
            **({"reason": self.reason} if self.reason else {}),
        }


def derive_bounds(ctx: Context) -> Bounds:
    """FT latencies and throughputs over `ft_batch_sizes` and the p10/p30/p70/Inf bounds (§7).
    Never raises for an infeasible scenario: returns an NS `Bounds` with the reason."""
    ft = get_policy("ft")
    batches = ft_batch_sizes(ctx)
    if not batches:
        reason = ft.plan(ctx, {"batch_size": 1}).reason
        return Bounds((), (), (), None, None, None, reason=f"NS: FT batch 1 does not fit ({reason})")
    ests = [evaluate(ft.plan(ctx, {"batch_size": b}), ctx.workload) for b in batches]
    lat = tuple(e.latency_s for e in ests)
    p = {k: percentile_lower(lat, q) for k, q in FT_BOUND_PERCENTILES.items()}
    return Bounds(tuple(batches), lat, tuple(e.throughput_seq_s for e in ests), p["p10"], p["p30"], p["p70"])


def best_ft(ctx: Context, bound_s: float, bounds: Bounds | None = None) -> dict | None:
    """FasterTransformer tuned the paper's way: the best-throughput batch of the FT sweep whose
    latency (maximum output length, §5) is under the bound; None if none is ("NS")."""
    b = bounds or derive_bounds(ctx)
    ok = [(t, lat, bs) for bs, lat, t in zip(b.batch_sizes, b.ft_latencies_s, b.ft_throughputs_seq_s, strict=True)
          if lat < bound_s]
    if not ok:
        return None
    t, lat, bs = max(ok)
    return {"policy": "ft", "batch_size": bs, "throughput_seq_s": t, "latency_s": lat}


def resolve_bound(ctx: Context, bound: str | None, bound_s: float | None) -> tuple[str, float]:
    """(label, seconds) of the bound a run is held to: `bound` = p10|p30|p70|inf (derived from
    FT, §7) or `bound_s` = seconds > 0, exactly one of them. inf is `math.inf`."""
    how = f"set bound={'|'.join(BOUND_LABELS)} or bound_s=<seconds>"
    if isinstance(bound, float) and bound == math.inf:
        bound = "inf"                 # Hydra parses `bound=inf` as a float
    if (bound is None) == (bound_s is None):
        raise UserError(f"bound, bound_s: {'both set' if bound is not None else 'missing'}; {how}, exactly one")
    if bound_s is not None:
        if isinstance(bound_s, bool) or not isinstance(bound_s, int | float) or not bound_s > 0:
            raise UserError(f"bound_s: must be a number of seconds > 0, got {bound_s!r}")
        return f"{float(bound_s):g}s", float(bound_s)
    if bound not in BOUND_LABELS:
        raise unknown_name("bound", bound, BOUND_LABELS)
    if bound == "inf":
        return "inf", math.inf
    b = derive_bounds(ctx)
    if not b.supported:
        raise UserError(f"bound: {bound} undefined, {b.reason}; use bound=inf or bound_s=<seconds>")
    return bound, b.by_label()[bound]


def paper_comparison(model: str, cluster: str, task: str, bounds: Bounds) -> dict | None:
    """Our bounds beside the published ones for this scenario (specs.paper.PAPER_BOUNDS_S, §7;
    None if the paper gives none): the same label where the paper names it, else our nearest
    finite bound."""
    if (model, cluster, task) not in PAPER_BOUNDS_S:
        return None
    published, source = PAPER_BOUNDS_S[model, cluster, task]
    ours = {k: v for k, v in bounds.by_label().items() if v is not None and math.isfinite(v)}
    rows = []
    for label, paper_s in published.items():
        mine = label if label in ours else min(ours, key=lambda k: abs(ours[k] - paper_s), default=None)
        ours_s = ours.get(mine)
        rows.append({"label": label, "paper_s": paper_s, "ours_label": mine,
                     "ours_s": None if ours_s is None else round(ours_s, 4),
                     "ours_over_paper": None if ours_s is None else round(ours_s / paper_s, 3)})
    return {"source": source, "bounds": rows}
