"""Discrete-event simulator: plays a `Plan` on concrete requests, iteration by iteration.

It runs the timeline the expected-value model (`harness.simulator.expected`, ExeGPT §6)
averages, but on sampled lengths: every step calls the plan's `StepCosts` with the actual
batch (size, mean context of the live sequences, mean input). Requests are served in
arrival order, so every encoded batch is a contiguous index range.
- static (FT, §1): batches of B in arrival order, each started when the previous one has
  ended and all its requests have arrived; prompts padded to the batch's longest; the batch
  decodes until its longest output, no early termination (B stays constant).
- rra (§3): cycles of one encoding of up to B_E waiting requests, then N_D decoding
  iterations (finished queries leave at once: early termination + KV compaction), then the
  pipeline drain. A newly encoded query's first token comes from its first iteration.
- waa (§3): an encode pipeline starting a batch of up to B_E arrived requests every
  encode period; its KV cache then crosses one host channel (transfers queue). The decode
  pipeline admits, at each iteration start, ready batches oldest first, at most B_E queries
  per iteration: the paper's steady state of one encoded batch per decoding iteration, so
  B_D -> B_E * S_D. The encoder is back-pressured: at most ceil(latency / pace) + 1 batches
  are started but not yet merged (latency = encode + KV transfer, pace = max(encode period,
  last decoding iteration); one more when the encoder is the bottleneck, for the wait to
  the next iteration start). Without it an encoder faster than decoding would queue encoded
  batches without bound; with it a decoder-bound pipeline merges a batch ceil(latency /
  iteration) + 1 iterations after its encoding starts.
  Where the hand-over blocks the decoder (`StepCosts.kv_receive_blocks`: the CPU runner's
  gloo receive), a batch is ready when encoded and its transfer is paid by the decoder at
  the merge; otherwise (the paper's asynchronous host copy) it is paid on the channel.
`plan.max_decode_batch` caps rra/waa admissions (requests wait). Times in seconds.
Cost calls round the mean context and mean input to integers: the cost model memoises
layer times by exact arguments, and attention cost is linear in context, so the error is
under one token.

Runtime adjustment (ExeGPT §3; default off: the plain timelines above, bit for bit). When on,
for rra/waa (FT has none), `harness.simulator.adjust.Adjuster` (shared with the real runner;
its docstring states the input and decode rules) chooses each encoder batch.
A WAA batch larger than B_E joins the decoding batch alone (the one-batch-per-iteration rule).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from harness.errors import UserError
from harness.policies.base import Estimate, Plan, StepCosts
from harness.simulator.adjust import OFF, RuntimeAdjustment
from harness.simulator.adjust import Adjuster as _Adjuster
from harness.simulator.expected import compacted_share, kv_copy_fn
from harness.simulator.metrics import SimRecords, SimResult, compute_metrics
from harness.workload.streams import Requests, offline
from harness.workload.tasks import Workload


class _Timeline:
    """Mutable recorder of one run: iteration ends and per-request stamps."""

    def __init__(self, reqs: Requests) -> None:
        n = len(reqs)
        self.reqs = reqs
        self.encode_start = np.zeros(n)
        self.encode_end = np.zeros(n)
        self.finish = np.zeros(n)
        self.first_iter = np.zeros(n, dtype=np.int64)
        self.iter_end: list[float] = []
        self.iter_batch: list[int] = []
        self.iter_tokens: list[int] = []

    def encoded(self, lo: int, hi: int, start_s: float, end_s: float) -> None:
        self.encode_start[lo:hi] = start_s
        self.encode_end[lo:hi] = end_s

    def records(self) -> SimRecords:
        ends = np.asarray(self.iter_end)
        r = self.reqs
        return SimRecords(r.arrival_s, self.encode_start, self.encode_end, ends[self.first_iter],
                          self.finish, r.input_len, r.output_len, self.first_iter, ends,
                          np.asarray(self.iter_batch, dtype=np.int64),
                          np.asarray(self.iter_tokens, dtype=np.int64), r.first_id)


def _live_counts(last: np.ndarray, k: int, *weights: np.ndarray) -> list[np.ndarray]:
    """For sequences live in iterations 1..last[i] of a k-iteration segment: per iteration,
    the count of live sequences, then the sum of each weight over them."""
    out = [np.bincount(last, minlength=k + 1)[1:]]
    out += [np.bincount(last, weights=w, minlength=k + 1)[1:] for w in weights]
    return [a[::-1].cumsum()[::-1] for a in out]


class _LiveBatch:
    """The decoding batch of rra/waa as arrays: request index, tokens left, cached tokens.
    Where the engine rewrites caches (`kv_copy_fn`), an iteration also pays the join of newly
    merged queries (every live cache is padded and concatenated) and the compaction after
    queries finish (the micro-batches holding a finished query are rewritten)."""

    def __init__(self, costs: StepCosts) -> None:
        self.copy = kv_copy_fn(costs)                 # None: caches updated in place
        self.joined = False                           # queries joined a non-empty batch
        self.idx = np.empty(0, dtype=np.int64)
        self.left = np.empty(0, dtype=np.int64)
        self.cached = np.empty(0, dtype=np.int64)   # input + generated before this segment
        self.inp = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.idx.size)

    def join(self, reqs: Requests, lo: int, hi: int, tl: _Timeline) -> None:
        tl.first_iter[lo:hi] = len(tl.iter_end)     # their first token: the next iteration
        self.joined = self.joined or len(self) > 0
        self.idx = np.concatenate((self.idx, np.arange(lo, hi)))
        self.left = np.concatenate((self.left, reqs.output_len[lo:hi]))
        self.cached = np.concatenate((self.cached, reqs.input_len[lo:hi]))
        self.inp = np.concatenate((self.inp, reqs.input_len[lo:hi]))

    def run(self, k: int, t: float, costs: StepCosts, tl: _Timeline) -> tuple[float, tuple[int, int, int]]:
        """Up to k iterations from time t (fewer if the batch empties); the new time and the
        (batch, context, input) of the last iteration."""
        last = np.minimum(self.left, k)
        live, ctx_sum, in_sum = _live_counts(last, k, self.cached, self.inp)
        base, steps, step = len(tl.iter_end), int(last.max()), (0, 0, 0)
        for j in range(steps):
            n = int(live[j])
            # iteration j generates token (generated + j + 1): context = cached + j + 1
            step = (n, round(ctx_sum[j] / n) + j + 1, round(in_sum[j] / n))
            t += costs.decode_iter_s(*step)
            if self.copy is not None:
                t += self._copies(self.copy, last, j, live, costs)
            tl.iter_end.append(t)
        tl.iter_batch.extend(live[:steps].tolist())
        tl.iter_tokens.extend(live[:steps].tolist())
        done = self.left <= k
        ends = np.asarray(tl.iter_end[base:])
        tl.finish[self.idx[done]] = ends[self.left[done] - 1]
        keep = ~done
        self.joined = False
        self.idx, self.inp = self.idx[keep], self.inp[keep]
        self.left, self.cached = self.left[keep] - k, self.cached[keep] + k
        return t, step

    def _copies(self, copy, last: np.ndarray, j: int, live: np.ndarray, costs: StepCosts) -> float:
        """Cache rewrites of iteration j: the join before it (j = 0 after a merge into a
        non-empty batch) and the compaction after it. Caches are as wide as the longest
        live context (right-aligned, padded); with m micro-batches and f queries leaving,
        a share 1 - (1 - 1/m)^f of the remaining rows sits in a rewritten micro-batch."""
        on = last > j
        width, inp = int(self.cached[on].max()) + j, int(self.inp[on].max())
        s = copy(int(live[j]), width, inp, "join") if j == 0 and self.joined else 0.0
        rest = int((self.left > j + 1).sum())          # still decoding after iteration j
        gone = int(live[j]) - rest
        if gone and rest:
            m = getattr(costs, "decode_micro_batches", 1)
            s += copy(max(1, round(rest * compacted_share(m, int(live[j]), gone))), width + 1, inp, "compact")
        return s


def _play_static(plan: Plan, reqs: Requests, tl: _Timeline, adj: _Adjuster | None = None) -> None:
    c, b, t = plan.costs, plan.encode_batch_size, 0.0
    for lo in range(0, len(reqs), b):
        hi = min(lo + b, len(reqs))
        size, out = hi - lo, reqs.output_len[lo:hi]
        max_in, max_out = int(reqs.input_len[lo:hi].max()), int(out.max())
        start = max(t, float(reqs.arrival_s[hi - 1]))
        t = start + c.encode_s(size, max_in)
        tl.encoded(lo, hi, start, t)
        base = len(tl.iter_end)
        for i in range(1, max_out + 1):
            t += c.decode_iter_s(size, max_in + i, max_in)
            tl.iter_end.append(t)
        tl.iter_batch.extend([size] * max_out)
        tl.iter_tokens.extend(_live_counts(out, max_out)[0].tolist())
        tl.first_iter[lo:hi] = base
        tl.finish[lo:hi] = np.asarray(tl.iter_end[base:])[out - 1]


def _play_rra(plan: Plan, reqs: Requests, tl: _Timeline, adj: _Adjuster | None = None) -> None:
    c, n, cap = plan.costs, len(reqs), plan.max_decode_batch or math.inf
    batch, nxt, t = _LiveBatch(c), 0, 0.0
    phase_mean = 0.0                                # mean decoding batch of the last phase
    while nxt < n or len(batch):
        arrived = int(np.searchsorted(reqs.arrival_s, t, side="right"))
        if not len(batch) and arrived <= nxt:      # idle: wait for the next arrival
            t = float(reqs.arrival_s[nxt])
            continue
        if adj is None:
            m = int(max(0, min(plan.encode_batch_size, arrived - nxt, cap - len(batch))))
        else:
            adj.observe(phase_mean)
            room = int(max(0, min(arrived - nxt, cap - len(batch))))
            m = adj.size(reqs.input_len[nxt:nxt + room], room)
        if m:
            start = t
            t += c.encode_s(m, round(float(reqs.input_len[nxt:nxt + m].mean())))
            tl.encoded(nxt, nxt + m, start, t)
            batch.join(reqs, nxt, nxt + m, tl)
            nxt += m
        base = len(tl.iter_batch)
        t, last = batch.run(plan.decode_iters, t, c, tl)
        t += c.decode_drain_s(*last)
        phase_mean = float(np.mean(tl.iter_batch[base:])) if len(tl.iter_batch) > base else 0.0


class _Encoder:
    """WAA encode pipeline + host KV channel, back-pressured by unmerged batches."""

    def __init__(self, plan: Plan, reqs: Requests, tl: _Timeline, adj: _Adjuster | None = None) -> None:
        self.plan, self.reqs, self.tl, self.adj = plan, reqs, tl, adj
        self.next, self.free_s, self.channel_free_s = 0, 0.0, 0.0
        self.pending: deque[tuple[float, int, int]] = deque()   # (ready_s, lo, hi), oldest first
        self.latency_s, self.period_s, self.gated = 0.0, 0.0, False
        # the decoder pays the hand-over when it merges (StepCosts.kv_receive_blocks)
        self.blocks = bool(getattr(plan.costs, "kv_receive_blocks", False))

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
            lo, arrived = self.next, int(np.searchsorted(r.arrival_s, s, side="right"))
            if self.adj is None:
                hi = min(lo + self.plan.encode_batch_size, arrived)
            else:
                self.adj.observe(decode_batch)
                hi = lo + self.adj.size(r.input_len[lo:arrived], arrived - lo)
            m, mean_in = hi - lo, round(float(r.input_len[lo:hi].mean()))
            enc_s, kv_s = c.encode_s(m, mean_in), c.kv_transfer_s(m, mean_in)
            self.period_s, self.latency_s = c.encode_period_s(m, mean_in), enc_s + kv_s
            if self.blocks:                             # the decoder pays kv_s when it merges
                self.pending.append((s + enc_s, lo, hi))
            else:
                self.channel_free_s = max(s + enc_s, self.channel_free_s) + kv_s
                self.pending.append((self.channel_free_s, lo, hi))
            self.tl.encoded(lo, hi, s, s + enc_s)
            self.free_s, self.next = s + self.period_s, hi


def _play_waa(plan: Plan, reqs: Requests, tl: _Timeline, adj: _Adjuster | None = None) -> None:
    cap = plan.max_decode_batch or math.inf
    enc, batch, t, it_s = _Encoder(plan, reqs, tl, adj), _LiveBatch(plan.costs), 0.0, 0.0
    while True:
        enc.start_until(t, it_s, len(batch))
        joined = 0
        while enc.pending and enc.pending[0][0] <= t:
            _, lo, hi = enc.pending[0]
            # the first ready batch always joins if memory admits it (without adjustment no
            # batch exceeds B_E, so this is the plain one-batch-per-iteration rule)
            if len(batch) and ((joined and joined + hi - lo > plan.encode_batch_size)
                               or len(batch) + hi - lo > cap):
                break
            batch.join(reqs, lo, hi, tl)
            joined += hi - lo
            enc.pending.popleft()
            if enc.blocks:
                t += plan.costs.kv_transfer_s(hi - lo, round(float(reqs.input_len[lo:hi].mean())))
        enc.start_until(t, it_s, len(batch))        # merges free encoder slots
        if len(batch):
            t_next, _ = batch.run(1, t, plan.costs, tl)
            t, it_s = t_next, t_next - t
        elif enc.pending:
            t = enc.pending[0][0]
        elif not enc.done:
            t = enc.next_start_s()
        else:
            return


_PLAYERS = {"static": _play_static, "rra": _play_rra, "waa": _play_waa}


def simulate(plan: Plan, requests: Requests, adjust: RuntimeAdjustment = OFF,
             workload: Workload | None = None) -> SimResult:
    """Play `plan` on `requests`; an infeasible plan gives an infeasible result, no run.

    `adjust` (enabled) turns on runtime adjustment for rra/waa; its targets come from
    `workload`, the distribution the schedule was tuned for (required then)."""
    if not plan.feasible:
        return SimResult(plan.policy, plan.knobs, False, plan.reason)
    if plan.kind not in _PLAYERS:
        raise ValueError(f"unknown plan kind {plan.kind}")
    if not len(requests):
        return SimResult(plan.policy, plan.knobs, False, "requests: empty stream")
    adj = None
    if adjust.enabled and plan.kind != "static":
        if workload is None:
            raise UserError("runtime_adjustment: enabled, but no workload gives its targets "
                            "(simulate(..., workload=<the schedule's workload>))")
        adj = _Adjuster(adjust, plan, workload)
    tl = _Timeline(requests)
    _PLAYERS[plan.kind](plan, requests, tl, adj)
    rec = tl.records()
    return SimResult(plan.policy, plan.knobs, True, "", rec, compute_metrics(rec, plan.latency_output_len))


def estimate_des(plan: Plan, workload: Workload, num_requests: int = 2000, seed: int = 0,
                 adjust: RuntimeAdjustment = OFF) -> Estimate:
    """`simulate` on an offline stream (ExeGPT §5: saturated supply) as an `Estimate`:
    steady-state-window throughput, latency = latency_p99len_s."""
    res = simulate(plan, offline(workload, num_requests, seed), adjust, workload)
    if not res.feasible:
        return Estimate(plan.policy, plan.knobs, False, res.reason, 0.0, 0.0, math.inf,
                        plan.memory_per_gpu_bytes, plan.encode_batch_size, simulator="discrete-event")
    m = res.metrics
    return Estimate(plan.policy, plan.knobs, True, "", m.throughput_seq_s, m.throughput_tok_s,
                    m.latency_p99len_s, plan.memory_per_gpu_bytes, plan.encode_batch_size,
                    m.decode_batch_mean, simulator="discrete-event")
