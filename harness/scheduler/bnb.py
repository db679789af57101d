"""Monotonic branch-and-bound over boxes (ExeGPT §5, Algorithm 1), generalised to k knobs.

In oriented index coordinates (harness.scheduler.space) throughput and latency both rise
with every coordinate, so over a box [lo, hi]:
- the upper corner bounds throughput from above (and has the box's worst latency);
- the lower corner bounds latency from below (and has the box's lowest throughput).
Steps, as in the paper: the low corner of the whole space is the first incumbent T*; if the
high corner meets the bound it is optimal. Pop the box with the best throughput bound, split
it, and for each child evaluate its lower and upper corners: drop the child if even its lower
corner misses the bound (latency >= L + eps_L, or memory), take its upper corner as solved
if that meets the bound, else keep it. Drop boxes that cannot beat T* (`Rules.prune`). Stop
when no box remains.

Split rule (`Rules.split`, `mode.bnb_split`):
- `corners` (the paper): evaluate the box's off-diagonal corners and split towards the better
  feasible one, or along the longest side if neither is feasible. In k dimensions the
  off-diagonal corners are the k corners `hi` with one axis d lowered to `lo[d]` (for k = 2
  exactly (a1, b2) and (b1, a2)). A feasible one says that lowering axis d alone restores the
  bound, so the box is halved along d: the lower child's upper corner moves from `hi` towards
  that corner. Among several feasible corners the one with the highest throughput wins (the
  lowest axis on ties). Costs up to k extra evaluations per split box.
- `bisect` (ours): halve the longest side; no extra evaluations.
Prune rule (`Rules.prune`, `mode.eps_throughput`), eps = eps_throughput_rel:
- `slack` (the paper: "drop boxes whose upper throughput + eps_T < T*"): eps is tolerance for
  non-monotonicity, relative here: keep a box while bound * (1 + eps) >= T*.
- `gap` (ours): drop a box unless its bound beats T* by more than eps: bound > T* * (1 + eps).
A corner that does not fit in memory bounds its box by the throughput it would have with
unlimited memory (monotone in the same knobs), or +inf when the policy cannot price it.

Quasi-concave axes (`Rules.probe_axes`, ours: N_D): throughput is unimodal, not monotone,
along them, so the upper corner bounds the box only if throughput still rises into it. Before
a box is dropped on its bound, or taken as solved at its upper corner, one probe per such axis
evaluates `hi` one step lower on it: if throughput is lower there, the corner is a valid bound
(unimodal rows, and throughput monotone in the other axes); if not, the box's peak lies inside
and the box is split along that axis instead.

Many boxes (`Root`s: enumerated knob combinations, regime runs) can be searched as one forest:
one heap, one incumbent, each root with its own evaluation function (`search_forest`); a
combination whose bound cannot beat the best schedule of another is then dropped unexpanded.
With `lazy`, a box's lower corner is evaluated only when the box is popped and not dropped on
its bound, so a dropped box costs its upper corner alone. `branch_and_bound` is the
single-box search of Algorithm 1 (`lazy` off: both corners of every child, step 3).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Index = tuple[int, ...]
SPLITS = ("corners", "bisect")
PRUNES = ("slack", "gap")


@dataclass(frozen=True, slots=True)
class Point:
    throughput_seq_s: float
    latency_s: float
    fits: bool                  # False: infeasible for a reason other than latency (memory)
    throughput_bound: float = math.inf   # when not fits: throughput ignoring memory (an upper bound)

    @property
    def upper_bound(self) -> float:
        return self.throughput_seq_s if self.fits else self.throughput_bound


@dataclass(frozen=True, slots=True)
class BnBResult:
    best: Index | None
    best_throughput_seq_s: float
    evaluations: int


@dataclass(frozen=True, slots=True)
class Rules:
    """How Algorithm 1 is read (module docstring)."""

    split: str = "bisect"
    prune: str = "gap"
    eps_throughput_rel: float = 0.01
    eps_latency_s: float = 0.0
    probe_axes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.split not in SPLITS or self.prune not in PRUNES:
            raise ValueError(f"split {self.split!r} / prune {self.prune!r}; valid: {SPLITS} / {PRUNES}")

    def drops(self, bound: float, best_t: float) -> bool:
        """May a box whose throughput bound is `bound` be dropped, the incumbent being `best_t`?"""
        if self.prune == "gap":
            return bound <= best_t * (1 + self.eps_throughput_rel)
        return bound * (1 + self.eps_throughput_rel) < best_t


@dataclass(frozen=True, slots=True)
class Root:
    """A box [lo, hi] of one evaluation function, identified by `key` (the cache key)."""

    key: int
    lo: Index
    hi: Index


@dataclass(frozen=True, slots=True)
class ForestResult:
    best: tuple[int, Index] | None     # (root key, index)
    best_throughput_seq_s: float
    evaluations: int


class _Forest:
    """The state of one search: evaluation cache, incumbent, heap of boxes."""

    def __init__(self, evaluate: Callable[[int, Index], Point], bound_s: float, rules: Rules, lazy: bool):
        self.evaluate, self.bound_s, self.rules, self.lazy = evaluate, bound_s, rules, lazy
        self.cache: dict[tuple[int, Index], Point] = {}
        self.best: tuple[int, Index] | None = None
        self.best_t = -math.inf
        self.heap: list[tuple[float, int, int, Index, Index, bool]] = []   # (-bound, n, key, lo, hi, lo seen)
        self.counter = itertools.count()
        self.falling: dict[tuple[int, Index, Index], int] = {}

    def ev(self, key: int, idx: Index) -> Point:
        """Evaluate (once) and offer the point to the incumbent."""
        if (key, idx) not in self.cache:
            p = self.cache[key, idx] = self.evaluate(key, idx)
            if self.ok(p) and p.throughput_seq_s > self.best_t:
                self.best, self.best_t = (key, idx), p.throughput_seq_s
        return self.cache[key, idx]

    def ok(self, p: Point) -> bool:
        return p.fits and p.latency_s < self.bound_s

    def reachable(self, p: Point) -> bool:
        """Can a box whose lower corner is `p` hold a point under the bound?"""
        return p.fits and p.latency_s < self.bound_s + self.rules.eps_latency_s

    def falling_axis(self, key: int, lo: Index, hi: Index) -> int | None:
        """A probe axis along which throughput does not rise into `hi` (so the corner bounds
        nothing), or None; remembered so that the box is split along it."""
        top = self.ev(key, hi).upper_bound
        for a in self.rules.probe_axes:
            if hi[a] > lo[a] and self.ev(key, hi[:a] + (hi[a] - 1,) + hi[a + 1:]).upper_bound >= top:
                self.falling[key, lo, hi] = a
                return a
        return None

    def push(self, key: int, lo: Index, hi: Index, lower_seen: bool = True) -> None:
        """A box whose lower corner is reachable (or not yet seen): dropped, solved, or queued."""
        p_hi = self.ev(key, hi)
        if self.ok(p_hi) and self.falling_axis(key, lo, hi) is None:
            return                             # solved: its best point is the upper corner
        ub = p_hi.upper_bound
        if self.rules.drops(ub, self.best_t) and self.falling_axis(key, lo, hi) is None:
            return
        heapq.heappush(self.heap, (-ub, next(self.counter), key, lo, hi, lower_seen))

    def split_axis(self, key: int, lo: Index, hi: Index) -> int:
        longest = max(range(len(lo)), key=lambda d: hi[d] - lo[d])
        if self.rules.split == "bisect":
            return longest
        feasible = []
        for d in range(len(lo)):
            if hi[d] > lo[d]:
                p = self.ev(key, hi[:d] + (lo[d],) + hi[d + 1:])
                if self.ok(p):
                    feasible.append((p.throughput_seq_s, -d))
        return -max(feasible)[1] if feasible else longest

    def expand(self, key: int, lo: Index, hi: Index, dim: int) -> None:
        mid = (lo[dim] + hi[dim]) // 2
        halves = ((lo, hi[:dim] + (mid,) + hi[dim + 1:]), (lo[:dim] + (mid + 1,) + lo[dim + 1:], hi))
        for c_lo, c_hi in halves:
            if self.lazy or self.reachable(self.ev(key, c_lo)):
                self.push(key, c_lo, c_hi, not self.lazy)

    def run(self, roots: Sequence[Root]) -> None:
        for r in roots:
            if self.lazy:
                self.push(r.key, r.lo, r.hi, False)
                continue
            p_lo, p_hi = self.ev(r.key, r.lo), self.ev(r.key, r.hi)
            if self.reachable(p_lo) and not (self.ok(p_hi) and self.falling_axis(r.key, r.lo, r.hi) is None):
                heapq.heappush(self.heap, (-p_hi.upper_bound, next(self.counter), r.key, r.lo, r.hi, True))
        while self.heap:
            neg_ub, _, key, lo, hi, lower_seen = heapq.heappop(self.heap)
            if self.rules.drops(-neg_ub, self.best_t) and self.falling_axis(key, lo, hi) is None:
                continue
            if not (lower_seen or self.reachable(self.ev(key, lo))):
                continue                      # nothing in this box meets the bound
            if hi == lo:
                continue                      # a single point: both corners already seen
            falling = self.falling.get((key, lo, hi))
            self.expand(key, lo, hi, falling if falling is not None else self.split_axis(key, lo, hi))


def search_forest(evaluate: Callable[[int, Index], Point], roots: Sequence[Root], bound_s: float,
                  rules: Rules = Rules(), lazy: bool = False) -> ForestResult:
    """Best-first branch-and-bound over several boxes sharing one incumbent (module docstring)."""
    f = _Forest(evaluate, bound_s, rules, lazy)
    f.run(roots)
    return ForestResult(f.best, max(f.best_t, 0.0), len(f.cache))


def branch_and_bound(evaluate: Callable[[Index], Point], shape: tuple[int, ...], bound_s: float,
                     eps_throughput_rel: float = 0.01, eps_latency_s: float = 0.0,
                     split: str = "bisect", prune: str = "gap",
                     probe_axes: tuple[int, ...] = ()) -> BnBResult:
    """Algorithm 1 over the whole grid of `shape`."""
    if not shape or any(s == 0 for s in shape):
        return BnBResult(None, 0.0, 0)
    root = Root(0, tuple(0 for _ in shape), tuple(s - 1 for s in shape))
    res = search_forest(lambda _key, idx: evaluate(idx), [root], bound_s,
                        Rules(split, prune, eps_throughput_rel, eps_latency_s, probe_axes))
    return BnBResult(None if res.best is None else res.best[1], res.best_throughput_seq_s, res.evaluations)


def exhaustive(evaluate: Callable[[Index], Point], shape: tuple[int, ...], bound_s: float) -> BnBResult:
    """The oracle: every grid point."""
    best, best_t, n = None, -math.inf, 0
    for idx in itertools.product(*(range(s) for s in shape)):
        p = evaluate(idx)
        n += 1
        if p.fits and p.latency_s < bound_s and p.throughput_seq_s > best_t:
            best, best_t = idx, p.throughput_seq_s
    return BnBResult(best, max(best_t, 0.0), n)
