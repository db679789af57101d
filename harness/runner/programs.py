"""What each worker runs for one schedule (SPMD): FT static batches, RRA cycles, WAA pipelines.

Every rank derives the same control flow from the job (output lengths are forced, ExeGPT §7),
so only tensors travel: activations stage -> stage, tokens last stage -> first stage, TP
all-reduces, and (WAA) the encoded KV cache encode worker -> decode workers. The last
stage's leader streams one record per decoding iteration; encode records come from the
stages that start and end an encoding. Times are `time.perf_counter()` (CLOCK_MONOTONIC,
shared by all processes of the machine).
- static (FT, ExeGPT §1): batches of B in order; prompts padded to the batch's longest;
  decoding runs to the batch's longest output with every slot kept (no early termination).
- rra (§3): cycles of encode(B_E) -> N_D decoding iterations; finished sequences leave at
  once (KV compaction), newly encoded ones join the decoding micro-batches (smallest first).
  Phase-synchronous: the first stage starts the next encoding after it has the last
  iteration's tokens (the runtime learns which queries ended, as with real EOS).
- waa (§3): one encode worker encodes batches of B_E back to back (at most
  `waa_max_unmerged` ahead of the decoder) and hands each batch's KV cache to the decode
  pipeline; the decode pipeline merges at most one ready batch per iteration.
Runtime adjustment (ExeGPT §3; `Job.adjuster`, None = off, the plain schedules above): the
simulator's `harness.simulator.adjust.Adjuster` sizes each encoder batch. RRA: every rank
takes the same decision from the mean decoding batch of the last phase (known to all, as
lengths are forced). WAA: the encode worker decides from the live decoding batch, which the
first decode stage's leader publishes in shared memory (`DECODE_LIVE`) at each merge and
iteration; the decode ranks read each batch's size off the KV hand-over (batches stay
contiguous ranges).
The deciding rank emits ("adjust", first request, room, observed batch, count, target) for
every encoder batch it forms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist

from harness.runner.engine import StageModel, StageSlice
from harness.runner.layers import SeqState, state_from_tensors, state_part
from harness.runner.links import MAX_HEADER, Links, StageDef, allreduce_fn, groups_for
from harness.runner.weights import load_weights
from harness.specs.models import ModelSpec

if TYPE_CHECKING:   # a job with an Adjuster imports it when unpickled; off, workers never do
    from harness.simulator.adjust import Adjuster

DTYPES = {"float32": torch.float32, "float64": torch.float64}
BATCHES_SENT = 0        # shared counter: WAA batches the encode worker has handed over
DECODE_LIVE = 1         # shared counter: WAA live decoding batch (runtime adjustment only)
POLL_S = 2e-4


@dataclass(frozen=True, slots=True)
class Job:
    spec: ModelSpec
    kind: str                                # static | rra | waa
    stages: tuple[StageDef, ...]             # static/rra: the pipeline; waa: decode pipeline
    prompts: tuple[tuple[int, ...], ...]
    output_lens: tuple[int, ...]
    batch_size: int                          # B (static) | B_E
    decode_iters: int = 1                    # N_D (rra)
    encode_micro_batches: int = 1
    decode_micro_batches: int = 1
    max_decode_batch: int = 1 << 30          # plan's cap on B_D
    enc_stage: StageDef | None = None        # waa: the encode worker
    waa_max_unmerged: int = 2
    seed: int = 0
    dtype: str = "float32"
    record_tokens: bool = False
    adjuster: Adjuster | None = None         # runtime adjustment (rra/waa); None = off


def cached_weights(ctx, spec: ModelSpec, seed: int, tp: int, r: int, dtype: str = "float32"):
    """Rank r's shard at TP `tp`, built once per worker process (runs and profiles share it)."""
    key = ("w", spec, seed, tp, r, dtype)
    if key not in ctx.cache:
        ctx.cache[key] = load_weights(spec, seed, tp, r, DTYPES[dtype], ctx.device)
    return ctx.cache[key]


def now() -> float:
    """A timestamp after the device finished the work queued so far (CUDA kernels are async)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def split(ids: list[int], m: int) -> list[list[int]]:
    q, r = divmod(len(ids), max(1, m))
    out, lo = [], 0
    for j in range(m):
        hi = lo + q + (j < r)
        if hi > lo:
            out.append(ids[lo:hi])
        lo = hi
    return out


class _Worker:
    def __init__(self, ctx, job: Job) -> None:
        self.ctx, self.job, self.rank = ctx, job, ctx.rank
        self.dtype = DTYPES[job.dtype]
        all_stages = list(job.stages) + ([job.enc_stage] if job.enc_stage else [])
        self.groups = groups_for(ctx, all_stages)
        self.links = Links(self.rank, self.dtype)
        self.left = list(job.output_lens)
        self.tokens: dict[int, list[int]] = {}
        self.s = next((i for i, st in enumerate(job.stages) if self.rank in st.ranks), -1)
        self.xin: dict[int, object] = {}      # micro-batch -> its next input, posted (stages > 0)
        self.decode_calls: list[tuple] = []   # `decode`'s timings

    def model(self, st: StageDef, first: bool, last: bool) -> StageModel:
        tp, r = len(st.ranks), st.ranks.index(self.rank)
        w = cached_weights(self.ctx, self.job.spec, self.job.seed, tp, r, self.job.dtype)
        return StageModel(w, StageSlice(*st.enc, *st.dec, first, last), self.dtype)

    def emit(self, *msg) -> None:
        self.ctx.emit(msg)

    # ---- pipeline pieces -------------------------------------------------------------------
    def encode_pass(self, S: StageModel, ids: list[int], m: int, pad: bool) -> SeqState | None:
        """Encode `ids` in `m` micro-batches through the pipeline; this stage's new state."""
        stages, s, job = self.job.stages, self.s, self.job
        P, me = len(stages), stages[self.s]
        ar = allreduce_fn(self.groups, me)
        lead = self.rank == me.leader
        mbs = split(ids, m)
        states, hidden = [], []
        for mb in mbs:
            prompts = [list(job.prompts[i]) for i in mb]
            pad_to = max(len(p) for p in prompts) if pad else None
            if s == 0:
                x = S.embed_prompts(prompts, pad_to).to(self.dtype)
            else:
                x = self.links.recv((1, sum(S.segments(prompts, pad_to)[0]), job.spec.hidden_size),
                                    stages[s - 1].leader)
            x, st = S.encode(x, prompts, mb, ar, pad_to)
            if s < P - 1 and lead:
                self.links.send(x, stages[s + 1].ranks)
            states.append(st)
            hidden.append((x, prompts, pad_to))
        if S.t5:     # the encoder output (after the last stage) feeds every stage's cross K/V
            states = []
            for (x, prompts, pad_to), mb in zip(hidden, mbs, strict=True):
                x = S.real_tokens(x, prompts, pad_to) if s == P - 1 else None
                if s == P - 1 and lead:
                    self.links.send(x, tuple(r for st in stages[:-1] for r in st.ranks))
                if s < P - 1:
                    x = self.links.recv((1, sum(S.prompt_lengths(prompts)), job.spec.hidden_size),
                                        stages[-1].leader)
                states.append(S.cross_state(x, S.prompt_lengths(prompts), mb))
        out = None
        for st in states:
            out = st if out is None else SeqState.concat(out, st)
        return out

    def decode_iteration(self, S: StageModel, mbs: list, toks: list, need: list, compact: bool,
                         ahead: bool = False) -> None:
        """Every non-empty micro-batch advances one token through the pipeline. Receives are
        posted ahead (`Links.post`) wherever the next message's shape is known: a later
        stage's inputs for every micro-batch of this iteration, and (`ahead`: the caller's
        next call is another iteration over the same micro-batches) of the next one; the
        first stage's tokens as soon as their micro-batch left it (`need[j]`)."""
        stages, s, job = self.job.stages, self.s, self.job
        P, me = len(stages), stages[s]
        ar, lead, last = allreduce_fn(self.groups, me), self.rank == me.leader, s == P - 1
        hidden = (1, job.spec.hidden_size)
        if s > 0:
            for j, st in enumerate(mbs):
                if st is not None and len(st) and self.xin.get(j) is None:
                    self.xin[j] = self.links.post((len(st), *hidden), stages[s - 1].leader)
        live = tokens = 0
        finished: list[int] = []
        for j, st in enumerate(mbs):
            if st is None or not len(st):
                continue
            b = len(st)
            if s == 0:
                if need[j] is not None:
                    toks[j], need[j] = need[j].take(), None
                x = self.decode(S, st, toks[j], ar, len(me.ranks))
            else:
                xin, self.xin[j] = self.xin[j], None
                x = self.decode(S, st, xin.take(), ar, len(me.ranks))
            if not last and lead:
                self.links.send(x, stages[s + 1].ranks)
            nxt = S.tokens(x) if last else None
            keep = []
            for row, i in enumerate(st.ids):
                if self.left[i] > 0:
                    tokens += 1
                    if nxt is not None and job.record_tokens and lead:
                        self.tokens.setdefault(i, []).append(int(nxt[row]))
                    if self.left[i] == 1:
                        finished.append(i)
                self.left[i] -= 1
                if self.left[i] > 0 or not compact:
                    keep.append(row)
            live += b
            if keep and len(keep) < b:
                mbs[j] = st.select(keep)
            elif not keep:
                mbs[j] = None
            if last and keep:
                nk = nxt[keep] if len(keep) < b else nxt
                if P > 1:
                    if lead:
                        self.links.send(nk, stages[0].ranks)
                else:
                    toks[j] = nk
            if s == 0 and P > 1 and keep:
                need[j] = self.links.post((len(keep),), stages[-1].leader, torch.long)
            if s == 0 and not keep:
                toks[j] = None
            if s > 0 and ahead and keep:
                self.xin[j] = self.links.post((len(keep), *hidden), stages[s - 1].leader)
        if last and lead and live:
            self.emit("iter", now(), live, tokens, finished)

    def decode(self, S: StageModel, st: SeqState, x: torch.Tensor, ar, tp: int) -> torch.Tensor:
        """`S.decode`, timed: one (batch, cached tokens, input length, layers, TP degree,
        seconds) row per call, the run's own decode-stack speed (harness.runner.drift)."""
        cached = st.k[0].shape[2] if st.k else 0
        inp = st.ck[0].shape[2] if S.t5 and st.ck else 0
        t = now()
        x = S.decode(st, x, ar)
        self.decode_calls.append((len(st), cached, inp, len(S.dec), tp, now() - t))
        return x

    def sync_tokens(self, mbs: list, toks: list, need: list) -> None:
        """First stage: take every outstanding micro-batch's tokens (phase boundary)."""
        for j, st in enumerate(mbs):
            if need[j] is not None and st is not None:
                toks[j], need[j] = need[j].take(), None

    def join(self, S: StageModel, mbs: list, toks: list, need: list, new: SeqState) -> None:
        """Newly encoded sequences join the smallest decoding micro-batches."""
        sizes = [len(m) if m is not None else 0 for m in mbs]
        rows: list[list[int]] = [[] for _ in mbs]
        for r in range(len(new)):
            j = min(range(len(sizes)), key=sizes.__getitem__)
            rows[j].append(r)
            sizes[j] += 1
        first = S.first_inputs([list(self.job.prompts[i]) for i in new.ids]) if self.s == 0 else None
        for j, rs in enumerate(rows):
            if not rs:
                continue
            part = new.select(rs) if len(rs) < len(new) else new
            mbs[j] = part if mbs[j] is None else SeqState.concat(mbs[j], part)
            if first is not None:
                toks[j] = first[rs] if toks[j] is None else torch.cat((toks[j], first[rs]))

    def stage_model(self) -> StageModel:
        P = len(self.job.stages)
        return self.model(self.job.stages[self.s], self.s == 0, self.s == P - 1)

    def is_lead(self, st: StageDef) -> bool:
        return self.rank == st.leader


def _static(w: _Worker) -> None:
    job, S = w.job, w.stage_model()
    P, n = len(job.stages), len(job.prompts)
    first_lead = w.s == 0 and w.is_lead(job.stages[0])
    last_lead = w.s == P - 1 and w.is_lead(job.stages[-1])
    for lo in range(0, n, job.batch_size):
        ids = list(range(lo, min(n, lo + job.batch_size)))
        if first_lead:
            w.emit("enc_start", ids, now())
        new = w.encode_pass(S, ids, job.encode_micro_batches, pad=True)
        if last_lead:
            w.emit("enc_end", ids, now())
        m = len(split(ids, job.decode_micro_batches))
        mbs, toks, need = [None] * m, [None] * m, [None] * m
        w.join(S, mbs, toks, need, new)
        steps = max(job.output_lens[i] for i in ids)
        for it in range(steps):
            w.decode_iteration(S, mbs, toks, need, compact=False, ahead=it + 1 < steps)
        if w.s == 0:
            w.sync_tokens(mbs, toks, need)


def _rra(w: _Worker) -> None:
    job, S = w.job, w.stage_model()
    P, n = len(job.stages), len(job.prompts)
    m = job.decode_micro_batches
    mbs, toks, need = [None] * m, [None] * m, [None] * m
    nxt = 0
    live = lambda: sum(len(x) for x in mbs if x is not None)  # noqa: E731
    adj, phase_mean = job.adjuster, 0.0       # phase_mean: mean decoding batch of the last phase
    inputs = np.array([len(p) for p in job.prompts], dtype=np.int64) if adj else None
    first_lead = w.s == 0 and w.is_lead(job.stages[0])
    while nxt < n or live():
        if adj is None:
            k = max(0, min(job.batch_size, n - nxt, job.max_decode_batch - live()))
        else:                                 # every rank takes the same decision
            adj.observe(phase_mean)
            room = max(0, min(n - nxt, job.max_decode_batch - live()))
            k = adj.size(inputs[nxt:nxt + room], room)
            if first_lead and k:
                w.emit("adjust", nxt, room, phase_mean, k, adj.target)
        if k:
            ids = list(range(nxt, nxt + k))
            if w.s == 0 and w.is_lead(job.stages[0]):
                w.emit("enc_start", ids, now())
            new = w.encode_pass(S, ids, job.encode_micro_batches, pad=False)
            if w.s == P - 1 and w.is_lead(job.stages[-1]):
                w.emit("enc_end", ids, now())
            w.join(S, mbs, toks, need, new)
            nxt += k
        sizes = []
        for it in range(job.decode_iters):
            if not live():
                break
            if adj is not None:
                sizes.append(live())
            w.decode_iteration(S, mbs, toks, need, compact=True, ahead=it + 1 < job.decode_iters)
        if adj is not None:
            phase_mean = float(np.mean(sizes)) if sizes else 0.0
        if w.s == 0:
            w.sync_tokens(mbs, toks, need)


def _waa_encoder(w: _Worker) -> None:
    job = w.job
    e, n = job.enc_stage, len(job.prompts)
    spec = job.spec
    dec_layers = (0, spec.num_decoder_layers)
    S = w.model(StageDef(e.ranks, (0, spec.num_encoder_layers), dec_layers), True, True)
    ack = torch.zeros(1, dtype=torch.long)
    sent = acked = lo = 0
    adj = job.adjuster
    inputs = np.array([len(p) for p in job.prompts], dtype=np.int64) if adj else None
    while lo < n:
        while sent - acked >= job.waa_max_unmerged:
            dist.recv(ack, job.stages[0].leader)
            acked += 1
        w.links.flush_before(acked)
        if adj is None:
            hi = min(n, lo + job.batch_size)
        else:                                 # the live decoding batch, as the decoder last saw it
            live = int(w.ctx.shared[DECODE_LIVE])
            adj.observe(live)
            hi = lo + adj.size(inputs[lo:], n - lo)
            w.emit("adjust", lo, n - lo, float(live), hi - lo, adj.target)
        ids = list(range(lo, hi))
        prompts = [list(job.prompts[i]) for i in ids]
        w.emit("enc_start", ids, now())
        x, st = S.encode(S.embed_prompts(prompts).to(w.dtype), prompts, ids)
        if S.t5:
            st = S.cross_state(x, S.prompt_lengths(prompts), ids)
        w.emit("enc_end", ids, now())
        for ds in job.stages:             # each decode rank gets its layers and heads
            tp = len(ds.ranks)
            for r_i, r in enumerate(ds.ranks):
                h = spec.num_heads // tp
                w.links.send_many(state_part(st, *ds.dec, r_i * h, (r_i + 1) * h).tensors(), r, tag=sent)
        sent, lo = sent + 1, hi
        w.ctx.shared[BATCHES_SENT] = sent     # host-memory flag: batch `sent - 1` is on its way
    while acked < sent:
        dist.recv(ack, job.stages[0].leader)
        acked += 1


def _waa_decoder(w: _Worker) -> None:
    job, S = w.job, w.stage_model()
    src, n, m = job.enc_stage.leader, len(job.prompts), job.decode_micro_batches
    leader0 = w.rank == job.stages[0].leader
    others = [r for st in job.stages for r in st.ranks if r != job.stages[0].leader]
    mbs, toks, need = [None] * m, [None] * m, [None] * m
    header = torch.zeros(MAX_HEADER, dtype=torch.long)
    k = nxt = 0                               # batches merged, requests merged
    live = lambda: sum(len(x) for x in mbs if x is not None)  # noqa: E731
    publish = leader0 and job.adjuster is not None
    while nxt < n or live():
        merge = torch.zeros(1, dtype=torch.long)
        if leader0 and nxt < n:
            while not live() and w.ctx.shared[BATCHES_SENT] <= k:
                time.sleep(POLL_S)            # nothing to decode: wait for the encoder
            merge[0] = int(w.ctx.shared[BATCHES_SENT] > k)
        if others:
            if leader0:
                w.links.send(merge, tuple(others))
            else:
                dist.recv(merge, job.stages[0].leader)
        if merge[0]:
            dist.recv(header, src)
            ts = w.links.recv_many_after(header, src)
            b = len(ts[2 * len(S.dec)])         # the batch's size: rows of its `valid` mask
            new = state_from_tensors(list(range(nxt, nxt + b)), ts, len(S.dec), S.t5)
            if publish:                         # before the ack the encoder may wait for
                w.ctx.shared[DECODE_LIVE] = live() + b
            if leader0:
                w.links.send(torch.ones(1, dtype=torch.long), (src,))
            w.join(S, mbs, toks, need, new)
            k, nxt = k + 1, nxt + b
        if live():
            w.decode_iteration(S, mbs, toks, need, compact=True)
            if publish:                         # what the encoder's next decision reads
                w.ctx.shared[DECODE_LIVE] = live()
    if w.s == 0:
        w.sync_tokens(mbs, toks, need)


def execute(ctx, job: Job) -> dict:
    """Worker entry point (harness.runner.pool)."""
    w = _Worker(ctx, job)
    dist.barrier()
    t0 = now()
    if job.kind in ("static", "rra") and w.s < 0:
        pass                              # a worker the schedule does not use
    elif job.kind == "static":
        _static(w)
    elif job.kind == "rra":
        _rra(w)
    elif job.kind == "waa":
        if job.enc_stage and w.rank in job.enc_stage.ranks:
            _waa_encoder(w)
        elif w.s >= 0:
            _waa_decoder(w)
    else:
        raise ValueError(f"unknown plan kind {job.kind}")
    w.links.flush()
    dist.barrier()
    return {"rank": ctx.rank, "t0": t0, "tokens": w.tokens,
            "decode_calls": np.asarray(w.decode_calls, dtype=np.float64).reshape(-1, 6)}


def prepare(ctx, payload: tuple[ModelSpec, int, str]) -> None:
    """Build (and cache) this rank's weights at TP 1 and TP = world, outside any timing."""
    spec, seed, dtype = payload
    for tp, r in ((1, 0), (ctx.world, ctx.rank)):
        if spec.num_heads % tp == 0 and spec.ffn_size % tp == 0:
            cached_weights(ctx, spec, seed, tp, r, dtype)
