"""WAA's timelines (ExeGPT §3, §6): its batching program and its closed form.

The program: an encode pipeline starts a batch of up to B_E arrived requests every encode
period; its KV cache then crosses one host channel (transfers queue). The decode pipeline
admits, at each iteration start, ready batches oldest first, at most B_E queries per
iteration: the paper's steady state of one encoded batch per decoding iteration, so
B_D -> B_E * S_D. The encoder is back-pressured: at most ceil(latency / pace) + 1 batches
are started but not yet merged (latency = encode + KV transfer, pace = max(encode period,
last decoding iteration); one more when the encoder is the bottleneck, for the wait to the
next iteration start). Without it an encoder faster than decoding would queue encoded
batches without bound; with it a decoder-bound pipeline merges a batch ceil(latency /
iteration) + 1 iterations after its encoding starts. Where the hand-over blocks the decoder
(`StepCosts.kv_receive_blocks`: the CPU runner's gloo receive), a batch is ready when
encoded and its transfer is paid by the decoder at the merge; otherwise (the paper's
asynchronous host copy) it is paid on the channel. `plan.max_decode_batch` caps admissions.
With runtime adjustment (§3) `x.adjuster` sizes each encoder batch from the live decoding
batch; a batch larger than B_E joins the decoding batch alone.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from harness.policies.base import Plan
from harness.policies.closed_form import expected_max, kv_copy_fn, live_context_len
from harness.workload.tasks import Workload


class _Encoder:
    """WAA encode pipeline + host KV channel, back-pressured by unmerged batches."""

    def __init__(self, plan: Plan, x) -> None:
        self.plan, self.x, self.reqs, self.adj = plan, x, x.reqs, x.adjuster
        self.next, self.free_s, self.channel_free_s = 0, 0.0, 0.0
        self.pending: deque[tuple[float, int, int]] = deque()   # (ready_s, lo, hi), oldest first
        self.latency_s, self.period_s, self.gated = 0.0, 0.0, False
        # the decoder pays the hand-over when it merges (StepCosts.kv_receive_blocks)
        self.blocks = bool(getattr(plan.costs, "kv_receive_blocks", False))
        # prefix sums of the input lengths: a batch's mean input in O(1) (the same float as
        # the numpy mean of the int slice: an exact integer sum divided once)
        self.prefix = [0, *np.cumsum(x.reqs.input_len).tolist()]

    @property
    def done(self) -> bool:
        return self.next >= len(self.reqs)

    def next_start_s(self) -> float:
        return max(self.free_s, float(self.reqs.arrival_s[self.next]))

    def start_until(self, t: float, iteration_s: float, decode_batch: int = 0) -> None:
        """Start every batch the pipeline can start at or before time t (`decode_batch`: the
        live decoding batch, read by runtime adjustment only)."""
        c, r = self.plan.costs, self.reqs
        while not self.done:
            pace = max(self.period_s, iteration_s)
            slack = 2 if self.period_s >= iteration_s else 1
            limit = slack + math.ceil(self.latency_s / pace) if pace > 0 else math.inf
            if len(self.pending) >= limit:
                self.gated = True
                return
            if self.gated:                          # reopened by a merge at this call's time t
                self.free_s, self.gated = max(self.free_s, t), False
            s = self.next_start_s()
            if s > t:
                return
            lo, arrived = self.next, self.x.arrived(s)
            if self.adj is None:
                hi = min(lo + self.plan.encode_batch_size, arrived)
            else:
                self.adj.observe(decode_batch)
                hi = lo + self.adj.size(r.input_len[lo:arrived], arrived - lo)
            m = hi - lo
            mean_in = round((self.prefix[hi] - self.prefix[lo]) / m)
            enc_s, kv_s = c.encode_s(m, mean_in), c.kv_transfer_s(m, mean_in)
            self.period_s, self.latency_s = c.encode_period_s(m, mean_in), enc_s + kv_s
            end = self.x.prefill("encode", (lo, hi), s, join=False)    # = s + enc_s
            if self.blocks:                             # the decoder pays kv_s when it merges
                self.pending.append((end, lo, hi))
            else:
                self.channel_free_s = self.x.transfer("encode", "decode", (lo, hi), max(end, self.channel_free_s))
                self.pending.append((self.channel_free_s, lo, hi))
            self.free_s, self.next = s + self.period_s, hi


def run(plan: Plan, x) -> None:
    """The program (module docstring): encoder and decoder on one simulated clock."""
    cap = plan.max_decode_batch or math.inf
    enc, t, it_s = _Encoder(plan, x), 0.0, 0.0
    while True:
        live = x.live("decode")
        enc.start_until(t, it_s, live)
        joined = 0
        while enc.pending and enc.pending[0][0] <= t:
            _, lo, hi = enc.pending[0]
            # the first ready batch always joins if memory admits it (without adjustment no
            # batch exceeds B_E, so this is the plain one-batch-per-iteration rule)
            if live and ((joined and joined + hi - lo > plan.encode_batch_size) or live + hi - lo > cap):
                break
            if enc.blocks:
                t = x.transfer("encode", "decode", (lo, hi), t)
            x.join("decode", (lo, hi))
            live += hi - lo
            joined += hi - lo
            enc.pending.popleft()
        enc.start_until(t, it_s, live)              # merges free encoder slots
        if live:
            t_next = x.decode("decode", t, 1)
            t, it_s = t_next, t_next - t
        elif enc.pending:
            t = enc.pending[0][0]
        elif not enc.done:
            t = enc.next_start_s()
        else:
            return


def _waa_iteration(plan: Plan, workload: Workload, blocks: bool, kv_s: float, period_s: float):
    """WAA: mean decoding iteration time at batch b. Where the engine rewrites caches
    (`kv_copy_fn`, the CPU runner), a merge costs C(b) on top of the decode step t(b): the
    join of the whole batch, and, if the hand-over blocks the decoder, the transfer; and every
    query that leaves costs the compaction of its micro-batch. Decode-bound (t + C >= the
    encode period) every iteration merges one batch; otherwise a fraction f = it / period
    does, so it = t + f C  ->  it = t / (1 - C / period). Queries leave at B_E per merge
    (Little), Poisson-spread over iterations: a micro-batch of m is compacted with
    probability 1 - exp(-B_E f / m). Cache width = the expected longest input of the batch
    plus the mean output (the discrete-event simulator uses each step's actual longest)."""
    c, b_e, inp = plan.costs, plan.encode_batch_size, workload.input.mean
    ctx, copy = live_context_len(workload), kv_copy_fn(plan.costs)
    m = getattr(c, "decode_micro_batches", 1)

    def it_s(b: float) -> float:
        n = max(1, round(b))
        t = c.decode_iter_s(n, ctx, inp)
        if copy is None:
            return t
        width = expected_max(workload.input, n) + workload.output.mean
        merge = copy(n, width, inp, "join") + (kv_s if blocks else 0.0)
        compact = 0.0
        for _ in range(2):      # the share f of merging iterations, refined once with compaction
            base = t + compact
            f = 1.0 if base + merge >= period_s else base / (period_s - merge)
            rows = n * (1.0 - math.exp(-b_e * f / max(1, min(m, n))))
            compact = copy(max(1, round(rows)), width, inp, "compact")
        return t + f * merge + compact
    return it_s


def expected_timeline(plan: Plan, workload: Workload, worst: bool) -> tuple[float, float, float]:
    """WAA: (throughput, latency, B_D) of the asynchronous encode and decode pipelines (§3, §6)."""
    c, b_e, s_lat, inp = plan.costs, plan.encode_batch_size, plan.latency_output_len, workload.input.mean
    b_d = plan.encode_batch_size * workload.output.mean   # B_D = B_E * S_D
    blocks = bool(getattr(c, "kv_receive_blocks", False))
    kv = c.kv_transfer_s(b_e, inp)
    period = c.encode_period_s(b_e, inp) if blocks else max(c.encode_period_s(b_e, inp), kv)
    it_s = _waa_iteration(plan, workload, blocks, kv, period)
    it = it_s(b_d)
    if period > it:  # encoder-bound: decoding runs at its own pace with a smaller batch,
        # the fixed point b = B_E * S_D * it(b) / period (Little's law), by bisection.
        lo, hi = 1.0, b_d
        for _ in range(12):
            mid = (lo + hi) / 2
            if mid * period < b_d * it_s(mid):
                lo = mid
            else:
                hi = mid
        b_d = (lo + hi) / 2
        it = it_s(max(1.0, b_d))
    head = c.encode_s(b_e, inp) + (0.0 if blocks else kv)
    # worst case: meets B_D plus one merging batch, and waits one iteration for its merge
    latency = head + (s_lat + 2) * it_s(b_d + b_e) if worst else head + (s_lat + 1) * it
    return b_e / max(it, period), latency, b_d


