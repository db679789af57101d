"""DeepSpeed-Inference static batching with its hybrid pipeline schedule (Aminabadi et al.,
"DeepSpeed-Inference: Enabling Efficient Inference of Transformer Models at Unprecedented
Scale", SC 2022, §IV-B "inference-optimized pipeline parallelism").

The batch is static as in FasterTransformer (ft.py): B queries fixed at the start, prompts
padded to the longest, finished queries keep their slots until the longest ends (no early
termination); the program and the closed form are FT's (inherited). What differs is the
layout and the schedule:
- TP of `tp_degree` inside a node, PP = GPUs / TP stages across the rest (DSI combines both);
- hybrid scheduling (§IV-B): the prompt phase runs in `prefill_micro_batches` micro-batches
  (many: they fill the pipeline, the prompt's GEMMs are large enough to stay efficient) and
  token generation in `decode_micro_batches` (fewer, larger: every micro-batch reads every
  stage's weights once per token, so fewer of them amortise the weight reads). Both counts
  are priced by `PipelineCosts` (`encode_micro_batches`, `decode_micro_batches`): a phase of
  m micro-batches through stage times t_i advances in max(m max t_i, sum t_i) (ExeGPT §3).
Memory: DeepSpeed-Inference allocates its KV workspace up front for the maximum tokens
(`max_out_tokens`), so the cache is reserved for B queries of the maximum input + output
(unlike FT's `ft_baseline.kv_reservation`, which this policy does not read); activations are
one prompt micro-batch's. Layers need not divide PP (DeepSpeed partitions unevenly; memory
rounds a stage's layers up). Kernels: DeepSpeed-Inference's fused transformer kernels
(§III: fused GEMM/attention/bias kernels, a preallocated contiguous KV cache) are the FT class
the analytic model is fitted to, so `engine = "ft"` (harness/cost_model/engines.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.cost_model.memory import MemoryUse
from harness.policies.base import Context, KnobSpec, Plan, infeasible
from harness.policies.common import memory_check, stage_memory, tp_degrees
from harness.policies.ft import MAX_BATCH, FasterTransformer
from harness.policies.pipeline import PipelineCosts, Stage, build_pipeline, distinct

MAX_MICRO_BATCHES = 16   # search range cap, as waa.MAX_MICRO_BATCHES; a batch of B uses min(B, m)


class DeepSpeedInference(FasterTransformer):
    name = "dsi"
    kind = "static"
    citation = "Aminabadi et al., DeepSpeed-Inference, SC 2022 (§IV-B hybrid pipeline schedule)"
    engine = "ft"

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        return [
            KnobSpec("batch_size", 1, MAX_BATCH, 1, throughput_dir=+1, latency_dir=+1, symbol="B"),
            # not monotone: more micro-batches fill the pipeline but shrink each GEMM
            KnobSpec("prefill_micro_batches", 1, MAX_MICRO_BATCHES, 1, 0, 0, "prompt micro-batches"),
            KnobSpec("decode_micro_batches", 1, MAX_MICRO_BATCHES, 1, 0, 0, "token micro-batches"),
            KnobSpec("tp_degree", 1, max(tp_degrees(ctx)), 1, 0, 0, "TP degree"),
        ]

    def default_knobs(self, ctx: Context) -> dict[str, int]:
        # Ours: TP maximal inside a node (as FT), token micro-batches = PP (the fewest that keep
        # every stage busy), prompt micro-batches twice that (DSI: more for the prompt).
        tp = max(tp_degrees(ctx))
        pp = max(1, ctx.cluster.num_gpus // tp)
        return {"batch_size": 16, "prefill_micro_batches": min(MAX_MICRO_BATCHES, 2 * pp),
                "decode_micro_batches": min(MAX_MICRO_BATCHES, pp), "tp_degree": tp}

    def layout_of(self, ctx: Context, tp: int) -> tuple[int, str]:
        """(PP, "") for TP `tp`, or (0, why not)."""
        n = ctx.cluster.num_gpus
        if tp not in tp_degrees(ctx):
            return 0, f"tp_degree: {tp} not one of {tp_degrees(ctx)} (divides heads and FFN, inside a node)"
        if n % tp:
            return 0, f"tp_degree: {tp} does not divide the {n} GPUs"
        pp = n // tp
        if ctx.model.num_decoder_layers < pp:
            return 0, f"layout: {ctx.model.num_decoder_layers} decoder layers cannot fill {pp} stages"
        return pp, ""

    @staticmethod
    def _dsi_memory(ctx: Context, stages, b: int, prefill_mb: int) -> list[tuple[Stage, MemoryUse]]:
        """One GPU of each stage: KV reserved for B queries of the maximum input + output
        (module docstring), one prompt micro-batch's activations (ceil(B / m) padded prompts)."""
        m, w = ctx.model, ctx.workload
        max_in, max_out = w.input.max, w.output.max
        kv_tokens = b * (max_out + (0 if m.is_encoder_decoder else max_in))
        micro = -(-b // max(1, min(b, prefill_mb)))
        return [(st, stage_memory(ctx, st, kv_tokens, b * max_in, micro * max_in)) for st in stages]

    def memory_groups(self, ctx: Context, plan: Plan) -> dict[str, list]:
        stages = plan.costs.decode_stages
        return {"all": self._dsi_memory(ctx, stages, plan.encode_batch_size, plan.costs.encode_micro_batches)}

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        knobs = self.validate(ctx, knobs)
        b, tp = knobs["batch_size"], knobs["tp_degree"]
        m_p, m_d = knobs["prefill_micro_batches"], knobs["decode_micro_batches"]
        pp, err = self.layout_of(ctx, tp)
        if err:
            return infeasible(self.name, knobs, err)
        m, w = ctx.model, ctx.workload
        stages = build_pipeline(ctx.cost_model, m, [tp] * pp, m.num_encoder_layers, m.num_decoder_layers)
        mem = max(sm.total_bytes for _, sm in self._dsi_memory(ctx, distinct(stages), b, m_p))
        key = tuple(sorted(knobs.items()))
        costs = PipelineCosts(ctx.cost_model, m, stages, stages, decode_micro_batches=m_d,
                              encode_micro_batches=m_p)
        reason = memory_check(ctx, mem)
        if reason:   # priced anyway: the search's relaxed bound (expected.evaluate)
            return Plan(self.name, self.kind, key, False, reason, b, decode_iters=0,
                        latency_output_len=w.output.max, max_decode_batch=b, memory_per_gpu_bytes=mem,
                        num_stages=pp, costs=costs, mode=ctx.mode, program=self, engine=self.engine)
        return Plan(self.name, self.kind, key, True, "", b, decode_iters=0,
                    latency_output_len=w.output.max, max_decode_batch=b, memory_per_gpu_bytes=mem,
                    num_stages=pp, costs=costs, mode=ctx.mode, program=self, engine=self.engine,
                    derived=(("pp_degree", pp),))

    # `run` (static batches in arrival order, padded, held to the longest output) and
    # `expected_timeline` (encode_s at the prompt micro-batches + E[max output] x decode_iter_s
    # at the token micro-batches; latency held to the maximum output, ExeGPT §5) are FT's.
