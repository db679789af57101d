"""Monotonic branch-and-bound over boxes (ExeGPT §5, Algorithm 1), generalised to k knobs.

In oriented index coordinates (harness.scheduler.space) throughput and latency both rise
with every coordinate, so over a box [lo, hi]:
- the upper corner bounds throughput from above (and has the box's worst latency);
- the lower corner bounds latency from below (and has the box's lowest throughput).
Steps, as in the paper: the low corner of the whole space is the first incumbent T*; if the
high corner meets the bound it is optimal. Pop the box with the best throughput bound, split
it, and for each child evaluate its upper and lower corners: drop the child if even its lower
corner misses the bound (latency >= L + eps_L, or memory), take its upper corner as solved
if that meets the bound, else keep it. Drop boxes whose bound cannot beat T* by eps_T. Stop
when no box remains.
Deviation from the paper: a box is split in half along its longest side (the paper's 2-D
version evaluates the two off-diagonal corners and splits towards the better feasible one);
this costs no extra evaluations and generalises to any k.
A corner that does not fit in memory bounds its box by the throughput it would have with
unlimited memory (monotone in the same knobs), or +inf when the policy cannot price it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

Index = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Point:
    throughput_seq_s: float
    latency_s: float
    fits: bool                  # False: infeasible for a reason other than latency (memory)
    throughput_bound: float = math.inf   # when not fits: throughput ignoring memory (an upper bound)


@dataclass(frozen=True, slots=True)
class BnBResult:
    best: Index | None
    best_throughput_seq_s: float
    evaluations: int


def branch_and_bound(evaluate: Callable[[Index], Point], shape: tuple[int, ...], bound_s: float,
                     eps_throughput_rel: float = 0.01, eps_latency_s: float = 0.0) -> BnBResult:
    cache: dict[Index, Point] = {}

    def ev(idx: Index) -> Point:
        if idx not in cache:
            cache[idx] = evaluate(idx)
        return cache[idx]

    def ok(p: Point) -> bool:
        return p.fits and p.latency_s < bound_s

    best: Index | None = None
    best_t = -math.inf

    def offer(idx: Index, p: Point) -> None:
        nonlocal best, best_t
        if ok(p) and p.throughput_seq_s > best_t:
            best, best_t = idx, p.throughput_seq_s

    if not shape or any(s == 0 for s in shape):
        return BnBResult(None, 0.0, 0)
    lo0, hi0 = tuple(0 for _ in shape), tuple(s - 1 for s in shape)
    p_lo, p_hi = ev(lo0), ev(hi0)
    offer(lo0, p_lo)
    offer(hi0, p_hi)
    if ok(p_hi) or not (p_lo.fits and p_lo.latency_s < bound_s + eps_latency_s):
        return BnBResult(best, max(best_t, 0.0), len(cache))

    def upper_bound(p: Point) -> float:
        return p.throughput_seq_s if p.fits else p.throughput_bound

    heap: list[tuple[float, int, Index, Index]] = [(-upper_bound(p_hi), 0, lo0, hi0)]
    counter = 1
    while heap:
        neg_ub, _, lo, hi = heapq.heappop(heap)
        if -neg_ub <= best_t * (1 + eps_throughput_rel):
            continue
        dim = max(range(len(lo)), key=lambda d: hi[d] - lo[d])
        if hi[dim] == lo[dim]:
            continue                          # a single point: both corners already seen
        mid = (lo[dim] + hi[dim]) // 2
        halves = ((lo, hi[:dim] + (mid,) + hi[dim + 1:]), (lo[:dim] + (mid + 1,) + lo[dim + 1:], hi))
        for c_lo, c_hi in halves:
            p_clo = ev(c_lo)
            offer(c_lo, p_clo)
            if not (p_clo.fits and p_clo.latency_s < bound_s + eps_latency_s):
                continue                      # nothing in this child meets the bound
            p_chi = ev(c_hi)
            offer(c_hi, p_chi)
            if ok(p_chi):
                continue                      # solved: its best point is the upper corner
            ub = upper_bound(p_chi)
            if ub > best_t * (1 + eps_throughput_rel):
                heapq.heappush(heap, (-ub, counter, c_lo, c_hi))
                counter += 1
    return BnBResult(best, max(best_t, 0.0), len(cache))


def exhaustive(evaluate: Callable[[Index], Point], shape: tuple[int, ...], bound_s: float) -> BnBResult:
    """The oracle: every grid point."""
    import itertools
    best, best_t, n = None, -math.inf, 0
    for idx in itertools.product(*(range(s) for s in shape)):
        p = evaluate(idx)
        n += 1
        if p.fits and p.latency_s < bound_s and p.throughput_seq_s > best_t:
            best, best_t = idx, p.throughput_seq_s
    return BnBResult(best, max(best_t, 0.0), n)
