"""Knob spaces for the search: grids of monotone knobs, options of the enumerated ones.

A knob the policy declares monotone (throughput and latency move the same way, ExeGPT §5)
becomes an axis of the branch-and-bound box, *oriented* so that a larger index raises both
throughput and latency (N_D is reversed: fewer decoding iterations per encoding raises both).
Knobs declared non-monotone (`throughput_dir == 0`: T_P degree and #GPUs, B_m) are
enumerated: the search runs once per combination (the paper runs once per TP degree).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from harness.policies.base import Context, KnobSpec, Policy
from harness.policies.common import tp_degrees

# Grid resolutions: the integers up to `dense`, then `per_octave` points per doubling.
RESOLUTIONS = {"fine": (32, 16), "coarse": (8, 2)}


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


@dataclass(frozen=True, slots=True)
class SearchSpace:
    axes: tuple[Axis, ...]                             # branch-and-bound dimensions
    fixed: tuple[tuple[tuple[str, int], ...], ...]     # combinations of enumerated knobs

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes)

    def knobs(self, index: tuple[int, ...], fixed: tuple[tuple[str, int], ...]) -> dict[str, int]:
        d = dict(fixed)
        d.update({a.name: a.values[i] for a, i in zip(self.axes, index, strict=True)})
        return d

    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n * len(self.fixed)


def _options(ctx: Context, k: KnobSpec) -> list[int]:
    vals = {k.low, k.high} | {v for v in (1 << i for i in range(12)) if k.low <= v <= k.high}
    return sorted(vals)


def build_space(policy: Policy, ctx: Context, resolution: str = "fine") -> SearchSpace:
    dense, per_octave = RESOLUTIONS[resolution]
    axes, enumerated = [], []
    for k in policy.knob_space(ctx):
        if k.throughput_dir != 0 and k.throughput_dir == k.latency_dir:
            vals = ladder(k.low, k.high, dense, per_octave)
            axes.append(Axis(k.name, vals if k.throughput_dir > 0 else vals[::-1]))
        elif k.name != "tp_degree":
            enumerated.append(k)
    combos = []
    names = [k.name for k in enumerated]
    degree_space = tp_degrees(ctx) if any(k.name == "tp_degree" for k in policy.knob_space(ctx)) else [None]
    for d in degree_space:
        per_knob = []
        for k in enumerated:
            if k.name == "tp_gpus":   # 0 at degree 1, else multiples of the degree
                opts = [0] if d in (None, 1) else [v for v in _options(ctx, k) if v and v % d == 0]
            else:
                opts = _options(ctx, k)
            per_knob.append(opts)
        for values in itertools.product(*per_knob):
            combo = tuple(zip(names, values, strict=True))
            combos.append(((("tp_degree", d),) if d is not None else ()) + combo)
    return SearchSpace(tuple(axes), tuple(combos))
