"""vLLM: continuous batching with paged KV memory (Kwon et al., "Efficient Memory Management
for Large Language Model Serving with PagedAttention", SOSP 2023; the v0 scheduler).

Every iteration, per replica: if requests wait and memory admits them, the iteration
prefills as many whole prompts as fit `max_num_batched_tokens`, `max_num_seqs` and the free
KV blocks (less a 1% watermark), oldest first; decoding stalls for it (prefill-prioritising,
no chunking). Otherwise the live batch decodes one token; when the next token of some
request needs a block and none is free, the most recently admitted request is preempted
(recompute: its KV freed, it goes back to the head of the queue and later prefills its
prompt plus the tokens it had generated). Finished requests free their blocks at once.
Layout: TP inside a node (knob), the fewest pipeline stages that fit the weights, and
data-parallel replicas on the remaining GPUs, requests dealt round-robin.
Knobs: max_num_seqs (the decoding batch cap), max_num_batched_tokens (the prefill token
budget; below the longest prompt the plan is infeasible: without chunked prefill a prompt
is prefilled whole), block_size (must divide the model's context window; the search keeps
vLLM's default 16), tp_degree. Priced by the `vllm` engine (harness/cost_model/engines.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.policies.base import Context, KnobSpec, Plan
from harness.policies.common import tp_degrees
from harness.policies.iteration import (
    BLOCK_SIZE,
    ReplicaQueues,
    ReplicatedPolicy,
    paged_plan,
)

CONTEXT_WINDOW = 2048      # tokens: OPT/GPT-3 max_position_embeddings (OPT stores 2 offset rows); T5 has no limit


def context_window(ctx: Context) -> int:
    return CONTEXT_WINDOW


class VLLM(ReplicatedPolicy):
    name = "vllm"
    kind = "iteration"
    citation = "Kwon et al., PagedAttention / vLLM, SOSP 2023"
    estimator = "discrete-event"
    iteration_level = True
    engine = "vllm"

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        return [
            KnobSpec("max_num_seqs", 1, 1024, 1, +1, +1, "max_num_seqs"),
            KnobSpec("max_num_batched_tokens", 512, 16384, 1, 0, 0, "max_num_batched_tokens"),
            KnobSpec("block_size", 1, 256, 1, 0, 0, "block_size"),
            KnobSpec("tp_degree", 1, max(tp_degrees(ctx)), 1, 0, 0, "TP degree"),
        ]

    def default_knobs(self, ctx: Context) -> dict[str, int]:
        # vLLM's defaults: 256 sequences, 16-token blocks, a prefill budget of
        # max(max_model_len, 2048) tokens (here: the longest prompt, at least 2048)
        return {"max_num_seqs": 256, "max_num_batched_tokens": max(2048, ctx.workload.input.max),
                "block_size": BLOCK_SIZE, "tp_degree": max(tp_degrees(ctx))}

    search_resolution = "coarse"   # the DES estimate's sampling noise (~2%) exceeds the fine grid's steps

    def search_space(self, ctx: Context) -> list[KnobSpec]:
        """max_num_seqs (an axis) per TP degree; block size and prefill budget at vLLM's defaults."""
        return [k for k in self.knob_space(ctx) if k.name not in ("block_size", "max_num_batched_tokens")]

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        knobs = self.validate(ctx, knobs)
        budget, longest = knobs["max_num_batched_tokens"], ctx.workload.input.max
        err = "" if budget >= longest else (
            f"max_num_batched_tokens: {budget} is below the longest prompt ({longest} tokens); "
            "without chunked prefill a prompt is prefilled whole")
        return paged_plan(self, ctx, knobs, budget, context_window(ctx), err)

    # -- the program -----------------------------------------------------------------------
    def run(self, plan: Plan, x) -> None:
        k = dict(plan.knobs)
        seqs, budget = k["max_num_seqs"], k["max_num_batched_tokens"]
        rq = ReplicaQueues(plan, x)
        for t, r in rq.turns():
            g, q, bt = rq.groups[r], rq.queues[r], rq.tables[r]
            batch, tokens = [], 0
            while q and len(bt.offset) < seqs:
                need = rq.tokens(q[0])
                if tokens + need > budget or not bt.fits(need, rq.reserve if bt.offset else 0):
                    break
                i = q.popleft()
                bt.admit(i, need)
                batch.append(i)
                tokens += need
            if batch:
                for i in batch:
                    rq.resume.pop(i, None)
                rq.lanes.push(x.prefill(g, batch, t), r)
                continue
            rq.preempt_for(r, x)
            t, finished = x.step(g, t)
            bt.advance()
            for i in finished:
                bt.release(i)
            rq.lanes.push(t, r)
