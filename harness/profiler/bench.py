"""Worker side of the profiler: time one layer / one collective at each grid point (SPMD).

Both workers are busy at every point, as in a run: at TP 1 each times the same point on its
own core at the same time (a pipeline keeps both busy); at TP > 1 the ranks of a group run
the sharded layer with its all-reduces. Every repeat starts after a barrier; the time is
rank 0's. Layer times are those of the whole stack (every encoder / decoder layer of the
model, distinct weights) divided by its depth: timing one layer over and over keeps its
weights in the CPU caches, which a run streaming through all layers never has (on this
machine one hot layer read 30-40% fast). The stack call includes what the runner does
once per stage (masks, T5 position bias, prompt-cache layout), amortised over its layers.
Repeats are taken round-robin over the grid (`profile_job`); each round is bracketed by a
disturbance reading (harness.profiler.disturbance) and run again (up to twice) when others
used the CPU. The timed code is the runner's own (harness.engine.layers / stage), so the
profile describes what the runner executes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from harness.engine import layers as L
from harness.engine.layers import SeqState
from harness.engine.links import StageDef, groups_for
from harness.engine.stage import StageModel, StageSlice, split_layers
from harness.engine.timing import now
from harness.engine.weights import DTYPES, cached_weights
from harness.profiler.disturbance import CpuMeter
from harness.specs.models import ModelSpec

ATTEMPTS = 3      # a disturbed round is run again (after 0.3 s), at most this often in all


@dataclass(frozen=True, slots=True)
class Point:
    op: str
    tp_degree: int = 1
    batch_size: int = 0
    length: int = 0          # encode: tokens per prompt; decode: cached tokens; cross_kv: input
    input_len: int = 0       # t5 decode: cross-attention length
    message_bytes: int = 0   # allreduce / p2p


@dataclass(frozen=True, slots=True)
class ProfileJob:
    spec: ModelSpec
    points: tuple[Point, ...]
    warmup: int
    repeats: int
    pids: tuple[int, ...]
    seed: int = 0
    round0: int = 0          # rounds taken by earlier parts of the same profile (their orders)
    dtype: str = "float32"   # the runner's precision (runner.dtype; float16 on CUDA)
    attempts: int = ATTEMPTS  # runs of a round at most while others disturb it (1: never again)


def _rng_tokens(spec: ModelSpec, n: int) -> list[int]:
    return torch.randint(3, spec.vocab_size - 2, (n,)).tolist()


def _state(S: StageModel, b: int, ctx_len: int, input_len: int, layers: int) -> SeqState:
    w, dt = S.w, S.dtype
    # caches with spare slots, as a running cache has (layers.append_slots): a decode point
    # times the in-place append the runner makes on all but one step in GROW_SLOTS
    k = [L.reserve(torch.randn(b, w.local_heads, ctx_len, w.head_dim, dtype=dt)) for _ in range(layers)]
    v = [L.reserve(torch.randn(b, w.local_heads, ctx_len, w.head_dim, dtype=dt)) for _ in range(layers)]
    valid = torch.ones(b, ctx_len, dtype=torch.bool)
    pos = torch.arange(ctx_len).expand(b, ctx_len).clone()
    st = SeqState(list(range(b)), k, v, valid, pos, torch.full((b,), ctx_len, dtype=torch.long))
    if S.t5:
        st.ck = [torch.randn(b, w.local_heads, input_len, w.head_dim, dtype=dt) for _ in range(layers)]
        st.cv = [torch.randn(b, w.local_heads, input_len, w.head_dim, dtype=dt) for _ in range(layers)]
        st.cvalid = torch.ones(b, input_len, dtype=torch.bool)
    return st


def _comm_op(ctx, p: Point):
    """An all-reduce over every rank, or a ping-pong between ranks 0 and 1 (others idle)."""
    x = torch.zeros(max(1, p.message_bytes // 4))
    if p.op == "allreduce":
        return lambda: dist.all_reduce(x), 1
    other = 1 - ctx.rank if ctx.rank < 2 else None

    def pingpong() -> None:     # one round trip; the table stores half of it
        if other is None:
            return
        if ctx.rank == 0:
            dist.send(x, other)
            dist.recv(x, other)
        else:
            dist.recv(x, other)
            dist.send(x, other)
    return pingpong, 2            # one round trip = two one-way messages


def _encode_op(S: StageModel, p: Point, ar):
    """The whole encoder stack (decoder-only: prefill) on b packed prompts, per layer."""
    prompts = [[3] * (p.length + (0 if S.t5 else 1)) for _ in range(p.batch_size)]
    x0 = S.embed_prompts(prompts)
    ids = list(range(p.batch_size))
    return lambda: S.encode(x0, prompts, ids, ar), S.num_encode_layers


def _decode_op(S: StageModel, p: Point, ar):
    """One decoding step of the whole decoder stack, per layer; the cache is reset before
    every call, so each repeat appends to the same `length` cached tokens."""
    n, b = len(S.dec), p.batch_size
    st = _state(S, b, p.length, p.input_len, n)
    rewind = st.rewinder()
    x = torch.randn(b, 1, S.w.spec.hidden_size, dtype=S.dtype)

    def dec() -> None:
        rewind()
        L.decode_stage(S.w, S.dec, st, x, ar)
    return dec, n


def _decode_pipe_op(ctx, job: ProfileJob, p: Point, models: dict):
    """A decoding step of this rank's stage of a 2-stage pipeline (ranks 0 and 1 each hold half
    the decoder, as RRA at TP 1 on two workers): the neighbour's activation is received on a
    receive posted before the step and this stage's sent after it, as the runner's posted
    receives do (harness.engine.links), so the step runs while the other worker runs its own
    stage and its message arrives. Returns the step's own time (not the exchange) per layer."""
    if ctx.rank >= 2:
        return (lambda: None), 1
    full = _stage_model(ctx, job, 1, models)
    lo, hi = split_layers(len(full.w.decoder), [1.0, 1.0])[ctx.rank]
    S = StageModel(full.w, StageSlice(0, 0, lo, hi, ctx.rank == 0, ctx.rank == 1), full.dtype)
    st = _state(S, p.batch_size, p.length, p.input_len, len(S.dec))
    rewind = st.rewinder()
    x = torch.randn(p.batch_size, 1, S.w.spec.hidden_size, dtype=S.dtype)
    buf = torch.empty_like(x)

    def dec() -> float:
        rewind()
        rq = dist.irecv(buf, 1 - ctx.rank)
        t = now()
        y = L.decode_stage(S.w, S.dec, st, x, L.no_allreduce)
        dt = now() - t
        sq = dist.isend(y.contiguous(), 1 - ctx.rank)
        rq.wait()
        sq.wait()
        return dt
    return dec, len(S.dec)


def _kv_select_op(S: StageModel, p: Point, ar):
    """Compaction: b + 1 sequences -> b (one query left)."""
    st = _state(S, p.batch_size + 1, p.length, p.input_len, len(S.dec))
    rows = list(range(1, p.batch_size + 1))
    return lambda: st.select(rows), len(S.dec)


def _kv_join_op(S: StageModel, p: Point, ar):
    """b sequences join one with a shorter cache (a new query)."""
    a = _state(S, p.batch_size, p.length, p.input_len, len(S.dec))
    new = _state(S, 1, max(1, p.length // 2), p.input_len, len(S.dec))
    return lambda: SeqState.concat(a, new), len(S.dec)


def _cross_kv_op(S: StageModel, p: Point, ar):
    """T5: project b encoder outputs of `length` tokens to every decoder layer's cross K/V."""
    b = p.batch_size
    enc_out = torch.randn(1, b * p.length, S.w.spec.hidden_size, dtype=S.dtype)
    return lambda: S.cross_state(enc_out, [p.length] * b, list(range(b))), len(S.dec)


def _lm_head_op(S: StageModel, p: Point, ar):
    """The LM head and the next step's token embedding for b sequences."""
    b, w = p.batch_size, S.w
    x = torch.randn(b, 1, w.spec.hidden_size, dtype=S.dtype)
    nxt = torch.zeros(b, dtype=torch.long)
    pos = torch.zeros(b, dtype=torch.long)
    return lambda: L.embed_step(w, L.next_tokens(w, x) + nxt, pos), 1


LAYER_OPS = {"encode_layer": _encode_op, "decode_layer": _decode_op, "kv_select": _kv_select_op,
             "kv_join": _kv_join_op, "cross_kv": _cross_kv_op, "lm_head": _lm_head_op}
COMM_OPS = ("allreduce", "p2p")          # with LAYER_OPS, PIPE_OPS: every op of a profile (PROFILE_OPS)
PIPE_OPS = ("decode_pipe",)              # timed inside a 2-stage pipeline (`_decode_pipe_op`)


def _stage_model(ctx, job: ProfileJob, tp: int, models: dict) -> StageModel:
    """This rank's whole-model stage at TP `tp`, built once per job (weights: the runner's cache)."""
    r = ctx.rank if tp > 1 else 0
    if (tp, r) not in models:
        w = cached_weights(ctx, job.spec, job.seed, tp, r, job.dtype)   # the runner's cache (harness.engine.weights)
        models[(tp, r)] = StageModel(w, StageSlice(0, len(w.encoder), 0, len(w.decoder), True, True),
                                     DTYPES[job.dtype])
    return models[(tp, r)]


def _op(ctx, job: ProfileJob, p: Point, models: dict, groups: dict):
    """(callable doing the point's work once, units it covers): the time per unit is stored
    (layers of the stack, 2 one-way messages of a ping-pong, else 1)."""
    tp = p.tp_degree
    if p.op in COMM_OPS:
        return _comm_op(ctx, p)
    if p.op in PIPE_OPS:
        return _decode_pipe_op(ctx, job, p, models)
    if p.op not in LAYER_OPS:
        raise ValueError(f"unknown op {p.op}")
    if ctx.rank >= tp:                # a rank outside the TP group idles at this point
        return (lambda: None), 1
    tp_ranks = tuple(range(tp))
    ar = (lambda t: dist.all_reduce(t, group=groups[tp_ranks])) if tp > 1 else L.no_allreduce
    return LAYER_OPS[p.op](_stage_model(ctx, job, tp, models), p, ar)


COMM_BURST = 5    # a collective point is timed this many times per round (each is ~0.1-1 ms)


def _round_order(n: int, seed: int, k: int) -> list[int]:
    """Point order of round k: a seeded shuffle, the same on every rank."""
    return np.random.default_rng([seed, 11, k]).permutation(n).tolist()


def profile_job(ctx, job: ProfileJob) -> dict | None:
    """Worker entry point: every point's samples (rank 0 returns them, others None).

    Round-robin: after `warmup` untimed passes over the grid, each of `repeats` rounds times
    every point once (collectives `COMM_BURST` times), in a fresh seeded order. A round that
    other processes disturbed is discarded and run again (at most `job.attempts - 1` extra
    rounds). Consecutive repeats of one point would all fall into the same burst of this
    VM's host noise (seconds long, +-20%; docs/real-execution.md); spread over the whole
    profiling window, every point's median sees the same mix of machine states.
    `job.seed` (with `round0`, the rounds an earlier part already took) seeds the orders."""
    torch.manual_seed(job.seed)
    groups = groups_for(ctx, [StageDef(tuple(range(t))) for t in sorted({p.tp_degree for p in job.points})])
    models: dict = {}
    ops = [_op(ctx, job, p, models, groups) for p in job.points]
    n = len(ops)
    for _ in range(job.warmup):
        for fn, _per in ops:
            fn()
    samples: list[list[float]] = [[] for _ in range(n)]
    rounds, extra, others = 0, 0, []
    flag = torch.zeros(1)
    while rounds < job.repeats:
        got: list[list[float]] = [[] for _ in range(n)]
        meter = CpuMeter(list(job.pids))
        with meter:
            for i in _round_order(n, job.seed, job.round0 + rounds + extra):
                fn, per = ops[i]
                for _ in range(COMM_BURST if job.points[i].op in COMM_OPS else 1):
                    dist.barrier()
                    t = now()
                    own = fn()
                    dt = now() - t
                    got[i].append((own if type(own) is float else dt) / per)   # a pipeline step: its own time
        flag[0] = float(meter.result.disturbed)
        dist.broadcast(flag, 0)
        if flag[0] and extra < job.attempts - 1:
            extra += 1
            time.sleep(0.3)
            continue
        for i in range(n):
            samples[i] += got[i]
        others.append((meter.result.other_cores, bool(flag[0])))
        rounds += 1
        if ctx.rank == 0:
            ctx.emit(("progress", rounds, job.repeats))
    if ctx.rank != 0:
        return None
    return {"samples": samples, "others": others, "remeasured": extra > 0}


def table_rows(points: tuple[Point, ...], samples: list[list[float]], others: list[tuple[float, bool]],
               remeasured: bool) -> list[dict]:
    """The profile table's rows: median and p10/p90 of every point's samples."""
    other = float(np.mean([o for o, _ in others]))
    disturbed = any(d for _, d in others)
    rows = []
    for p, a in zip(points, samples, strict=True):
        a = np.asarray(a)
        rows.append({**{f: getattr(p, f) for f in Point.__dataclass_fields__},
                     "time_s": float(np.median(a)), "time_p10_s": float(np.quantile(a, 0.1)),
                     "time_p90_s": float(np.quantile(a, 0.9)), "repeats": len(a),
                     "other_cores": other, "disturbed": disturbed, "remeasured": remeasured})
    return rows
