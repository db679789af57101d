"""Sarathi-Serve: chunked prefill with stall-free batching (Agrawal et al., "Taming
Throughput-Latency Tradeoff in LLM Inference with Sarathi-Serve", OSDI 2024).

Every iteration, per replica, a hybrid batch of at most `token_budget` tokens: first every
live decode (one token each: decodes never stall for a prompt), then the prompts already
being prefilled, then new ones, oldest first, each taking as many of its remaining prompt
tokens as the budget leaves (a long prompt spans several iterations: chunked prefill). A
request whose prompt is complete joins the live batch (first token next iteration).
Admission is limited by `max_num_seqs` (running requests: decoding or being prefilled) and
by the KV blocks (vLLM's block manager, on which Sarathi-Serve is built: the whole prompt's
blocks are taken when its first chunk is scheduled, less vLLM's 1% watermark while others
run). When the next token of some request needs a block and none is free, the most recently
admitted decoding request is preempted by recompute (as `harness/policies/vllm.py`); a
request part-way through its prompt is not (the Executor cannot undo part of a prompt), so
with one decoding request and prompts in flight the blocks may be over-committed for a few
iterations: accounting only, the plan guarantees the longest request fits alone.
Layout as vLLM: TP inside a node (knob), the fewest pipeline stages that fit the weights and
one `token_budget`-token forward, data-parallel replicas on the other GPUs.
Knobs: token_budget (τ, Sarathi's chunk size; the paper's strict/relaxed-SLO settings are
512 and 2048, its §5), max_num_seqs, block_size (vLLM's 16 in the search), tp_degree. A
budget below max_num_seqs leaves a full batch of decodes no room for a prompt chunk:
infeasible. Encoder-decoder models are infeasible: a hybrid batch runs prompt chunks
through the decoder stack.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.policies.base import Context, KnobSpec, Plan, infeasible
from harness.policies.common import tp_degrees
from harness.policies.iteration import (
    ReplicaQueues,
    ReplicatedPolicy,
    paged_plan,
)
from harness.policies.vllm import context_window

TOKEN_BUDGET = 512        # τ: Sarathi-Serve's strict-SLO setting (OSDI'24 §5; vLLM v0's chunked-prefill default)
SEARCH_BUDGET = 2048      # τ: the paper's relaxed-SLO setting (OSDI'24 §5), the search's (search_space)


class Sarathi(ReplicatedPolicy):
    name = "sarathi"
    kind = "iteration"
    citation = "Agrawal et al., Sarathi-Serve, OSDI 2024"
    estimator = "discrete-event"
    iteration_level = True
    engine = "vllm"                 # Sarathi-Serve is built on vLLM
    search_resolution = "coarse"    # as vllm.py: the DES estimate's noise (~2%) exceeds the fine grid's steps

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        return [
            KnobSpec("token_budget", 256, 8192, 1, 0, 0, "τ"),
            KnobSpec("max_num_seqs", 1, 1024, 1, +1, +1, "max_num_seqs"),
            KnobSpec("block_size", 1, 256, 1, 0, 0, "block_size"),
            KnobSpec("tp_degree", 1, max(tp_degrees(ctx)), 1, 0, 0, "TP degree"),
        ]

    def default_knobs(self, ctx: Context) -> dict[str, int]:
        # vLLM's defaults (256 sequences, 16-token blocks) and the paper's strict-SLO budget
        return {"token_budget": TOKEN_BUDGET, "max_num_seqs": 256, "block_size": 16,
                "tp_degree": max(tp_degrees(ctx))}

    def search_space(self, ctx: Context) -> list[KnobSpec]:
        """max_num_seqs (an axis) per TP degree; token_budget at the paper's relaxed-SLO 2048
        (ExeGPT bounds end-to-end latency, not time between tokens, so large budgets serve it:
        enumerating 256..2048 found at most 1.2% more throughput on opt-13b/S and gpt3-39b/C1
        at the p10 and unbounded latencies, issue 17, for 4x the evaluations); block size at
        vLLM's default."""
        return [KnobSpec("token_budget", SEARCH_BUDGET, SEARCH_BUDGET, 1, 0, 0, "τ") if k.name == "token_budget"
                else k for k in self.knob_space(ctx) if k.name != "block_size"]

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        knobs = self.validate(ctx, knobs)
        budget, seqs = knobs["token_budget"], knobs["max_num_seqs"]
        err = ""
        if ctx.model.is_encoder_decoder:
            err = (f"model: {ctx.model.name} is encoder-decoder; Sarathi-Serve's hybrid batches "
                   "(prompt chunks beside the decodes) need a decoder-only model")
        elif budget < seqs:
            err = f"token_budget: {budget} below max_num_seqs {seqs}: no room for a prompt chunk"
        if err:
            return infeasible(self.name, knobs, err, self.kind)
        return paged_plan(self, ctx, knobs, budget, context_window(ctx))

    # -- the program -----------------------------------------------------------------------
    def run(self, plan: Plan, x) -> None:
        k = dict(plan.knobs)
        budget, seqs = k["token_budget"], k["max_num_seqs"]
        rq = ReplicaQueues(plan, x)
        blocks, reserve = rq.blocks, rq.reserve
        filling: list[dict[int, list[int]]] = [{} for _ in range(rq.reps)]   # request -> [prompt tokens, left]
        pending = [0] * rq.reps                   # blocks held by prompts being prefilled
        for t, r in rq.turns(busy=lambda r: filling[r]):
            g, q, bt, fill = rq.groups[r], rq.queues[r], rq.tables[r], filling[r]
            rq.preempt_for(r, x, pending[r])
            room = budget - len(bt.offset)         # decodes first: one token each (stall-free)
            ids, toks = [], []
            for i, st in fill.items():             # prompts in flight, oldest first
                if room <= 0:
                    break
                c = min(st[1], room)
                ids.append(i)
                toks.append(c)
                room -= c
            while room > 0 and q and len(bt.offset) + len(fill) < seqs:
                need = rq.tokens(q[0])
                used = bt.used + pending[r] + bt.needed()
                if used + bt.blocks(need) + (reserve if used else 0) > blocks:
                    break                          # alone, it always fits (the plan)
                i = q.popleft()
                rq.resume.pop(i, None)
                pending[r] += bt.blocks(need)
                c = min(need, room)
                fill[i] = [need, need]
                ids.append(i)
                toks.append(c)
                room -= c
            for i, c in zip(ids, toks, strict=True):
                fill[i][1] -= c
            t, finished = x.step(g, t, (ids, toks) if ids else None)
            bt.advance()
            for i in finished:
                bt.release(i)
            for i in ids:
                if not fill[i][1]:                 # prompt complete: joined, decodes from the next
                    need = fill.pop(i)[0]
                    pending[r] -= bt.blocks(need)
                    bt.admit(i, need)
            rq.lanes.push(t, r)
