"""One worker's pipeline pieces inside its group (SPMD): encode, decode iterations, joins,
prompt chunks. `harness.runner.programs` replays a program's calls with them.

A group is one pipeline of stages (each a TP group of ranks). Every rank of it derives the
same control flow from the job (output lengths are forced, ExeGPT §7), so only tensors
travel: activations stage -> stage, tokens last stage -> first stage, TP all-reduces.
Receives are posted ahead (`Links.post`) wherever the next message's shape is known.
The last stage's leader streams one record per decoding iteration; encode records come
from the stages that start and end an encoding. Times are `harness.engine.timing.now`
(CLOCK_MONOTONIC, shared by all processes of the machine).
"""

from __future__ import annotations

import torch

from harness.engine.layers import SeqState
from harness.engine.links import Links, StageDef, allreduce_fn, groups_for
from harness.engine.stage import StageModel, StageSlice
from harness.engine.timing import now
from harness.engine.weights import DTYPES, cached_weights


def split(ids: list[int], m: int) -> list[list[int]]:
    q, r = divmod(len(ids), max(1, m))
    out, lo = [], 0
    for j in range(m):
        hi = lo + q + (j < r)
        if hi > lo:
            out.append(ids[lo:hi])
        lo = hi
    return out


class Worker:
    """This rank's place in its group (`stages`, stage index `s`) and the group's live batch:
    `mbs` decoding micro-batches (SeqState or None), `toks` their next inputs (first stage),
    `need` posted receives of those inputs (first stage of a pipeline)."""

    def __init__(self, ctx, job) -> None:
        self.ctx, self.job, self.rank = ctx, job, ctx.rank
        self.dtype = DTYPES[job.dtype]
        self.groups = groups_for(ctx, [st for g in job.groups for st in g.stages])
        self.links = Links(self.rank, self.dtype)
        self.left = list(job.output_lens)
        self.tokens: dict[int, list[int]] = {}   # generated ids (record_tokens, last stage leader)
        self.gen: dict[int, list[int]] = {}      # generated ids, last stage (recompute after preemption)
        self.group = next((g for g in job.groups if any(self.rank in st.ranks for st in g.stages)), None)
        self.stages = self.group.stages if self.group else ()
        self.s = next((i for i, st in enumerate(self.stages) if self.rank in st.ranks), -1)
        m = self.group.decode_micro_batches if self.group else 1
        self.mbs: list = [None] * m
        self.toks: list = [None] * m
        self.need: list = [None] * m
        self.xin: dict[int, object] = {}      # micro-batch -> its next input, posted (stages > 0)
        self.decode_calls: list[tuple] = []   # `decode`'s timings
        self.S: StageModel | None = None

    def model(self, st: StageDef, first: bool, last: bool) -> StageModel:
        tp, r = len(st.ranks), st.ranks.index(self.rank)
        w = cached_weights(self.ctx, self.job.spec, self.job.seed, tp, r, self.job.dtype)
        return StageModel(w, StageSlice(*st.enc, *st.dec, first, last), self.dtype)

    def stage_model(self) -> StageModel:
        P = len(self.stages)
        return self.model(self.stages[self.s], self.s == 0, self.s == P - 1)

    def emit(self, *msg) -> None:
        self.ctx.emit(msg)

    @property
    def first_lead(self) -> bool:
        return self.s == 0 and self.rank == self.stages[0].leader

    @property
    def last_lead(self) -> bool:
        return self.s == len(self.stages) - 1 and self.rank == self.stages[-1].leader

    def live(self) -> int:
        return sum(len(x) for x in self.mbs if x is not None)

    def reset(self) -> None:
        """Static batching: the held batch has run to its end; its slots are freed."""
        m = len(self.mbs)
        self.mbs, self.toks, self.need = [None] * m, [None] * m, [None] * m

    # ---- prompts -----------------------------------------------------------------------
    def prompts_of(self, ids: list[int]) -> list[list[int]]:
        """What a prefill of `ids` processes: the prompt, and for a request preempted after g
        tokens its g generated tokens too (recompute). The first stage of a pipeline gets
        those tokens from the last stage; other stages only need the lengths."""
        job, P = self.job, len(self.stages)
        done = [job.output_lens[i] - self.left[i] for i in ids]
        if not any(done):
            return [list(job.prompts[i]) for i in ids]
        if job.spec.is_encoder_decoder:
            raise RuntimeError("runner: recomputing a preempted request's decoder state is not "
                               "implemented for encoder-decoder models")
        last, ar = self.s == P - 1, [i for i, d in zip(ids, done, strict=True) if d]
        if P > 1 and (last or self.s == 0):
            if last and self.rank == self.stages[-1].leader:
                self.links.send(torch.tensor([t for i in ar for t in self.gen[i]], dtype=torch.long),
                                self.stages[0].ranks)
            if self.s == 0:
                got = self.links.recv((sum(job.output_lens[i] - self.left[i] for i in ar),),
                                      self.stages[-1].leader, torch.long).tolist()
                at = 0
                for i in ar:
                    g = job.output_lens[i] - self.left[i]
                    self.gen[i], at = got[at:at + g], at + g
        out = []
        for i, d in zip(ids, done, strict=True):
            extra = self.gen.get(i, [0] * d)[:d] if self.s in (0, P - 1) else [0] * d
            out.append(list(job.prompts[i]) + list(extra))
        return out

    # ---- pipeline pieces -------------------------------------------------------------------
    def encode_pass(self, ids: list[int], prompts: list[list[int]], m: int, pad: bool) -> SeqState | None:
        """Encode `prompts` (of `ids`) in `m` micro-batches through the pipeline; this
        stage's new state."""
        S, stages, s, spec = self.S, self.stages, self.s, self.job.spec
        P, me = len(stages), stages[s]
        ar = allreduce_fn(self.groups, me)
        lead = self.rank == me.leader
        rows = split(list(range(len(ids))), m)
        states, hidden = [], []
        for rs in rows:
            mb, ps = [ids[r] for r in rs], [prompts[r] for r in rs]
            pad_to = max(len(p) for p in ps) if pad else None
            if s == 0:
                x = S.embed_prompts(ps, pad_to).to(self.dtype)
            else:
                x = self.links.recv((1, sum(S.segments(ps, pad_to)[0]), spec.hidden_size), stages[s - 1].leader)
            x, st = S.encode(x, ps, mb, ar, pad_to)
            if s < P - 1 and lead:
                self.links.send(x, stages[s + 1].ranks)
            states.append(st)
            hidden.append((x, ps, pad_to, mb))
        if S.t5:     # the encoder output (after the last stage) feeds every stage's cross K/V
            states = []
            for x, ps, pad_to, mb in hidden:
                x = S.real_tokens(x, ps, pad_to) if s == P - 1 else None
                if s == P - 1 and lead:
                    self.links.send(x, tuple(r for st in stages[:-1] for r in st.ranks))
                if s < P - 1:
                    x = self.links.recv((1, sum(S.prompt_lengths(ps)), spec.hidden_size), stages[-1].leader)
                states.append(S.cross_state(x, S.prompt_lengths(ps), mb))
        out = None
        for st in states:
            out = st if out is None else SeqState.concat(out, st)
        return out

    def extend_pass(self, st: SeqState | None, i: int, prompt: list[int], lo: int, hi: int) -> SeqState:
        """Prefill prompt tokens [lo, hi) of request i on top of its earlier chunks' KV `st`
        (chunked prefill, decoder-only): through the pipeline, one sequence."""
        S, stages, s, spec = self.S, self.stages, self.s, self.job.spec
        P, me = len(stages), stages[s]
        ar = allreduce_fn(self.groups, me)
        if st is None:
            st = S.empty_state([i])
        if hi <= lo:
            return st
        if s == 0:
            x = S.embed_chunk(prompt[lo:hi], lo).to(self.dtype)
        else:
            x = self.links.recv((1, hi - lo, spec.hidden_size), stages[s - 1].leader)
        x = S.extend(st, x, ar)
        if s < P - 1 and self.rank == me.leader:
            self.links.send(x, stages[s + 1].ranks)
        return st

    def decode_iteration(self, compact: bool, ahead: bool = False) -> None:
        """Every non-empty micro-batch advances one token through the pipeline. Receives are
        posted ahead (`Links.post`) wherever the next message's shape is known: a later
        stage's inputs for every micro-batch of this iteration, and (`ahead`: the caller's
        next call is another iteration over the same micro-batches) of the next one; the
        first stage's tokens as soon as their micro-batch left it (`need[j]`)."""
        S, stages, s, job = self.S, self.stages, self.s, self.job
        mbs, toks, need = self.mbs, self.toks, self.need
        P, me = len(stages), stages[s]
        ar, lead, last = allreduce_fn(self.groups, me), self.rank == me.leader, s == P - 1
        hidden = (1, job.spec.hidden_size)
        if s > 0:
            for j, st in enumerate(mbs):
                if st is not None and len(st) and self.xin.get(j) is None:
                    self.xin[j] = self.links.post((len(st), *hidden), stages[s - 1].leader)
        live = tokens = 0
        finished: list[int] = []
        started: list[int] = []
        for j, st in enumerate(mbs):
            if st is None or not len(st):
                continue
            b = len(st)
            if s == 0:
                if need[j] is not None:
                    toks[j], need[j] = need[j].take(), None
                x = self.decode(st, toks[j], ar, len(me.ranks))
            else:
                xin, self.xin[j] = self.xin[j], None
                x = self.decode(st, xin.take(), ar, len(me.ranks))
            if not last and lead:
                self.links.send(x, stages[s + 1].ranks)
            nxt = S.tokens(x).tolist() if last else None
            keep, made = self._advance_rows(st.ids, nxt, lead, compact, started, finished)
            tokens += made
            live += b
            if keep and len(keep) < b:
                mbs[j] = st.select(keep)
            elif not keep:
                mbs[j] = None
            if last and keep:
                nk = torch.tensor([nxt[r] for r in keep], dtype=torch.long)
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
            self.emit("iter", now(), live, tokens, finished, self.group.name, started)

    def _advance_rows(self, ids, nxt, lead: bool, compact: bool, started: list, finished: list
                      ) -> tuple[list[int], int]:
        """One token for every row of a micro-batch (`nxt`: the sampled ids, last stage only):
        count the real tokens, note the requests that start and finish, keep the generated
        ids; the rows that stay (all of them without compaction) and the tokens made."""
        job, keep, made = self.job, [], 0
        for row, i in enumerate(ids):
            if self.left[i] > 0:
                made += 1
                if nxt is not None:
                    self.gen.setdefault(i, []).append(nxt[row])
                    if job.record_tokens and lead:
                        self.tokens.setdefault(i, []).append(nxt[row])
                if self.left[i] == job.output_lens[i]:
                    started.append(i)
                if self.left[i] == 1:
                    finished.append(i)
            self.left[i] -= 1
            if self.left[i] > 0 or not compact:
                keep.append(row)
        return keep, made

    def decode(self, st: SeqState, x: torch.Tensor, ar, tp: int) -> torch.Tensor:
        """`S.decode`, timed: one (batch, cached tokens, input length, layers, TP degree,
        seconds) row per call, the run's own decode-stack speed (harness.runner.drift)."""
        S = self.S
        cached = st.k[0].shape[2] if st.k else 0
        inp = st.ck[0].shape[2] if S.t5 and st.ck else 0
        t = now()
        x = S.decode(st, x, ar)
        self.decode_calls.append((len(st), cached, inp, len(S.dec), tp, now() - t))
        return x

    def sync_tokens(self, which=None) -> None:
        """First stage: take the outstanding tokens of micro-batches `which` (all: the
        pipeline has drained)."""
        for j in range(len(self.mbs)) if which is None else which:
            if self.need[j] is not None and self.mbs[j] is not None:
                self.toks[j], self.need[j] = self.need[j].take(), None

    def join(self, new: SeqState, prompts: list[list[int]]) -> None:
        """Newly prefilled sequences (`prompts` in `new`'s row order) join the smallest
        decoding micro-batches."""
        mbs, toks = self.mbs, self.toks
        sizes = [len(m) if m is not None else 0 for m in mbs]
        rows: list[list[int]] = [[] for _ in mbs]
        for r in range(len(new)):
            j = min(range(len(sizes)), key=sizes.__getitem__)
            rows[j].append(r)
            sizes[j] += 1
        first = self.S.first_inputs(prompts) if self.s == 0 else None
        if self.s == 0:
            self.sync_tokens([j for j, rs in enumerate(rows) if rs])
        for j, rs in enumerate(rows):
            if not rs:
                continue
            part = new.select(rs) if len(rs) < len(new) else new
            mbs[j] = part if mbs[j] is None else SeqState.concat(mbs[j], part)
            if first is not None:
                toks[j] = first[rs] if toks[j] is None else torch.cat((toks[j], first[rs]))

    def drop(self, ids: set[int]) -> None:
        """Free the KV of live requests `ids` (preemption): their rows leave the batch."""
        for j, st in enumerate(self.mbs):
            if st is None or not any(i in ids for i in st.ids):
                continue
            if self.s == 0:
                self.sync_tokens([j])
            keep = [r for r, i in enumerate(st.ids) if i not in ids]
            self.mbs[j] = st.select(keep) if keep else None
            if self.s == 0:
                self.toks[j] = self.toks[j][keep] if keep else None
