"""What each worker runs for one schedule: it replays, in order, the calls of its group from
the policy's batching program (harness/policies/program.py; the calls are the
discrete-event simulator's trace, `harness.simulator.discrete_event.trace_ops`).

SPMD: every rank of a group executes the same calls (output lengths are forced, ExeGPT §7,
so every finish is known in advance); no rank branches on the policy. The calls:
- prefill: whole prompts through the group's pipeline (`hold`: static batching, prompts
  padded to the longest); a request preempted after g tokens recomputes its prompt and
  those g tokens. Its requests join the live batch, or (`park`) wait for a transfer/join.
- decode(k): up to k iterations of the live batch, finished requests leave at once (KV
  compaction); `hold`: every slot kept until the batch's longest output (static batching).
- step: one iteration of the live batch, plus prompt chunks (`tokens` per request; a
  request whose prompt is complete joins the batch after the iteration; a chunk short of
  the whole prompt extends its KV, `Worker.extend_pass`).
- drain: the pipeline's bubble after a phase; the first stage takes the last tokens.
- transfer / join: the KV of a parked prefill moves to another group. The sending group
  (one worker) ships it right after the prefill that completed it; the receiving group's
  ranks receive it, each its layers and heads, at the `join`, where the program merges it
  (blocking if it has not arrived). The receiver acknowledges every hand-over, and the
  sender runs no call before the hand-overs that precede it in the program have been
  received: the program's back-pressure (WAA: at most so many unmerged batches).
- preempt: the requests' KV is freed; they keep their generated tokens.
Decisions that read the clock (arrivals, WAA's merges, runtime adjustment, ExeGPT §3) were
taken on the simulated clock; the runner enforces them. Records: ("enc_start", ids, t) from
a group's first stage, ("enc_end", ids, t) from its last, ("iter", t, batch, tokens,
finished, group, started) per decoding iteration from the last stage's leader.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

from harness.engine.layers import SeqState, state_from_tensors, state_part
from harness.engine.links import MAX_HEADER, StageDef
from harness.engine.timing import now
from harness.engine.weights import cached_weights
from harness.runner.worker import Worker
from harness.specs.models import ModelSpec

ACK_TAG = 1           # gloo tag of hand-over acknowledgements
KV_TAG = 16           # + transfer index: the gloo tag of one KV hand-over


@dataclass(frozen=True, slots=True)
class Group:
    """A named set of workers the program addresses: one pipeline of stages."""

    name: str
    stages: tuple[StageDef, ...]
    decode_micro_batches: int = 1
    encode_micro_batches: int = 1         # a prefill's micro-batches through the pipeline


@dataclass(frozen=True, slots=True)
class Call:
    """One call of the program as a worker replays it (`harness.policies.program.Op`, plus
    what the runner derived: `park`, the hand-overs, the acknowledgements to wait for)."""

    op: str
    group: str
    ids: tuple[int, ...] = ()
    iterations: int = 0
    tokens: tuple[int, ...] = ()
    hold: bool = False
    park: bool = False                                    # prefill: KV waits for a transfer/join
    sends: tuple[tuple[int, str, tuple[int, ...]], ...] = ()  # prefill: (transfer, dst, ids) shipped after it
    recv: tuple[tuple[int, str, tuple[int, ...]], ...] = ()   # join: (transfer, src, ids) received
    acks: int = 0                                         # this group's hand-overs received before it


@dataclass(frozen=True, slots=True)
class Job:
    spec: ModelSpec
    groups: tuple[Group, ...]
    prompts: tuple[tuple[int, ...], ...]
    output_lens: tuple[int, ...]
    schedule: tuple = ()                  # the plan's policy, knobs and batch sizes (identity)
    calls: tuple[Call, ...] = field(default=(), compare=False)   # the program's calls, in order
    adjustments: tuple = field(default=(), compare=False)       # runtime adjustment's decisions
    lanes: tuple[str, ...] = field(default=(), compare=False)   # decoding groups, the simulator's lane order
    seed: int = 0
    dtype: str = "float32"
    record_tokens: bool = False


class Replay(Worker):
    """This rank replays its group's calls (module docstring)."""

    def run(self) -> None:
        job, name = self.job, self.group.name
        self.S = self.stage_model()
        self.parked: list[SeqState] = []
        self.partial: dict[int, tuple] = {}      # chunked prefill: request -> (state, prompt, tokens done)
        self.acked = 0
        lead = {g.name: g.stages[0].leader for g in job.groups}
        self.lead = lead
        self.ack_order = [(t, lead[c.group]) for c in job.calls if c.op == "join"
                          for t, src, _ in c.recv if src == name]
        for c in job.calls:
            if c.group == name:
                getattr(self, f"op_{c.op}")(c)
        if self.s == 0:
            self.sync_tokens()
        self.wait_acks(len(self.ack_order))

    # ---- the calls ---------------------------------------------------------------------
    def op_prefill(self, c: Call) -> None:
        self.wait_acks(c.acks)
        ids = list(c.ids)
        prompts = self.prompts_of(ids)
        if self.first_lead:
            self.emit("enc_start", ids, now())
        new = self.encode_pass(ids, prompts, self.group.encode_micro_batches, pad=c.hold)
        if self.last_lead:
            self.emit("enc_end", ids, now())
        if c.park:
            self.parked.append(new)
        else:
            self.join(new, prompts)
        for t, dst, tids in c.sends:
            self.send_kv(t, dst, tids)

    def op_decode(self, c: Call) -> None:
        if not self.live():
            return
        if c.hold:
            steps = max(self.left[i] for st in self.mbs if st is not None for i in st.ids)
            for it in range(steps):
                self.decode_iteration(compact=False, ahead=it + 1 < steps)
            if self.s == 0:
                self.sync_tokens()
            self.reset()
            return
        for it in range(c.iterations):
            if not self.live():
                break
            self.decode_iteration(compact=True, ahead=it + 1 < c.iterations)

    def op_step(self, c: Call) -> None:
        if self.live():
            self.decode_iteration(compact=True)
        if c.ids:
            self.chunks(c)

    def op_drain(self, c: Call) -> None:
        if self.s == 0:                       # the pipeline drained: the last tokens are here
            self.sync_tokens()

    def op_transfer(self, c: Call) -> None:
        """Shipped right after the prefill that completed it (`Call.sends`)."""

    def op_join(self, c: Call) -> None:
        new, got = None, set()
        for t, src, tids in c.recv:
            st = self.recv_kv(t, src, tids)
            new = st if new is None else SeqState.concat(new, st)
            got.update(tids)
        local = [i for i in c.ids if i not in got]
        if local:
            st = self.take_parked(local)
            new = st if new is None else SeqState.concat(new, st)
        self.join(new, self.prompts_of(list(new.ids)))

    def op_preempt(self, c: Call) -> None:
        self.drop(set(c.ids))

    # ---- prompt chunks (ORCA: whole prompts; Sarathi-Serve: parts) -----------------------
    def chunks(self, c: Call) -> None:
        whole, wprompts, done = [], [], []
        for i, k in zip(c.ids, c.tokens, strict=True):
            st, prompt, a = self.partial.pop(i, (None, None, 0))
            if prompt is None:
                prompt = self.prompts_of([i])[0]
                if self.first_lead:
                    self.emit("enc_start", [i], now())
            b = a + k
            if a == 0 and b >= len(prompt):
                whole.append(i)
                wprompts.append(prompt)
                continue
            # decoder-only: the prompt's last token is the first decoding iteration's input
            st = self.extend_pass(st, i, prompt, a, min(b, len(prompt) - 1))
            if self.last_lead:
                self.emit("enc_end", [i], now())
            if b >= len(prompt):
                done.append((st, prompt))
            else:
                self.partial[i] = (st, prompt, b)
        if whole:
            new = self.encode_pass(whole, wprompts, self.group.encode_micro_batches, pad=False)
            if self.last_lead:
                self.emit("enc_end", whole, now())
            self.join(new, wprompts)
        for st, prompt in done:
            self.join(st, [prompt])

    # ---- KV hand-over --------------------------------------------------------------------
    def take_parked(self, ids) -> SeqState:
        """The parked prefills' rows of `ids`, in that order (they leave the park)."""
        want, pieces, rest = set(ids), [], []
        for st in self.parked:
            rows = [r for r, i in enumerate(st.ids) if i in want]
            if len(rows) == len(st):
                pieces.append(st)
            elif rows:
                pieces.append(st.select(rows))
                rest.append(st.select([r for r in range(len(st)) if r not in rows]))
            else:
                rest.append(st)
        self.parked = rest
        out = pieces[0]
        for p in pieces[1:]:
            out = SeqState.concat(out, p)
        order = list(ids)
        if out.ids != order:
            at = {i: r for r, i in enumerate(out.ids)}
            out = out.select([at[i] for i in order])
        return out

    def send_kv(self, t: int, dst: str, ids) -> None:
        """Each rank of group `dst` gets its layers and heads of the requests' KV (one packed
        message, `Links.send_many`)."""
        st, spec = self.take_parked(ids), self.job.spec
        for ds in next(g for g in self.job.groups if g.name == dst).stages:
            tp = len(ds.ranks)
            h = spec.num_heads // tp
            for r_i, r in enumerate(ds.ranks):
                part = state_part(st, *ds.dec, r_i * h, (r_i + 1) * h)
                self.links.send_many(part.tensors(), r, tag=t, wire=KV_TAG + t)

    def recv_kv(self, t: int, src: str, ids) -> SeqState:
        header = torch.zeros(MAX_HEADER, dtype=torch.long)
        dist.recv(header, self.lead[src], tag=KV_TAG + t)
        ts = self.links.recv_many_after(header, self.lead[src], wire=KV_TAG + t)
        st = state_from_tensors(list(ids), ts, len(self.S.dec), self.S.t5)
        if self.first_lead:
            self.links.send(torch.ones(1, dtype=torch.long), (self.lead[src],), wire=ACK_TAG)
        return st

    def wait_acks(self, n: int) -> None:
        """Until `n` of this group's hand-overs have been received (program order)."""
        ack = torch.zeros(1, dtype=torch.long)
        while self.acked < n:
            t, rank = self.ack_order[self.acked]
            dist.recv(ack, rank, tag=ACK_TAG)
            self.links.flush_tag(t)
            self.acked += 1


def execute(ctx, job: Job) -> dict:
    """Worker entry point (harness.engine.pool)."""
    w = Replay(ctx, job)
    dist.barrier()
    t0 = now()
    if w.group is not None:               # else: a worker the schedule does not use
        w.run()
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


def device_report(ctx, reset: bool) -> dict:
    """This worker's device: name, memory, torch / CUDA versions, and (CUDA) the peak memory
    allocated since the last reset; `reset`: start a new peak (before a run)."""
    import platform
    out = {"device": ctx.device, "torch": torch.__version__, "cuda": torch.version.cuda,
           "name": platform.processor() or platform.machine(), "memory_bytes": None, "peak_allocated_bytes": None}
    if ctx.cluster.device == "cuda":
        props = torch.cuda.get_device_properties(ctx.device)
        out |= {"name": props.name, "memory_bytes": int(props.total_memory),
                "peak_allocated_bytes": int(torch.cuda.max_memory_allocated(ctx.device))}
        if reset:
            torch.cuda.reset_peak_memory_stats(ctx.device)
    return out
