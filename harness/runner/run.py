"""Coordinator side of a real run: Plan -> Job on the mini-cluster -> SimRecords -> metrics.

The `Plan` is the one `harness.policies.get_policy(name).plan(ctx, knobs)` returns, the same
object the simulators score (ExeGPT §2: the runner executes the schedule XScheduler chose).
The runner executes the plan's batching program (harness/policies/program.py): the
discrete-event simulator traces its calls on the requests (`trace_ops`; decisions that read
the clock, arrivals, WAA's merges, runtime adjustment, are taken on the simulated clock),
and every worker replays its group's calls (`harness.runner.programs`). The policy maps its
groups to stages (`Policy.worker_groups`), `harness.runner.schedule` to ranks and integer
layer ranges. A plan the runner cannot execute says why (`Policy.runner_support`). Records
use the discrete-event simulator's schema (`harness.simulator.metrics.SimRecords`), so
measured and simulated runs are read by the same `compute_metrics`.

Runtime adjustment (ExeGPT §3, `RuntimeAdjustment`, default off: the plain program): for
programs that read `Executor.adjuster` (`Policy.runtime_adjustment`) the simulator's
`Adjuster`, with targets from the workload the schedule was tuned for, sizes each encoder
batch while the program is traced; its decisions come back in `RunResult.adjustments`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from harness.engine.pool import WorkerFailure, WorkerPool, run_job
from harness.engine.weights import check_dtype
from harness.errors import UserError
from harness.policies.base import Plan
from harness.profiler.disturbance import CpuMeter, Disturbance
from harness.runner.drift import CALL_COLUMNS
from harness.runner.programs import Job
from harness.runner.schedule import to_calls, worker_groups
from harness.simulator.adjust import OFF, Adjuster, RuntimeAdjustment
from harness.simulator.discrete_event import trace_ops
from harness.simulator.metrics import SimMetrics, SimRecords, compute_metrics
from harness.specs.models import ModelSpec
from harness.workload.streams import Requests
from harness.workload.tasks import Workload

FIRST_TOKEN_ID = 3          # prompts avoid the special ids (T5 pad 0 / eos 1, OPT 1 / 2)


def prompts_for(spec: ModelSpec, reqs: Requests, seed: int) -> tuple[tuple[int, ...], ...]:
    """Seeded random prompt token ids of each request's input length."""
    rng = np.random.default_rng([seed, 7])
    hi = spec.vocab_size - 2
    return tuple(tuple(rng.integers(FIRST_TOKEN_ID, hi, int(n)).tolist()) for n in reqs.input_len)


class _Recorder(Adjuster):
    """The simulator's `Adjuster`, keeping every encoder batch it sized: (first request,
    room, observed decoding batch, count, target). Batches are encoded in arrival order."""

    def __init__(self, *a) -> None:
        super().__init__(*a)
        self.log: list[tuple] = []
        self.observed = 0.0

    def observe(self, decode_batch: float) -> None:
        self.observed = float(decode_batch)
        super().observe(decode_batch)

    def size(self, inputs: np.ndarray, available: int) -> int:
        n = super().size(inputs, available)
        if n:
            first = sum(d[3] for d in self.log)
            self.log.append((first, int(available), self.observed, int(n), float(self.target)))
        return n


def adjuster_for(plan: Plan, adjust: RuntimeAdjustment = OFF, workload: Workload | None = None) -> Adjuster | None:
    """The runtime-adjustment decision maker of a run (None: off, or a program without one);
    the targets come from `workload`, the distribution the schedule was tuned for."""
    if not adjust.enabled or not plan.program.runtime_adjustment:
        return None
    if workload is None:
        raise UserError("runtime_adjustment: enabled, but no workload gives its targets "
                        "(execute(..., workload=<the schedule's workload>))")
    return _Recorder(adjust, plan, workload)


def plan_job(plan: Plan, spec: ModelSpec, reqs: Requests, seed: int = 0, dtype: str = "float32",
             record_tokens: bool = False, adjust: RuntimeAdjustment = OFF,
             workload: Workload | None = None) -> Job:
    """The worker job executing `plan`'s program on `reqs` (one GPU of the plan = one
    worker); `adjust` (enabled) turns on runtime adjustment, its targets from `workload`."""
    if not plan.feasible:
        raise UserError(f"policy: the plan is infeasible ({plan.reason})")
    why = plan.program.runner_support(plan)
    if why:
        raise UserError(f"runner: policy '{plan.policy}' cannot run on the real runner: {why}")
    adj = adjuster_for(plan, adjust, workload)
    ops, _ = trace_ops(plan, reqs, adjust, workload, adjuster=adj)
    calls = to_calls(ops)
    if spec.is_encoder_decoder and any(c.op == "preempt" for c in calls):
        raise UserError("runner: a preempted request recomputes its decoder state, which the runner "
                        f"does for decoder-only models only ({spec.name} is encoder-decoder)")
    groups = worker_groups(plan, spec, {c.group for c in calls if c.sends})
    known = {g.name for g in groups}
    if unknown := sorted({c.group for c in calls} - known):
        raise UserError(f"runner: the program calls group '{unknown[0]}', which "
                        f"{type(plan.program).__name__}.worker_groups does not map ({', '.join(known)})")
    schedule = (plan.policy, plan.knobs, plan.encode_batch_size, plan.decode_iters, plan.max_decode_batch)
    # the simulator's lanes: a group's iterations, in order of its first call on a live batch
    lanes = tuple(dict.fromkeys(c.group for c in calls if c.op in ("join", "decode", "step")
                                or (c.op == "prefill" and not c.park)))
    return Job(spec, groups, prompts_for(spec, reqs, seed), tuple(int(x) for x in reqs.output_len), schedule,
               calls, tuple(adj.log) if adj is not None else (), lanes, seed, dtype, record_tokens)


def workers_needed(job: Job) -> int:
    return sum(len(st.ranks) for g in job.groups for st in g.stages)


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One encoder batch chosen by runtime adjustment: from request `first`, `room` requests
    could join; the decoding batch read was `observed`; `count` joined; `target` the decode
    rule's count."""

    first: int
    room: int
    observed: float
    count: int
    target: float


@dataclass(frozen=True, slots=True)
class RunResult:
    records: SimRecords | None
    metrics: SimMetrics | None
    disturbance: Disturbance
    tokens: dict                      # request index -> generated ids (record_tokens only)
    wall_s: float
    error: str = ""                   # worker failure (records then hold the finished requests)
    adjustments: tuple[Adjustment, ...] = ()   # runtime adjustment's decisions (off: none)
    decode_calls: np.ndarray = field(default_factory=lambda: np.zeros((0, len(CALL_COLUMNS))))
    # every decode-stack call of the run, one row per call: CALL_COLUMNS (harness.runner.drift)


def _records(reqs: Requests, msgs: list, complete: bool, lanes: tuple[str, ...] = ()) -> SimRecords | None:
    """Per-request records from the workers' messages; each group's iterations are one lane,
    the lanes concatenated in the order `lanes` (the simulator's layout)."""
    n = len(reqs)
    enc_start, enc_end = np.full(n, np.nan), np.full(n, np.nan)
    lanes: dict[str, list] = {g: [] for g in lanes}
    finish, first = {}, {}               # request -> (lane, iteration in lane)
    for _, m in msgs:
        if m[0] == "enc_start":
            fresh = np.isnan(enc_start[m[1]])        # a recomputed prompt keeps its first start
            enc_start[np.asarray(m[1])[fresh]] = m[2]
        elif m[0] == "enc_end":
            enc_end[m[1]] = m[2]
        elif m[0] == "iter":
            lane = lanes.setdefault(m[5], [])
            for i in m[4]:
                finish[i] = (m[5], len(lane))
            for i in m[6]:
                first[i] = (m[5], len(lane))
            lane.append(m[1:4])
    if not finish:
        return None
    offset = dict(zip(lanes, np.cumsum([0] + [len(v) for v in lanes.values()]).tolist(), strict=False))
    finish_iter = np.full(n, -1, dtype=np.int64)
    first_tok = np.full(n, -1, dtype=np.int64)
    for i, (g, k) in finish.items():
        finish_iter[i] = offset[g] + k
    for i, (g, k) in first.items():
        first_tok[i] = offset[g] + k
    its = [it for v in lanes.values() for it in v]
    done = finish_iter >= 0
    keep = np.arange(n) if complete else np.flatnonzero(done)
    if complete and not done.all():
        raise WorkerFailure(f"runner: {int((~done).sum())} requests never finished", msgs)
    t0 = np.nanmin(enc_start)
    ends = np.asarray([it[0] for it in its]) - t0
    out = reqs.output_len[keep]
    first_iter = finish_iter[keep] - out + 1      # virtual for a resumed request (the simulator's)
    return SimRecords(reqs.arrival_s[keep], enc_start[keep] - t0, enc_end[keep] - t0, ends[first_tok[keep]],
                      ends[finish_iter[keep]], reqs.input_len[keep], out, first_iter, ends,
                      np.asarray([it[1] for it in its], dtype=np.int64),
                      np.asarray([it[2] for it in its], dtype=np.int64), reqs.first_id)


def execute(pool: WorkerPool, plan: Plan, spec: ModelSpec, reqs: Requests, seed: int = 0,
            dtype: str = "float32", record_tokens: bool = False, progress: bool = True,
            desc: str = "", adjust: RuntimeAdjustment = OFF, workload: Workload | None = None) -> RunResult:
    """Run `plan` on `reqs`; a worker failure returns the finished requests and the error.
    `adjust` (enabled): runtime adjustment, its targets from `workload` (module docstring)."""
    check_dtype(dtype, pool.mc.device)
    job = plan_job(plan, spec, reqs, seed, dtype, record_tokens, adjust=adjust, workload=workload)
    if workers_needed(job) > pool.mc.num_workers:
        raise UserError(f"runner: the plan needs {workers_needed(job)} workers, the mini-cluster has "
                        f"{pool.mc.num_workers}")
    msgs: list = []
    bar = tqdm(total=len(reqs), desc=desc or f"{plan.policy} {dict(plan.knobs)}", unit="req",
               disable=not progress, leave=False)

    def on_message(rank: int, m) -> None:
        msgs.append((rank, m))
        if m[0] == "iter" and m[4]:
            bar.update(len(m[4]))

    meter = CpuMeter(list(pool.pids.values()))
    error, results = "", []
    try:
        with meter:
            results = run_job(pool, "harness.runner.programs:execute", job, on_message)
    except WorkerFailure as e:
        error = str(e)
    finally:
        bar.close()
    tokens: dict = {}
    for r in results:
        tokens.update(r["tokens"])
    rec = _records(reqs, msgs, complete=not error, lanes=job.lanes)
    met = compute_metrics(rec, plan.latency_output_len) if rec is not None and not error else None
    adjustments = tuple(Adjustment(*a) for a in job.adjustments)
    calls = [np.column_stack((np.full(len(r["decode_calls"]), r["rank"]), r["decode_calls"])) for r in results]
    calls = np.concatenate(calls) if calls else np.zeros((0, len(CALL_COLUMNS)))
    return RunResult(rec, met, meter.result, tokens, meter.result.wall_s, error, adjustments, calls)
