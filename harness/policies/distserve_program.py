"""DistServe's batching program (harness/policies/distserve.py states the rules): prefill
instances and decode instances on one simulated clock, one event per instance at a time."""

from __future__ import annotations

import heapq
from collections import deque

import numpy as np

from harness.policies.base import Plan
from harness.policies.iteration import BLOCK_SIZE, WATERMARK, BlockTable

HANDOFF, DECODE, PREFILL = 0, 1, 2     # event kinds; at equal times in this order


class _Program:
    """DistServe's event loop (module docstring). Lanes 0..P-1 are the prefill instances,
    P..P+D-1 the decode instances; each has at most one live event (`due`) and never starts
    a call before its last one ended (`busy`)."""

    def __init__(self, plan: Plan, x) -> None:
        k, d = dict(plan.knobs), dict(plan.derived)
        self.x = x
        self.P, self.D = int(d["prefill_instances"]), int(d["replicas"])
        self.seqs, self.budget = k["max_num_seqs"], k["prefill_token_budget"]
        self.pcap = int(d["prefill_kv_tokens"])
        blocks = int(d["num_blocks"])
        self.inp, self.arr, self.n = x.reqs.input_len.tolist(), x.reqs.arrival_s.tolist(), len(x.reqs)
        self.pg = [f"p{i}" for i in range(self.P)]
        self.dg = [f"d{j}" for j in range(self.D)]
        self.queue: deque[int] = deque()          # waiting for a prefill, FCFS (preempted first)
        self.nxt = 0                              # next arrival not yet queued
        self.kv = [0] * self.n                    # KV tokens a request's last prefill made
        self.src = [0] * self.n                   # the prefill instance holding its KV
        self.home: dict[int, int] = {}            # preempted request -> its decode instance
        self.held = [0] * self.P                  # KV tokens held on each prefill instance
        self.frees: list[list] = [[] for _ in range(self.P)]   # heap of (time, tokens) leaving it
        self.blocked = [False] * self.P           # waiting for a pull to free its KV
        self.ready: list[deque[int]] = [deque() for _ in range(self.D)]   # to pull, FCFS
        self.inflight: list[list] = [[] for _ in range(self.D)]          # heap of (end, seq, ids)
        self.reserved = [0] * self.D              # blocks of pulls in flight
        self.pulling = [0] * self.D               # requests in flight
        self.load = [0] * self.D                  # requests assigned, unfinished (its slots)
        self.dest = [0] * self.n                  # the decode instance a request is assigned to
        self.starved = [False] * self.P           # waiting for a free decode slot
        self.tables = [BlockTable(blocks, BLOCK_SIZE) for _ in range(self.D)]
        self.reserve = int(WATERMARK * blocks)
        self.events: list = []
        self.seq = 0
        self.due: list[int | None] = [None] * (self.P + self.D)   # seq of each lane's live event
        self.due_t = [0.0] * (self.P + self.D)
        self.busy = [0.0] * (self.P + self.D)
        self.handoffs: dict[int, list[int]] = {}

    def _push(self, t: float, kind: int, idx: int) -> int:
        self.seq += 1
        heapq.heappush(self.events, (t, kind, self.seq, idx))
        return self.seq

    def wake(self, lane: int, t: float) -> None:
        """Lane `lane` acts at `t` (not before its last call ended), unless it already will sooner."""
        t = max(t, self.busy[lane])
        if self.due[lane] is None or t < self.due_t[lane]:
            kind = PREFILL if lane < self.P else DECODE
            self.due[lane], self.due_t[lane] = self._push(t, kind, lane), t

    def run(self) -> None:
        for k in range(self.P):
            self.wake(k, self.arr[0] if self.n else 0.0)
        while self.events:
            t, kind, seq, idx = heapq.heappop(self.events)
            if kind == HANDOFF:
                self.handoff(t, self.handoffs.pop(seq))
                continue
            if self.due[idx] != seq:
                continue                          # superseded by an earlier wake
            self.due[idx] = None
            if kind == PREFILL:
                self.prefill(idx, t)
            else:
                self.decode(idx - self.P, t)

    # ---- prefill instances ---------------------------------------------------------------
    def prefill(self, k: int, t: float) -> None:
        fr = self.frees[k]
        while fr and fr[0][0] <= t:
            self.held[k] -= heapq.heappop(fr)[1]
        while self.nxt < self.n and self.arr[self.nxt] <= t:
            self.queue.append(self.nxt)
            self.nxt += 1
        q = self.queue
        if not q:
            if self.nxt < self.n:
                self.wake(k, self.arr[self.nxt])   # sleep until the next arrival
            return                                  # else idle: a preemption wakes it
        batch, tokens, starved = [], 0, False
        while q:
            i = q[0]
            resumed = i in self.home
            need = self.kv[i] if resumed else self.inp[i]
            if batch and tokens + need > self.budget:
                break
            if self.held[k] + tokens + need > self.pcap and (batch or self.held[k]):
                break
            if not resumed:                        # admission: a free decode slot, least loaded
                j = min(range(self.D), key=self.load.__getitem__)
                if self.load[j] >= self.seqs:
                    starved = True
                    break
                self.load[j] += 1
                self.dest[i] = j
            batch.append(q.popleft())
            tokens += need
        if not batch:
            if starved:
                self.starved[k] = True             # a finishing request wakes it
            elif fr:
                self.wake(k, fr[0][0])             # its KV memory is full: wait for a pull
            else:
                self.blocked[k] = True
            return
        self.starved[k] = False
        end = self.x.prefill(self.pg[k], np.asarray(batch), t, join=False)
        self.busy[k] = end
        self.held[k] += tokens
        for i in batch:
            self.kv[i] = self.inp[i] if i not in self.home else self.kv[i]
            self.src[i] = k
        self.handoffs[self._push(end, HANDOFF, 0)] = batch
        self.wake(k, end)

    def handoff(self, t: float, batch: list[int]) -> None:
        """A prefill batch ended: each request waits to be pulled by its decode instance."""
        for i in batch:
            self.home.pop(i, None)
            j = self.dest[i]
            self.ready[j].append(i)
            self.wake(self.P + j, t)

    # ---- decode instances ----------------------------------------------------------------
    def decode(self, j: int, t: float) -> None:
        x, bt, g, lane = self.x, self.tables[j], self.dg[j], self.P + j
        fl = self.inflight[j]
        while fl and fl[0][0] <= t:               # pulls that ended join the batch
            _, _, ids = heapq.heappop(fl)
            x.join(g, np.asarray(ids))
            for i in ids:
                bt.admit(i, self.kv[i])
                self.reserved[j] -= bt.blocks(self.kv[i])
            self.pulling[j] -= len(ids)
        if self.ready[j]:
            self.pull(j, t)
        if not bt.offset:
            if fl:
                self.wake(lane, fl[0][0])
            return                                  # else idle until a hand-over
        while bt.used + self.reserved[j] + bt.needed() > bt.num_blocks and len(bt.offset) > 1:
            v = bt.newest()                         # preemption by recompute (vllm.py)
            self.kv[v] = bt.release(v)
            x.preempt(g, [v])
            self.home[v] = j                        # keeps its slot (dest) on this instance
            self.queue.appendleft(v)
            for k in range(self.P):                 # an idle prefill instance takes it now
                if self.due[k] is None and not self.blocked[k]:
                    self.wake(k, t)
                    break
        end, finished = x.step(g, t)
        bt.advance()
        for i in finished:
            bt.release(i)
        if finished:
            self.load[j] -= len(finished)
            for k in range(self.P):                 # slots freed: starved prefill instances go on
                if self.starved[k]:
                    self.starved[k] = False
                    self.wake(k, end)
        self.busy[lane] = end
        self.wake(lane, end)

    def pull(self, j: int, t: float) -> None:
        """Start pulling ready KV (FCFS) while the batch cap and free blocks admit it."""
        bt, ready = self.tables[j], self.ready[j]
        by_src: dict[int, list[int]] = {}
        while ready and len(bt.offset) + self.pulling[j] < self.seqs:
            i = ready[0]
            live = bool(bt.offset) or self.pulling[j] > 0
            if bt.used + self.reserved[j] + bt.blocks(self.kv[i]) + (self.reserve if live else 0) > bt.num_blocks:
                break
            ready.popleft()
            self.reserved[j] += bt.blocks(self.kv[i])
            self.pulling[j] += 1
            by_src.setdefault(self.src[i], []).append(i)
        for k, ids in by_src.items():
            end = self.x.transfer(self.pg[k], self.dg[j], np.asarray(ids), t)
            self.seq += 1
            heapq.heappush(self.inflight[j], (end, self.seq, ids))
            heapq.heappush(self.frees[k], (end, sum(self.kv[i] for i in ids)))
            if self.blocked[k]:
                self.blocked[k] = False
                self.wake(k, end)


def run(plan: Plan, x) -> None:
    _Program(plan, x).run()

