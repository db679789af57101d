"""Coordinator side of a real run: Plan -> Job on the mini-cluster -> SimRecords -> metrics.

The `Plan` is the one `harness.policies.get_policy(name).plan(ctx, knobs)` returns, the same
object the simulators score (ExeGPT §2: the runner executes the schedule XScheduler chose).
Its stage layout (`plan.costs`: encode/decode stages with TP degrees and layer shares) is
turned into worker ranks and integer layer ranges. Records use the discrete-event
simulator's schema (`harness.simulator.metrics.SimRecords`), so measured and simulated runs
are read by the same `compute_metrics`.

Runtime adjustment (ExeGPT §3, `RuntimeAdjustment`, default off: the plain job, records as
before): for rra/waa the job carries the simulator's `Adjuster`, built here from the plan and
the workload the schedule was tuned for; its decisions come back in `RunResult.adjustments`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from harness.errors import UserError
from harness.policies.base import Plan
from harness.profiler.disturbance import CpuMeter, Disturbance
from harness.runner.drift import CALL_COLUMNS
from harness.runner.engine import split_layers
from harness.runner.links import StageDef
from harness.runner.pool import WorkerFailure, WorkerPool, run_job
from harness.runner.programs import Job
from harness.simulator.adjust import OFF, Adjuster, RuntimeAdjustment
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


def _stage_defs(spec: ModelSpec, stages, first_rank: int, enc_layers: int, dec_layers: int) -> list[StageDef]:
    enc = split_layers(enc_layers, [s.encoder_layers for s in stages])
    dec = split_layers(dec_layers, [s.decoder_layers for s in stages])
    out, r = [], first_rank
    for st, e, d in zip(stages, enc, dec, strict=True):
        out.append(StageDef(tuple(range(r, r + st.tp_degree)), e, d))
        r += st.tp_degree
    return out


def adjuster_for(plan: Plan, adjust: RuntimeAdjustment = OFF, workload: Workload | None = None) -> Adjuster | None:
    """The runtime-adjustment decision maker of a run (None: off, or FT, which has none); the
    targets come from `workload`, the distribution the schedule was tuned for."""
    if not adjust.enabled or plan.kind == "static":
        return None
    if workload is None:
        raise UserError("runtime_adjustment: enabled, but no workload gives its targets "
                        "(execute(..., workload=<the schedule's workload>))")
    return Adjuster(adjust, plan, workload)


def plan_job(plan: Plan, spec: ModelSpec, reqs: Requests, seed: int = 0, dtype: str = "float32",
             record_tokens: bool = False, waa_max_unmerged: int = 2, adjust: RuntimeAdjustment = OFF,
             workload: Workload | None = None) -> Job:
    """The worker job executing `plan` on `reqs` (one GPU of the plan = one worker); `adjust`
    (enabled) turns on runtime adjustment, its targets from `workload` (module docstring)."""
    if not plan.feasible:
        raise UserError(f"policy: the plan is infeasible ({plan.reason})")
    c = plan.costs
    common = dict(spec=spec, kind=plan.kind, prompts=prompts_for(spec, reqs, seed),
                  output_lens=tuple(int(x) for x in reqs.output_len), batch_size=plan.encode_batch_size,
                  decode_iters=max(1, plan.decode_iters), max_decode_batch=plan.max_decode_batch or 1 << 30,
                  encode_micro_batches=len(c.encode_stages), decode_micro_batches=c.decode_micro_batches,
                  seed=seed, dtype=dtype, record_tokens=record_tokens, waa_max_unmerged=waa_max_unmerged,
                  adjuster=adjuster_for(plan, adjust, workload))
    if plan.kind in ("static", "rra"):
        stages = _stage_defs(spec, c.decode_stages, 0, spec.num_encoder_layers, spec.num_decoder_layers)
        return Job(stages=tuple(stages), **common)
    if len(c.encode_stages) != 1 or c.encode_stages[0].tp_degree != 1:
        raise UserError(f"runner: WAA with {len(c.encode_stages)} encode GPUs is not implemented "
                        "(the runner's WAA has one encode worker)")
    dec = _stage_defs(spec, c.decode_stages, 1, 0, spec.num_decoder_layers)
    common["encode_micro_batches"] = 1
    return Job(stages=tuple(dec), enc_stage=StageDef((0,), (0, spec.num_encoder_layers),
                                                     (0, spec.num_decoder_layers)), **common)


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


def _records(reqs: Requests, msgs: list, complete: bool) -> SimRecords | None:
    n = len(reqs)
    enc_start, enc_end = np.full(n, np.nan), np.full(n, np.nan)
    iter_end, iter_batch, iter_tokens = [], [], []
    finish_iter = np.full(n, -1, dtype=np.int64)
    for _, m in msgs:
        if m[0] == "enc_start":
            enc_start[m[1]] = m[2]
        elif m[0] == "enc_end":
            enc_end[m[1]] = m[2]
        elif m[0] == "iter":
            finish_iter[m[4]] = len(iter_end)
            iter_end.append(m[1])
            iter_batch.append(m[2])
            iter_tokens.append(m[3])
    done = finish_iter >= 0
    if not done.any():
        return None
    keep = np.arange(n) if complete else np.flatnonzero(done)
    if complete and not done.all():
        raise WorkerFailure(f"runner: {int((~done).sum())} requests never finished", msgs)
    t0 = np.nanmin(enc_start)
    ends = np.asarray(iter_end) - t0
    out = reqs.output_len[keep]
    first = finish_iter[keep] - out + 1
    return SimRecords(reqs.arrival_s[keep], enc_start[keep] - t0, enc_end[keep] - t0, ends[first],
                      ends[finish_iter[keep]], reqs.input_len[keep], out, first, ends,
                      np.asarray(iter_batch, dtype=np.int64), np.asarray(iter_tokens, dtype=np.int64),
                      reqs.first_id)


def execute(pool: WorkerPool, plan: Plan, spec: ModelSpec, reqs: Requests, seed: int = 0,
            dtype: str = "float32", record_tokens: bool = False, progress: bool = True,
            desc: str = "", adjust: RuntimeAdjustment = OFF, workload: Workload | None = None) -> RunResult:
    """Run `plan` on `reqs`; a worker failure returns the finished requests and the error.
    `adjust` (enabled): runtime adjustment, its targets from `workload` (module docstring)."""
    job = plan_job(plan, spec, reqs, seed, dtype, record_tokens, adjust=adjust, workload=workload)
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
    rec = _records(reqs, msgs, complete=not error)
    met = compute_metrics(rec, plan.latency_output_len) if rec is not None and not error else None
    adjustments = tuple(Adjustment(int(m[1]), int(m[2]), float(m[3]), int(m[4]), float(m[5]))
                        for _, m in msgs if m[0] == "adjust")
    calls = [np.column_stack((np.full(len(r["decode_calls"]), r["rank"]), r["decode_calls"])) for r in results]
    calls = np.concatenate(calls) if calls else np.zeros((0, len(CALL_COLUMNS)))
    return RunResult(rec, met, meter.result, tokens, meter.result.wall_s, error, adjustments, calls)
