"""Discrete-event simulator: runs a policy's batching program on concrete requests.

`SimExecutor` implements `harness.policies.program.Executor`: a policy's `run(plan, x)`
(its program: FT's static batches, RRA's phases, WAA's two pipelines, ORCA/vLLM/Sarathi's
iterations, DistServe's pools; see each policy's file) calls it, and it prices every call
with the plan's `StepCosts` at the actual batch of each step (size, mean context of the
live sequences, mean input) and records every request's timestamps. It runs the timelines
the expected-value model (`harness.simulator.expected`, ExeGPT §6) averages, on sampled
lengths. Nothing here depends on which policy runs.

Two executors, chosen by the program (`Policy.executor(plan)`):
- `SimExecutor` (phase programs: `decode(k)`): the live batch as numpy arrays (`_LiveBatch`),
  k iterations at a time, the iteration times from per-iteration live counts; where the
  engine rewrites caches (`kv_copy_fn`: the CPU runner's profile) an iteration also pays the
  join of newly merged queries and the compaction after queries finish;
- `IterExecutor` (iteration-level programs: `step`, harness/simulator/iteration_executor.py):
  running sums and finish buckets in plain Python, O(1) per iteration plus O(1) per request,
  so a million-request replay stays in seconds.
Cost calls round the mean context and mean input to integers: the cost model memoises
layer times by exact arguments, and attention cost is linear in context, so the error is
under one token. Times in seconds.

Runtime adjustment (ExeGPT §3; default off): for programs that support it
(`Policy.runtime_adjustment`), `x.adjuster` (`harness.simulator.adjust.Adjuster`, shared with
the real runner) chooses each encoder batch.
"""

from __future__ import annotations

import math

import numpy as np

from harness.errors import UserError
from harness.policies.base import Estimate, Plan, StepCosts
from harness.policies.closed_form import compacted_share, kv_copy_fn
from harness.policies.program import Op, as_ids
from harness.simulator.adjust import OFF, RuntimeAdjustment
from harness.simulator.adjust import Adjuster as _Adjuster
from harness.simulator.metrics import SimRecords, SimResult, compute_metrics
from harness.workload.streams import Requests, offline
from harness.workload.tasks import Workload


class _Lane:
    """One decoding group's iterations (end time, live batch, tokens made), in order; its
    requests' first-iteration indices are local to it until `_Timeline.records`."""

    def __init__(self, tl: _Timeline, index: int) -> None:
        self.index, self.finish, self.first_iter, self.lane_of = index, tl.finish, tl.first_iter, tl.lane_of
        self.iter_end: list[float] = []
        self.iter_batch: list[int] = []
        self.iter_tokens: list[int] = []

    def mark_first(self, ids) -> None:
        self.first_iter[ids] = len(self.iter_end)     # their first token: the next iteration
        self.lane_of[ids] = self.index


class _Timeline:
    """Mutable recorder of one run: per-request stamps and every decoding group's lane."""

    def __init__(self, reqs: Requests) -> None:
        n = len(reqs)
        self.reqs = reqs
        self.encode_start = np.full(n, np.nan)
        self.encode_end = np.zeros(n)
        self.finish = np.full(n, np.nan)
        self.first_iter = np.full(n, -1, dtype=np.int64)
        self.lane_of = np.zeros(n, dtype=np.int64)
        self.first_token = np.full(n, np.nan)    # set where a request's first token is not at
        self.lanes: dict[str, _Lane] = {}         # its first_iter (preempted and resumed)

    def lane(self, group: str) -> _Lane:
        if group not in self.lanes:
            self.lanes[group] = _Lane(self, len(self.lanes))
        return self.lanes[group]

    def encoded(self, ids: np.ndarray, start_s: float, end_s: float) -> None:
        first = np.isnan(self.encode_start[ids])     # a recomputed prompt keeps its first start
        self.encode_start[ids[first]] = start_s
        self.encode_end[ids] = end_s

    def records(self, policy: str) -> SimRecords:
        """The run's records; the lanes' iterations concatenated (each lane contiguous, so a
        request's tokens stay consecutive entries of `iter_end_s`)."""
        if np.isnan(self.finish).any() or (self.first_iter < 0).any():
            left = int(np.isnan(self.finish).sum())
            raise RuntimeError(f"policy '{policy}': its program ended with {left} of {len(self.finish)} "
                               "requests unfinished")
        lanes = list(self.lanes.values())
        offsets = np.cumsum([0] + [len(ln.iter_end) for ln in lanes])
        ends = np.concatenate([np.asarray(ln.iter_end, dtype=float) for ln in lanes])
        first = self.first_iter + offsets[self.lane_of]
        r = self.reqs
        first_token = np.where(np.isnan(self.first_token), ends[first], self.first_token)
        return SimRecords(r.arrival_s, self.encode_start, self.encode_end, first_token, self.finish,
                          r.input_len, r.output_len, first, ends,
                          np.concatenate([np.asarray(ln.iter_batch, dtype=np.int64) for ln in lanes]),
                          np.concatenate([np.asarray(ln.iter_tokens, dtype=np.int64) for ln in lanes]),
                          r.first_id)


def _live_counts(last: np.ndarray, k: int, *weights: np.ndarray) -> list[np.ndarray]:
    """For sequences live in iterations 1..last[i] of a k-iteration segment: per iteration,
    the count of live sequences, then the sum of each weight over them."""
    out = [np.bincount(last, minlength=k + 1)[1:]]
    out += [np.bincount(last, weights=w, minlength=k + 1)[1:] for w in weights]
    return [a[::-1].cumsum()[::-1] for a in out]


class _LiveBatch:
    """A phase program's decoding batch as arrays: request index, tokens left, cached tokens."""

    def __init__(self, costs: StepCosts) -> None:
        self.copy = kv_copy_fn(costs)                 # None: caches updated in place
        self.joined = False                           # queries joined a non-empty batch
        self.idx = np.empty(0, dtype=np.int64)
        self.left = np.empty(0, dtype=np.int64)
        self.cached = np.empty(0, dtype=np.int64)   # input + generated before this segment
        self.inp = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.idx.size)

    def join(self, ids: np.ndarray, left: np.ndarray, cached: np.ndarray, inp: np.ndarray, tl: _Lane) -> None:
        tl.mark_first(ids)
        self.joined = self.joined or len(self) > 0
        self.idx = np.concatenate((self.idx, ids))
        self.left = np.concatenate((self.left, left))
        self.cached = np.concatenate((self.cached, cached))
        self.inp = np.concatenate((self.inp, inp))

    def run(self, k: int, t: float, costs: StepCosts, tl: _Lane) -> tuple[float, tuple[int, int, int]]:
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

    def run_held(self, t: float, costs: StepCosts, tl: _Lane) -> float:
        """Static batching: the batch runs until its longest query ends, every slot kept and
        every context padded (prompts to the longest: `prefill(pad=True)`)."""
        size, out = len(self), self.left
        steps, cached, inp = int(out.max()), int(self.cached.max()), int(self.inp.max())
        base = len(tl.iter_end)
        for i in range(1, steps + 1):
            t += costs.decode_iter_s(size, cached + i, inp)
            tl.iter_end.append(t)
        tl.iter_batch.extend([size] * steps)
        tl.iter_tokens.extend(_live_counts(out, steps)[0].tolist())
        tl.finish[self.idx] = np.asarray(tl.iter_end[base:])[out - 1]
        self.__init__(costs)
        return t

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


class SimExecutor:
    """`Executor` on the cost model's clock (module docstring). `trace=True` keeps every
    call as an `Op` (`ops`), the schedule the real runner replays."""

    def __init__(self, plan: Plan, reqs: Requests, adjuster: _Adjuster | None = None, trace: bool = False) -> None:
        self.plan, self.reqs, self.costs, self.adjuster = plan, reqs, plan.costs, adjuster
        self.tl = _Timeline(reqs)
        self.done = np.zeros(len(reqs), dtype=np.int64)      # tokens generated so far
        self.batches: dict[str, _LiveBatch] = {}
        self.last: dict[str, tuple[int, int, int]] = {}
        self.decoded_from: dict[str, int] = {}       # first iteration of a group's last decode()
        self.ops: list[Op] | None = [] if trace else None
        self._arrival = reqs.arrival_s

    # ---- bookkeeping -------------------------------------------------------------------
    def _batch(self, group: str):
        b = self.batches.get(group)
        if b is None:
            b = self.batches[group] = _LiveBatch(self.costs)
        return b

    def _op(self, op: str, group: str, ids, start_s: float, end_s: float, **kw) -> None:
        if self.ops is not None:
            self.ops.append(Op(op, group, as_ids(ids), start_s, end_s, **kw))

    def arrived(self, t_s: float) -> int:
        return int(np.searchsorted(self._arrival, t_s, side="right"))

    def live(self, group: str) -> int:
        b = self.batches.get(group)
        return 0 if b is None else len(b)

    # ---- the Executor calls ------------------------------------------------------------
    def prefill(self, group: str, ids, start_s: float, *, join: bool = True, pad: bool = False) -> float:
        arr = as_ids(ids)
        r = self.reqs
        if pad:
            tokens = int(r.input_len[arr].max())
        else:
            tokens = round(float((r.input_len[arr] + self.done[arr]).mean()))
        end = start_s + self.costs.encode_s(len(arr), tokens)
        self.tl.encoded(arr, start_s, end)
        self._op("prefill", group, arr, start_s, end, hold=pad)
        if join:
            self._join(group, arr, pad)
        return end

    def _join(self, group: str, arr: np.ndarray, pad: bool = False) -> None:
        r, done = self.reqs, self.done[arr]
        left = r.output_len[arr] - done
        inp = r.input_len[arr]
        cached = inp + done
        if pad:
            cached = inp = np.full(len(arr), int(inp.max()), dtype=np.int64)
        self._batch(group).join(arr, left, cached, inp, self.tl.lane(group))

    def join(self, group: str, ids) -> None:
        arr = as_ids(ids)
        self._op("join", group, arr, math.nan, math.nan)
        self._join(group, arr)

    def transfer(self, src: str, dst: str, ids, start_s: float) -> float:
        arr = as_ids(ids)
        mean_in = round(float(self.reqs.input_len[arr].mean()))
        end = start_s + self.costs.kv_transfer_s(len(arr), mean_in)
        self._op("transfer", src, arr, start_s, end, dst=dst)
        return end

    def decode(self, group: str, start_s: float, iterations: int = 1, *, hold: bool = False) -> float:
        b = self._batch(group)
        if not len(b):
            return start_s
        self._op("decode", group, b.idx, start_s, math.nan, iterations=iterations, hold=hold)
        lane = self.tl.lane(group)
        self.decoded_from[group] = len(lane.iter_batch)
        if hold:
            t = b.run_held(start_s, self.costs, lane)
        else:
            t, self.last[group] = b.run(iterations, start_s, self.costs, lane)
        return t

    def last_mean_batch(self, group: str) -> float:
        """Mean decoding batch over the iterations of `group`'s last `decode` call (0: none)."""
        lane = self.tl.lane(group)
        its = lane.iter_batch[self.decoded_from.get(group, len(lane.iter_batch)):]
        return float(np.mean(its)) if its else 0.0

    def drain(self, group: str, start_s: float) -> float:
        end = start_s + self.costs.decode_drain_s(*self.last.get(group, (0, 0, 0)))
        self._op("drain", group, (0, 0), start_s, end)
        return end

    def step(self, group: str, start_s: float, chunks=None):
        raise UserError(f"policy '{self.plan.policy}': step() needs `iteration_level = True`")

    def preempt(self, group: str, ids) -> None:
        raise UserError(f"policy '{self.plan.policy}': preemption needs an iteration-level program")

    def records(self) -> SimRecords:
        return self.tl.records(self.plan.policy)


def _executor(plan: Plan, requests: Requests, adjust: RuntimeAdjustment, workload: Workload | None,
              trace: bool, adjuster: _Adjuster | None = None) -> SimExecutor:
    adj = None
    if adjust.enabled and getattr(plan.program, "runtime_adjustment", False) and adjuster is not None:
        adj = adjuster
    elif adjust.enabled and getattr(plan.program, "runtime_adjustment", False):
        if workload is None:
            raise UserError("runtime_adjustment: enabled, but no workload gives its targets "
                            "(simulate(..., workload=<the schedule's workload>))")
        adj = _Adjuster(adjust, plan, workload)
    if plan.program.executor(plan) == "iteration":
        from harness.simulator.iteration_executor import IterExecutor
        return IterExecutor(plan, requests, adj, trace)
    return SimExecutor(plan, requests, adj, trace)


def simulate(plan: Plan, requests: Requests, adjust: RuntimeAdjustment = OFF,
             workload: Workload | None = None) -> SimResult:
    """Run `plan`'s program on `requests`; an infeasible plan gives an infeasible result.

    `adjust` (enabled) turns on runtime adjustment where the policy supports it; its targets
    come from `workload`, the distribution the schedule was tuned for (required then)."""
    if not plan.feasible:
        return SimResult(plan.policy, plan.knobs, False, plan.reason)
    if not len(requests):
        return SimResult(plan.policy, plan.knobs, False, "requests: empty stream")
    x = _executor(plan, requests, adjust, workload, trace=False)
    plan.program.run(plan, x)
    rec = x.records()
    return SimResult(plan.policy, plan.knobs, True, "", rec, compute_metrics(rec, plan.latency_output_len))


def trace_ops(plan: Plan, requests: Requests, adjust: RuntimeAdjustment = OFF,
              workload: Workload | None = None, adjuster: _Adjuster | None = None) -> tuple[list[Op], SimResult]:
    """The program's calls on `requests` (what the real runner replays) and the simulated run.
    `adjuster`: the decision maker to use when `adjust` is enabled (the runner's records its
    decisions); default: one built from `adjust` and `workload`."""
    if not plan.feasible:
        raise UserError(f"policy: the plan is infeasible ({plan.reason})")
    x = _executor(plan, requests, adjust, workload, trace=True, adjuster=adjuster)
    plan.program.run(plan, x)
    rec = x.records()
    return x.ops, SimResult(plan.policy, plan.knobs, True, "", rec, compute_metrics(rec, plan.latency_output_len))


def estimate_des(plan: Plan, workload: Workload, num_requests: int = 2000, seed: int = 0,
                 adjust: RuntimeAdjustment = OFF, relaxed: bool = False) -> Estimate:
    """`simulate` on an offline stream (ExeGPT §5: saturated supply) as an `Estimate`:
    steady-state-window throughput, latency = latency_p99len_s. `relaxed`: an out-of-memory
    plan that was priced is run anyway (still marked infeasible: the search's bound)."""
    run_plan = plan
    if relaxed and not plan.feasible and plan.costs is not None and plan.program is not None:
        from dataclasses import replace
        run_plan = replace(plan, feasible=True)
    res = simulate(run_plan, offline(workload, num_requests, seed), adjust, workload)
    if not res.feasible:
        return Estimate(plan.policy, plan.knobs, False, res.reason, 0.0, 0.0, math.inf,
                        plan.memory_per_gpu_bytes, plan.encode_batch_size, simulator="discrete-event")
    m = res.metrics
    return Estimate(plan.policy, plan.knobs, plan.feasible, plan.reason, m.throughput_seq_s, m.throughput_tok_s,
                    m.latency_p99len_s, plan.memory_per_gpu_bytes, plan.encode_batch_size,
                    m.decode_batch_mean, simulator="discrete-event")
