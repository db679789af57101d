"""Knob spaces for the search: grids of the box axes, options of the enumerated knobs.

A knob whose throughput and latency move the same way (ExeGPT §5) becomes an axis of the
branch-and-bound box, *oriented* so that a larger index raises both throughput and latency
(N_D, B_m and T_P #GPUs are reversed: fewer of them raises both). Which knobs are axes is
`ctx.mode.monotone_axes`:
- `measured` (ours): the policy's KnobSpec directions. Knobs it marks non-monotone
  (`throughput_dir == 0`: T_P degree and #GPUs, B_m) are enumerated: the search runs once per
  combination. N_D stays an axis but is flagged `quasi_concave`: in our timeline throughput
  rises as N_D falls only down to a peak (the per-cycle drain grows with B_D ~ 1/N_D), so a
  box's upper corner bounds it only where a probe shows throughput still rising into it
  (harness.scheduler.bnb).
- `paper`: the directions of the §4 table (PAPER_DIRECTIONS): T_P #GPUs and B_m are monotone,
  so they are axes too, and only the T_P degree is enumerated (§5: "run once per TP degree").
The grid of every knob is the same in both readings (only its role differs), so the
exhaustive oracle evaluates the same points either way. T_P #GPUs depends on the degree
(multiples of it; 0 at degree 1), so each enumerated combination is a `Group` with its own
axes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from harness.policies.base import Context, KnobSpec, Policy
from harness.policies.common import tp_degrees
from harness.specs.paper import PAPER_DIRECTIONS

# Grid resolutions (ours: the paper gives no numeric ranges, §4): the integers up to `dense`,
# then `per_octave` points per doubling.
RESOLUTIONS = {"fine": (32, 16), "coarse": (8, 2)}

# PAPER_DIRECTIONS (specs.paper, the §4 table): the axis directions under `monotone_axes=paper`;
# the T_P degree is categorical (§5).

# Knobs whose throughput is unimodal, not monotone, in our timeline (measured: RRA throughput
# falls by up to ~30% from its peak N_D down to N_D = 1 at large B_E); latency and memory stay
# monotone in them. Only under `monotone_axes=measured`.
QUASI_CONCAVE: frozenset[str] = frozenset({"decode_iters"})


def ladder(low: int, high: int, dense: int, per_octave: int) -> tuple[int, ...]:
    """Sorted grid over [low, high]: every integer up to `dense`, then steps growing with
    the value (per_octave points per doubling), always including `high`."""
    out, v = [], low
    while v <= high:
        out.append(v)
        step = 1 if v < dense else max(1, (1 << (v.bit_length() - 1)) // per_octave)
        v += step
    if out[-1] != high:
        out.append(high)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Axis:
    name: str
    values: tuple[int, ...]     # oriented: index up -> throughput up, latency up
    quasi_concave: bool = False  # throughput unimodal along it: corners need a probe (bnb.py)


Fixed = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Group:
    """One combination of the enumerated knobs and the box axes searched under it."""

    fixed: Fixed
    axes: tuple[Axis, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes)

    def knobs(self, index: tuple[int, ...]) -> dict[str, int]:
        d = dict(self.fixed)
        d.update({a.name: a.values[i] for a, i in zip(self.axes, index, strict=True)})
        return d

    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def probe_axes(self) -> tuple[int, ...]:
        return tuple(i for i, a in enumerate(self.axes) if a.quasi_concave)


@dataclass(frozen=True, slots=True)
class SearchSpace:
    groups: tuple[Group, ...]

    @property
    def axes(self) -> tuple[Axis, ...]:
        """The first group's axes (the same names, in the same order, in every group)."""
        return self.groups[0].axes if self.groups else ()

    @property
    def fixed(self) -> tuple[Fixed, ...]:
        return tuple(g.fixed for g in self.groups)

    def group(self, fixed: Fixed) -> Group:
        return next(g for g in self.groups if g.fixed == fixed)

    def knobs(self, index: tuple[int, ...], fixed: Fixed) -> dict[str, int]:
        return self.group(fixed).knobs(index)

    def size(self) -> int:
        return sum(g.size() for g in self.groups)


MAX_STEPPED = 16      # a stepped knob with this many values or fewer is searched exhaustively


def _options(k: KnobSpec) -> list[int]:
    vals = {k.low, k.high} | {v for v in (1 << i for i in range(12)) if k.low <= v <= k.high}
    return sorted(vals)


def directions(k: KnobSpec, ctx: Context) -> tuple[int, int]:
    """(throughput, latency) direction of knob `k` under the mode's reading (module docstring)."""
    if ctx.mode.monotone_axes == "paper" and k.name in PAPER_DIRECTIONS:
        return PAPER_DIRECTIONS[k.name]
    return k.throughput_dir, k.latency_dir


def is_axis(k: KnobSpec, ctx: Context) -> bool:
    t, lat = directions(k, ctx)
    return k.name != "tp_degree" and t != 0 and t == lat


def knob_grid(k: KnobSpec, degree: int | None, dense: int, per_octave: int) -> list[int]:
    """Grid values of one knob, independent of its role: a ladder for knobs the policy
    declares monotone, powers of two (and the ends) for the others; T_P #GPUs is 0 at degree 1,
    else the multiples of the degree."""
    if k.name == "tp_gpus":
        return [0] if degree in (None, 1) else [v for v in _options(k) if v and v % degree == 0]
    if k.throughput_dir != 0 and k.throughput_dir == k.latency_dir:
        return _on_step(k, list(ladder(k.low, k.high, dense, per_octave)))
    return _on_step(k, _options(k))


def _on_step(k: KnobSpec, grid: list[int]) -> list[int]:
    """Only values the knob accepts (`low + i * step`): a knob of step > 1 with at most
    MAX_STEPPED values is searched over all of them, else over the grid's values on its step."""
    if k.step == 1:
        return grid
    own = list(k.values())
    if len(own) <= MAX_STEPPED:
        return own
    return sorted({v for v in grid if (v - k.low) % k.step == 0} | {own[0], own[-1]})


# The knobs that set how many requests a batch holds, by policy: FT/DSI, RRA/WAA (the encoder
# batch), vLLM/Sarathi/ORCA/DistServe, the template's. `Context.batch_cap` caps them.
BATCH_KNOBS = ("batch_size", "encode_batch_size", "max_num_seqs", "max_batch")


def _capped(k: KnobSpec, cap: int | None) -> KnobSpec:
    if cap is None or k.name not in BATCH_KNOBS or k.high <= cap:
        return k
    return replace(k, high=max(k.low, k.low + (cap - k.low) // k.step * k.step))


def build_space(policy: Policy, ctx: Context, resolution: str = "fine") -> SearchSpace:
    dense, per_octave = RESOLUTIONS[resolution]
    knobs = [_capped(k, ctx.batch_cap) for k in policy.search_space(ctx)]
    axis_knobs = [k for k in knobs if is_axis(k, ctx)]
    enumerated = [k for k in knobs if not is_axis(k, ctx) and k.name != "tp_degree"]
    measured = ctx.mode.monotone_axes == "measured"
    degree_space = tp_degrees(ctx) if any(k.name == "tp_degree" for k in knobs) else [None]
    groups = []
    for d in degree_space:
        axes = []
        for k in axis_knobs:
            vals = tuple(knob_grid(k, d, dense, per_octave))
            axes.append(Axis(k.name, vals if directions(k, ctx)[0] > 0 else vals[::-1],
                             measured and k.name in QUASI_CONCAVE))
        if any(not a.values for a in axes):
            continue
        per_knob = [knob_grid(k, d, dense, per_octave) for k in enumerated]
        for values in itertools.product(*per_knob):
            combo = tuple(zip((k.name for k in enumerated), values, strict=True))
            groups.append(Group(((("tp_degree", d),) if d is not None else ()) + combo, tuple(axes)))
    return SearchSpace(tuple(groups))
