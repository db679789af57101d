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

from collections import deque
from collections.abc import Mapping

import numpy as np

from harness.cost_model.engines import with_engine
from harness.policies.base import Context, KnobSpec, Plan, Policy, infeasible
from harness.policies.common import tp_degrees
from harness.policies.iteration import (
    BlockTable,
    Lanes,
    costs,
    layout_error,
    min_pipeline,
    replica,
    replica_groups,
    replica_runner_support,
)

CONTEXT_WINDOW = 2048      # tokens: OPT/GPT-3 max_position_embeddings (OPT stores 2 offset rows); T5 has no limit
WATERMARK = 0.01           # vLLM's block-manager watermark: free blocks kept back from prefills
BLOCK_SIZE = 16            # tokens per KV block: vLLM's default


def context_window(ctx: Context) -> int:
    return CONTEXT_WINDOW


class VLLM(Policy):
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
        key = tuple(sorted(knobs.items()))
        w = ctx.workload
        tp, budget, bs = knobs["tp_degree"], knobs["max_num_batched_tokens"], knobs["block_size"]
        err = layout_error(ctx, tp, 1)
        if not err and budget < w.input.max:
            err = (f"max_num_batched_tokens: {budget} is below the longest prompt ({w.input.max} tokens); "
                   "without chunked prefill a prompt is prefilled whole")
        if not err and context_window(ctx) % bs:
            err = f"block_size: {bs} does not divide the {context_window(ctx)}-token context window"
        pp = 0 if err else min_pipeline(ctx, tp, budget)
        if not err and not pp:
            err = f"memory: no pipeline of TP {tp} fits the weights and a {budget}-token prefill"
        if err:
            return infeasible(self.name, knobs, err, self.kind)
        rep = replica(ctx, tp, pp, budget)
        blocks = rep.kv_tokens // bs
        longest = -(-(w.input.max + w.output.max) // bs)
        if blocks < longest:
            return infeasible(self.name, knobs, f"memory: {blocks} KV blocks per replica hold less than the "
                              f"longest request ({longest} blocks)", self.kind)
        return Plan(self.name, self.kind, key, True, "", knobs["max_num_seqs"], 1, ctx.sla.latency_output_len(w),
                    max_decode_batch=knobs["max_num_seqs"], memory_per_gpu_bytes=rep.memory_per_gpu_bytes,
                    num_stages=pp, costs=costs(ctx, rep.stages, with_engine(ctx.cost_model, self.engine)),
                    mode=ctx.mode, program=self, engine=self.engine,
                    derived=(("replicas", rep.count), ("num_blocks", blocks), ("pp_degree", pp)))

    # -- the program -----------------------------------------------------------------------
    def run(self, plan: Plan, x) -> None:
        k, d = dict(plan.knobs), dict(plan.derived)
        seqs, budget, bs = k["max_num_seqs"], k["max_num_batched_tokens"], k["block_size"]
        reps, blocks = int(d["replicas"]), int(d["num_blocks"])
        inp, arr, n = x.reqs.input_len.tolist(), x.reqs.arrival_s.tolist(), len(x.reqs)
        groups = ["all"] if reps == 1 else [f"r{r}" for r in range(reps)]
        queues = [deque() for _ in range(reps)]
        tables = [BlockTable(blocks, bs) for _ in range(reps)]
        nxt = list(range(reps))                   # next new request of each replica (round-robin)
        resume: dict[int, int] = {}               # preempted request -> tokens to recompute
        reserve = int(WATERMARK * blocks)
        lanes = Lanes(reps)
        while lanes:
            t, r = lanes.pop()
            g, q, bt = groups[r], queues[r], tables[r]
            while nxt[r] < n and arr[nxt[r]] <= t:
                q.append(nxt[r])
                nxt[r] += reps
            if not bt.offset and not q:
                if nxt[r] < n:
                    lanes.push(arr[nxt[r]], r)     # idle until its next arrival
                continue
            batch, tokens = [], 0
            while q and len(bt.offset) < seqs:
                need = resume.get(q[0], inp[q[0]])
                if tokens + need > budget or not bt.fits(need, reserve if bt.offset else 0):
                    break
                i = q.popleft()
                bt.admit(i, need)
                batch.append(i)
                tokens += need
            if batch:
                for i in batch:
                    resume.pop(i, None)
                lanes.push(x.prefill(g, np.asarray(batch), t), r)
                continue
            while bt.used + bt.needed() > blocks and len(bt.offset) > 1:
                v = bt.newest()
                resume[v] = bt.release(v)
                x.preempt(g, [v])
                q.appendleft(v)
            t, finished = x.step(g, t)
            bt.advance()
            for i in finished:
                bt.release(i)
            lanes.push(t, r)

    def worker_groups(self, plan: Plan) -> dict[str, tuple]:
        return replica_groups(plan)

    def runner_support(self, plan: Plan) -> str:
        return replica_runner_support(plan)
