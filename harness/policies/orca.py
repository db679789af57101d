"""ORCA: iteration-level scheduling (Yu et al., "Orca: A Distributed Serving System for
Transformer-Based Generative Models", OSDI 2022), as ExeGPT emulated it (§7: "ORCA
(emulated with vLLM iteration-level scheduling)"; §1: "ORCA-style iteration-level scheduling
injects costly encodings into decoding iterations").

Every iteration, per replica: the live batch decodes one token and, if a request waits, a
sequence slot is free (`max_num_seqs`) and the KV blocks admit its whole prompt (less vLLM's
1% watermark while others run), the oldest waiting request prefills its whole prompt in the
same forward (one mixed step, `Executor.step` with one chunk: ORCA's selective batching
runs the prompt's attention apart and fuses the rest). At most one prompt per iteration,
so a burst of arrivals is encoded one prompt per decoding iteration (the §1 cost). Finished
requests leave at once (early termination: Orca's iteration-level scheduling) and free
their blocks. KV is paged with vLLM's block manager (the emulation's substrate); when the
next token of some request needs a block and none is free, the most recently admitted
request is preempted by recompute (as `harness/policies/vllm.py`). Layout as vLLM: TP
inside a node (knob), the fewest pipeline stages that fit the weights and the largest
forward (the longest prompt beside `max_num_seqs` decodes), data-parallel replicas on the
other GPUs.
Knobs: max_num_seqs (the batch cap: Orca's max batch size), block_size (vLLM's 16 in the
search), tp_degree. Priced by the `vllm` engine (the emulation runs vLLM's kernels).
Encoder-decoder models are infeasible: a mixed step runs a prompt through the decoder stack.
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


class Orca(ReplicatedPolicy):
    name = "orca"
    kind = "iteration"
    citation = "Yu et al., Orca, OSDI 2022 (emulated on vLLM as in ExeGPT §7)"
    estimator = "discrete-event"
    iteration_level = True
    engine = "vllm"                 # ExeGPT §7 emulated ORCA with vLLM
    search_resolution = "coarse"    # as vllm.py: the DES estimate's noise (~2%) exceeds the fine grid's steps

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        return [
            KnobSpec("max_num_seqs", 1, 1024, 1, +1, +1, "max_num_seqs"),
            KnobSpec("block_size", 1, 256, 1, 0, 0, "block_size"),
            KnobSpec("tp_degree", 1, max(tp_degrees(ctx)), 1, 0, 0, "TP degree"),
        ]

    def default_knobs(self, ctx: Context) -> dict[str, int]:
        # vLLM's defaults (the emulation's substrate): 256 sequences, 16-token blocks
        return {"max_num_seqs": 256, "block_size": 16, "tp_degree": max(tp_degrees(ctx))}

    def search_space(self, ctx: Context) -> list[KnobSpec]:
        """max_num_seqs (an axis) per TP degree; block size at vLLM's default."""
        return [k for k in self.knob_space(ctx) if k.name != "block_size"]

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        knobs = self.validate(ctx, knobs)
        if ctx.model.is_encoder_decoder:
            return infeasible(self.name, knobs, f"model: {ctx.model.name} is encoder-decoder; ORCA's mixed "
                              "iterations (a prompt beside the decodes) need a decoder-only model", self.kind)
        # the largest forward: the longest prompt beside a full batch of decodes
        forward = ctx.workload.input.max + knobs["max_num_seqs"]
        return paged_plan(self, ctx, knobs, forward, context_window(ctx))

    # -- the program -----------------------------------------------------------------------
    def run(self, plan: Plan, x) -> None:
        seqs = dict(plan.knobs)["max_num_seqs"]
        rq = ReplicaQueues(plan, x)
        for t, r in rq.turns():
            g, q, bt = rq.groups[r], rq.queues[r], rq.tables[r]
            rq.preempt_for(r, x)
            new, need = -1, 0
            if q and len(bt.offset) < seqs:
                need = rq.tokens(q[0])
                # its blocks beside this iteration's new decode blocks; alone, it always fits (plan)
                if bt.fits(need, bt.needed() + (rq.reserve if bt.offset else 0)):
                    new = q.popleft()
                    rq.resume.pop(new, None)
            chunk = ([new], [need]) if new >= 0 else None
            t, finished = x.step(g, t, chunk)
            bt.advance()
            for i in finished:
                bt.release(i)
            if new >= 0:
                bt.admit(new, need)                # joined after the step: decodes from the next
            rq.lanes.push(t, r)
