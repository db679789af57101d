"""The §6 closed forms the policies' timelines are built from (ExeGPT §6 XSimulator).

Lengths enter through their distributions only (P_E, P_D), never through samples:
- RRA: a query of output length S finishes U iterations after the last encoding with
  P_D(U|S) = 1 at U = S if S <= N_D, else 1/ceil(S/N_D) at U = 1 + ((S-1) mod N_D) (§6).
  The paper then sets B_E = B_D * sum_U P_D(U) (`finish_fraction`), weighting queries by the
  arrival distribution. The decoding batch is length-biased, though: a query of length S sits
  in ceil(S/N_D) consecutive phases. The steady state (Little's law, and what the
  discrete-event simulator plays) is B_E * E[ceil(S/N_D)] at a phase start and
  B_E * E[S] / N_D on average over the phase; the paper's formula underestimates B_D by up
  to 40% on wide distributions (task T, N_D = 8: 9.6 B_E vs 16.4 B_E). We use the steady state.
- WAA: N_D = 1 and B_D = B_E * S_D with S_D the mean output length (§3, §6).
- Static (FT): the batch runs until its longest query ends (expected maximum of B draws);
  latency is held to the maximum output length (§5).
Attention cost is linear in context length, so the mean context of the live sequences
(length-biased: a query of output S stays S iterations) is exact for the batch.

`mode.rra_decode_batch=finish-fraction` (mode=paper, harness/specs/mode.py): B_D = B_E / sum_U
P_D(U), held constant over the phase (the paper's "B_D stays ~constant"), for time and memory.
The simulators import these helpers (policies sit below the simulator: one-way layering).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from harness.specs.mode import Mode
from harness.specs.models import ModelSpec
from harness.workload.distributions import LengthDistribution
from harness.workload.tasks import Workload


def kv_copy_fn(costs):
    """`costs.kv_copy_s` when the engine pays for cache rewrites (the CPU runner's profile),
    else None (GPU engines update caches in place: 0, and the timelines skip the work)."""
    f = getattr(costs, "kv_copy_s", None)
    return f if f is not None and f(8, 64, 16) > 0 else None


def compacted_share(micro_batches: int, batch: int, leaving: float) -> float:
    """Share of a batch's rows rewritten when `leaving` queries finish: the rows of the
    micro-batches (m = min(micro_batches, batch), equal sizes) that held one of them."""
    m = max(1, min(micro_batches, batch))
    return 1.0 - (1.0 - 1.0 / m) ** leaving


@lru_cache(maxsize=4096)
def finish_fraction(output: LengthDistribution, decode_iters: int) -> float:
    """sum_U P_D(U): the paper's share of the decoding batch finishing in one cycle (§6)."""
    s = output.values
    per_query = np.where(s <= decode_iters, 1.0, 1.0 / np.ceil(s / decode_iters))
    return float(per_query @ output.probs)


@lru_cache(maxsize=4096)
def rra_live_per_encoded(output: LengthDistribution, decode_iters: int) -> np.ndarray:
    """a_j, j = 1..N_D: expected live queries at iteration j of a decoding phase per encoded
    query. A query of length S is live at iteration j of its k-th phase iff k*N_D + j <= S, so
    a_j = sum_S P(S) * (floor((S - j) / N_D) + 1) * [S >= j]. a_1 = E[ceil(S/N_D)] (the peak),
    mean_j a_j = E[S] / N_D (Little's law)."""
    s = output.values[:, None].astype(np.int64)
    j = np.arange(1, decode_iters + 1)[None, :]
    live = np.where(s >= j, (s - j) // decode_iters + 1, 0)
    a = output.probs @ live
    a.setflags(write=False)
    return a


@lru_cache(maxsize=4096)
def rra_batch_per_encoded(output: LengthDistribution, decode_iters: int) -> tuple[float, float]:
    """(peak, mean) decoding batch per encoded query over a phase (module docstring)."""
    a = rra_live_per_encoded(output, decode_iters)
    return float(a[0]), float(a.mean())


def rra_batch_profile(output: LengthDistribution, decode_iters: int, mode: Mode) -> np.ndarray:
    """Decoding batch per encoded query at each of the N_D iterations of a phase: the
    length-biased steady state a_j (`steady-state`, ours) or the paper's constant
    1 / sum_U P_D(U) (`finish-fraction`, §6)."""
    if mode.rra_decode_batch == "finish-fraction":
        return np.full(decode_iters, 1.0 / finish_fraction(output, decode_iters))
    return rra_live_per_encoded(output, decode_iters)


def rra_phase_s(costs, encode_batch: int, output: LengthDistribution, decode_iters: int,
                context_len: float, input_len: float, mode: Mode) -> float:
    """Time of one decoding phase: sum over its N_D iterations of the iteration time at that
    iteration's expected batch (rounded; empty iterations are skipped, cost 0)."""
    batches = np.rint(encode_batch * rra_batch_profile(output, decode_iters, mode)).astype(np.int64)
    if hasattr(costs, "decode_iter_s_many"):          # PipelineCosts: one table lookup per iteration
        return float(costs.decode_iter_s_many(batches, context_len, input_len).sum())
    sizes, counts = np.unique(batches, return_counts=True)
    return float(sum(c * costs.decode_iter_s(int(b), context_len, input_len)
                     for b, c in zip(sizes, counts, strict=True) if b > 0))


@lru_cache(maxsize=1024)
def live_context_len(workload: Workload) -> float:
    """Mean cached tokens of a sequence in the decoding batch: input + (S+1)/2 generated,
    weighted by time in the batch (proportional to S)."""
    s, p = workload.output.values.astype(float), workload.output.probs
    return workload.input.mean + float((p * s * (s + 1) / 2).sum() / (p * s).sum())


def live_self_cache_len(workload: Workload, model: ModelSpec) -> float:
    """Mean self-attention cache of a live sequence (`live_context_len` through
    `ModelSpec.self_cache_len`): what a decoder layer's self-attention and its KV memory cost."""
    return model.self_cache_len(live_context_len(workload), workload.input.mean)


def expected_max(dist: LengthDistribution, n: int) -> float:
    """E[max of n i.i.d. draws] = sum_k P(max >= k) over the support."""
    cdf = np.cumsum(dist.probs)
    prev = np.concatenate([[0.0], cdf[:-1]])
    widths = np.diff(np.concatenate([[0], dist.values]))
    return float(((1.0 - prev**n) * widths).sum())


def rra_decode_batches(encode_batch: int, output: LengthDistribution, decode_iters: int,
                       mode: Mode) -> tuple[float, float]:
    """(peak, mean) decoding batch over a phase under the mode's B_D reading: the peak sizes
    the KV memory and, with `latency=worst-case`, prices the p99 query's iterations."""
    if mode.rra_decode_batch == "finish-fraction":
        b_d = encode_batch / finish_fraction(output, decode_iters)
        return b_d, b_d
    peak, mean = rra_batch_per_encoded(output, decode_iters)
    return encode_batch * peak, encode_batch * mean
