"""Shifted length distributions for the distribution-shift study (ExeGPT §8, Fig. 11).

The paper shifts the output-length distribution of task T by its mean (0.7-1.3x), standard
deviation (0.7-1.3x) and skewness (-0.4..+0.4) with a skew-normal. `skew_normal` is the
integer PMF on [min_len, max_len] of a skew-normal (`scipy.stats.skewnorm`) whose
*discretised, truncated* lengths have the requested mean and std (the moments a reader
measures, as the paper's task table gives them; the same reading as
`truncated_normal(match_moments=True)`) and whose shape is that of the untruncated
skew-normal of the requested skewness (or, `match_skewness`, whose truncated lengths have it). Bins are [k - 0.5, k + 0.5), as for the truncated
normal, so shape skewness 0 reproduces `truncated_normal`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

from harness.errors import UserError, check
from harness.workload.distributions import LengthDistribution
from harness.workload.tasks import Workload

MAX_SKEW = 0.995   # |skewness| of an untruncated skew-normal is below (4 - pi)/2 * (2/(pi-2))^1.5


def moments(dist: LengthDistribution) -> tuple[float, float, float]:
    """(mean, std, skewness) of an integer PMF."""
    m, sd = dist.mean, dist.std
    skew = float((((dist.values - m) / sd) ** 3) @ dist.probs) if sd > 0 else 0.0
    return m, sd, skew


def skewnorm_params(mean: float, std: float, skewness: float) -> tuple[float, float, float]:
    """(loc xi, scale omega, shape a) of the *untruncated* skew-normal with these moments
    (method of moments: delta from the skewness, then omega, xi). |skewness| < 0.995."""
    check(abs(skewness) < MAX_SKEW, "lengths.skewness", f"|{skewness}| must be < {MAX_SKEW} for a skew-normal")
    g = abs(skewness)
    c = (2 * g / (4 - math.pi)) ** (2 / 3)
    delta = math.copysign(math.sqrt(math.pi / 2 * c / (1 + c)), skewness)
    a = delta / math.sqrt(1 - delta * delta)
    omega = std / math.sqrt(1 - 2 * delta * delta / math.pi)
    xi = mean - omega * delta * math.sqrt(2 / math.pi)
    return xi, omega, a


def _pmf(xi: float, omega: float, a: float, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(lo, hi + 1, dtype=np.int64)
    edges = stats.skewnorm.cdf(np.arange(lo - 0.5, hi + 1.0), a, loc=xi, scale=omega)
    p = np.clip(np.diff(edges), 0.0, None)
    check(p.sum() > 0, "lengths", f"skew-normal(xi={xi:.3g}, omega={omega:.3g}, a={a:.3g}) has no mass on [{lo}, {hi}]")
    return k, p / p.sum()


def _moments_of(k: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    m = float(k @ p)
    sd = float(np.sqrt(((k - m) ** 2) @ p))
    return m, sd, float((((k - m) / sd) ** 3) @ p) if sd > 0 else 0.0


def _discrete_moments(x: np.ndarray, a: float | None, lo: int, hi: int) -> tuple[float, float, float] | None:
    """Moments of the discretised truncation of skew-normal (xi=x[0], omega=exp(x[1]),
    a=x[2] or the fixed `a`); None where it has no mass there."""
    if not (np.all(np.isfinite(x)) and abs(x[1]) < 30):
        return None
    shape = x[2] if a is None else a
    p = np.clip(np.diff(stats.skewnorm.cdf(np.arange(lo - 0.5, hi + 1.0), shape, loc=x[0],
                                           scale=math.exp(x[1]))), 0.0, None)
    if not p.sum() > 0:
        return None
    return _moments_of(np.arange(lo, hi + 1, dtype=np.int64), p / p.sum())


@lru_cache(maxsize=256)
def _solve(mean: float, std: float, skewness: float, lo: int, hi: int,
           match_skewness: bool) -> tuple[float, float, float]:
    """(xi, omega, a) whose discretised truncation to [lo, hi] has the requested mean and
    std, and either the requested skewness (`match_skewness`) or the shape a of the
    untruncated skew-normal of that skewness."""
    xi0, om0, a0 = skewnorm_params(mean, std, skewness)
    fixed_a = None if match_skewness else a0

    def residual(x: np.ndarray) -> list[float]:
        mom = _discrete_moments(x, fixed_a, lo, hi)
        if mom is None:
            return [1e3] * len(x)
        r = [(mom[0] - mean) / std, (mom[1] - std) / std]
        return [*r, mom[2] - skewness] if match_skewness else r

    starts = ([xi0, math.log(om0)], [mean, math.log(std)], [mean - std, math.log(2 * std)])
    best = None
    for st in starts:
        x0 = [*st, a0] if match_skewness else st
        sol, _, _, _ = optimize.fsolve(residual, x0, full_output=True, xtol=1e-10)
        err = float(np.max(np.abs(residual(sol))))
        if best is None or err < best[0]:
            best = (err, sol)
        if err < 1e-6:
            break
    err, sol = best
    if err > 1e-3:
        what = f"skewness {skewness:g}" if match_skewness else f"shape a = {a0:.3g} (skewness {skewness:g} untruncated)"
        raise UserError(f"lengths: no skew-normal on [{lo}, {hi}] has mean {mean:g}, std {std:g} and "
                        f"{what} (closest misses by {err:.2g})")
    return float(sol[0]), math.exp(float(sol[1])), float(sol[2]) if match_skewness else a0


def skew_normal(mean: float, std: float, skewness: float, max_len: int, min_len: int = 1,
                match_skewness: bool = False) -> LengthDistribution:
    """Integer lengths in [min_len, max_len] of a truncated skew-normal.

    `mean` and `std` are the moments of the truncated, discretised lengths (solved for, as in
    `truncated_normal`). `skewness` sets the shape: by default the shape a of the
    *untruncated* skew-normal with that skewness (always exists for |skewness| < 0.995; the
    truncation then changes the measured skewness, see `moments`); with `match_skewness` the
    truncated lengths' own skewness is matched too, which a heavily truncated range (task T's
    outputs sit 1.9 std above the floor of 1) often cannot reach."""
    check(max_len >= min_len >= 1, "lengths.max", f"need max >= min >= 1, got min={min_len}, max={max_len}")
    check(std > 0, "lengths.std", f"must be > 0, got {std}")
    check(min_len <= mean <= max_len, "lengths.mean", f"{mean} outside [{min_len}, {max_len}]")
    xi, omega, a = _solve(float(mean), float(std), float(skewness), int(min_len), int(max_len),
                          bool(match_skewness))
    k, p = _pmf(xi, omega, a, int(min_len), int(max_len))
    kind = "matched" if match_skewness else "shape"
    return LengthDistribution(k, p, f"skewnorm(mean={mean:g}, std={std:g}, skew={skewness:g} ({kind}), "
                                     f"max={max_len}; xi={xi:.2f}, omega={omega:.2f}, a={a:.3f})")


def shifted_output(workload: Workload, mean_factor: float = 1.0, std_factor: float = 1.0,
                   skewness: float = 0.0) -> Workload:
    """`workload` with its output distribution replaced by a skew-normal of mean x
    `mean_factor`, std x `std_factor` (moments of the truncated lengths) and the shape of an
    untruncated skew-normal of `skewness` (`skew_normal`). Skewness 0 is the truncated normal
    family of the paper's tasks, so the identity shift of a task is its nominal distribution
    (to the solver's tolerance). The maximum
    length stretches with the mean when it grows (max x mean_factor, rounded up): a longer
    mean lengthens the tail too, rather than piling onto the old maximum; it stays when the
    mean shrinks. The input distribution is unchanged (the paper shifts outputs only)."""
    m, sd, _ = moments(workload.output)
    max_len = math.ceil(workload.output.max * max(1.0, mean_factor))
    out = skew_normal(m * mean_factor, sd * std_factor, skewness, max_len)
    label = f"mean x{mean_factor:g}, std x{std_factor:g}, skew {skewness:+g}"
    return Workload(f"{workload.name} [{label}]", workload.input, out,
                    source=f"{workload.source}; output shifted: {label}")
