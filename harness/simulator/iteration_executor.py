"""The executor of iteration-level programs (ORCA, vLLM, Sarathi-Serve, DistServe): every
call is one iteration or one prefill, so it keeps per-request state in plain Python lists
and the live batch as running sums (`_IterBatch`): O(1) per iteration plus O(1) per
request, a million-request replay in seconds. Same records, same conventions as
`harness.simulator.discrete_event.SimExecutor` (whose docstring states them); a request
that was preempted and resumed keeps its true first-token time, and its later tokens are
placed by a virtual first iteration (its resume iteration minus the tokens it had), so a
request must resume on the group it was preempted from.
"""

from __future__ import annotations

import math

import numpy as np

from harness.errors import UserError
from harness.policies.base import Plan
from harness.simulator.discrete_event import SimExecutor
from harness.workload.streams import Requests


def snap(tokens: int) -> int:
    """A mean length on the cost grid: exact below 256, else a multiple of 2^(bits - 8) (128
    points per doubling, <= 0.4% off). The cost model memoises step times by exact argument;
    a replay's batch means take ~10^5 distinct values, the grid ~10^3, at an error in the
    attention term (linear in the length) below 0.4%."""
    if tokens < 256:
        return tokens
    step = 1 << (tokens.bit_length() - 8)
    return (tokens + (step >> 1)) // step * step


class _IterBatch:
    """A group's live batch: running sums of cached and input tokens, and per finishing
    iteration the requests that end there."""

    __slots__ = ("n", "sum_cached", "sum_in", "it", "members", "finish_at", "fresh")

    def __init__(self) -> None:
        self.n = self.sum_cached = self.sum_in = self.it = 0
        self.members: dict[int, tuple[int, int, int]] = {}   # request -> (joined at, cached then, left then)
        self.finish_at: dict[int, list[int]] = {}            # iteration -> requests ending in it
        self.fresh: list[int] = []                           # joined, first token not yet made


class IterExecutor(SimExecutor):
    def __init__(self, plan: Plan, reqs: Requests, adjuster=None, trace: bool = False) -> None:
        super().__init__(plan, reqs, adjuster, trace)
        self.inp = reqs.input_len.tolist()
        self.out = reqs.output_len.tolist()
        self.gen = [0] * len(reqs)              # tokens generated (a preempted request keeps them)
        self.prompt = [0] * len(reqs)           # prompt tokens prefilled (chunked prefill)
        self.iter_batches: dict[str, _IterBatch] = {}
        # iteration-level policies price mean lengths on a grid (`snap`); a phase program on
        # this executor (WAA) keeps the exact lengths its closed form was checked against
        self.snap = bool(getattr(plan.program, "iteration_level", False))

    def _ib(self, group: str) -> _IterBatch:
        b = self.iter_batches.get(group)
        if b is None:
            b = self.iter_batches[group] = _IterBatch()
            self.tl.lane(group)
        return b

    def live(self, group: str) -> int:
        b = self.iter_batches.get(group)
        return b.n if b is not None else 0

    def _list(self, ids) -> list[int]:
        if isinstance(ids, tuple):
            return list(range(ids[0], ids[1]))
        return ids.tolist() if isinstance(ids, np.ndarray) else list(ids)

    # ---- the Executor calls ------------------------------------------------------------
    def prefill(self, group: str, ids, start_s: float, *, join: bool = True, pad: bool = False) -> float:
        if pad:
            raise UserError(f"policy '{self.plan.policy}': padded (static) prefills need a phase program")
        ids = self._list(ids)
        inp, gen = self.inp, self.gen
        tokens = round(sum(inp[i] + gen[i] for i in ids) / len(ids))
        end = start_s + self.costs.encode_s(len(ids), snap(tokens) if self.snap else tokens)
        es, ee = self.tl.encode_start, self.tl.encode_end
        for i in ids:
            if es[i] != es[i]:                   # nan: its first prefill
                es[i] = start_s
            ee[i] = end
            self.prompt[i] = inp[i] + gen[i]
        self._op("prefill", group, ids, start_s, end)
        if join:
            self._join_list(group, ids)
        return end

    def _join_list(self, group: str, ids: list[int]) -> None:
        b = self._ib(group)
        lane = self.tl.lanes[group]
        it, nxt = b.it, len(lane.iter_end)
        first_iter, lane_of = self.tl.first_iter, self.tl.lane_of
        for i in ids:
            g = self.gen[i]
            cached, left = self.inp[i] + g, self.out[i] - g
            b.members[i] = (it, cached, left)
            b.finish_at.setdefault(it + left - 1, []).append(i)
            b.sum_cached += cached
            b.sum_in += self.inp[i]
            first_iter[i] = nxt - g                  # virtual for a resumed request
            lane_of[i] = lane.index
        b.n += len(ids)
        b.fresh.extend(ids)

    def join(self, group: str, ids) -> None:
        ids = self._list(ids)
        self._op("join", group, ids, math.nan, math.nan)
        self._join_list(group, ids)

    def transfer(self, src: str, dst: str, ids, start_s: float) -> float:
        ids = self._list(ids)
        mean_in = round(sum(self.inp[i] for i in ids) / len(ids))
        end = start_s + self.costs.kv_transfer_s(len(ids), mean_in)
        self._op("transfer", src, ids, start_s, end, dst=dst)
        return end

    def decode(self, group: str, start_s: float, iterations: int = 1, *, hold: bool = False) -> float:
        """`iterations` plain steps (stops early when the batch empties); static batching
        (`hold`) needs the phase executor."""
        if hold:
            raise UserError(f"policy '{self.plan.policy}': static batching (hold) needs a phase program")
        t = start_s
        for _ in range(iterations):
            if not self.live(group):
                break
            t = self.step(group, t)[0]
        return t

    def step(self, group: str, start_s: float, chunks=None) -> tuple[float, list[int]]:
        b = self._ib(group)
        n = b.n
        ctx = round(b.sum_cached / n) + 1 if n else 0
        inp = round(b.sum_in / n) if n else 0
        if self.snap:
            ctx, inp = snap(ctx), snap(inp)
        complete: list[int] = []
        if chunks is not None and len(chunks[0]):
            ids = chunks[0] if isinstance(chunks[0], list) else self._list(chunks[0])
            tokens = chunks[1] if isinstance(chunks[1], list) else [int(v) for v in chunks[1]]
            total = sum(tokens)
            prior = round(sum(self.prompt[i] * k for i, k in zip(ids, tokens, strict=True)) / total) if total else 0
            if self.snap:
                prior = snap(prior)
            end = start_s + self.costs.mixed_iter_s(n, ctx, inp, total, prior)
            es, ee = self.tl.encode_start, self.tl.encode_end
            for i, k in zip(ids, tokens, strict=True):
                if es[i] != es[i]:
                    es[i] = start_s
                ee[i] = end
                self.prompt[i] += k
                if self.prompt[i] >= self.inp[i] + self.gen[i]:
                    complete.append(i)
            if self.ops is not None:
                self._op("step", group, ids, start_s, end, tokens=np.asarray(tokens, dtype=np.int64))
        else:
            end = start_s + (self.costs.decode_iter_s(n, ctx, inp) if n else 0.0)
            if self.ops is not None:
                self._op("step", group, (0, 0), start_s, end)
        finished: list[int] = []
        if n:
            self._iteration(b, group, n, end)
            finished = b.finish_at.pop(b.it - 1, [])
            if finished:
                self._finish(b, finished, end)
        if complete:
            self._join_list(group, complete)
        return end, finished

    def _iteration(self, b: _IterBatch, group: str, n: int, end: float) -> None:
        lane = self.tl.lanes[group]
        lane.iter_end.append(end)
        lane.iter_batch.append(n)
        lane.iter_tokens.append(n)
        if b.fresh:
            ft = self.tl.first_token
            for i in b.fresh:
                if ft[i] != ft[i]:
                    ft[i] = end
            b.fresh = []
        b.sum_cached += n
        b.it += 1

    def _finish(self, b: _IterBatch, finished: list[int], end: float) -> None:
        fin = self.tl.finish
        for i in finished:
            del b.members[i]
            b.sum_cached -= self.inp[i] + self.out[i]
            b.sum_in -= self.inp[i]
            self.gen[i] = self.out[i]
            fin[i] = end
        b.n -= len(finished)

    def preempt(self, group: str, ids) -> None:
        b, ids = self._ib(group), self._list(ids)
        self._op("preempt", group, ids, math.nan, math.nan)
        for i in ids:
            joined, cached, left = b.members.pop(i)
            now = cached + b.it - joined
            b.finish_at[joined + left - 1].remove(i)
            b.sum_cached -= now
            b.sum_in -= self.inp[i]
            b.n -= 1
            self.gen[i] = now - self.inp[i]
            self.prompt[i] = 0
        if b.fresh:
            b.fresh = [i for i in b.fresh if i in b.members]

    def drain(self, group: str, start_s: float) -> float:
        return start_s                      # iteration-level engines keep their pipelines full

    def records(self):
        self.done = np.asarray(self.gen, dtype=np.int64)
        return super().records()
