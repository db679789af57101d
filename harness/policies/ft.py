"""FasterTransformer static batching (ExeGPT §1, §7 baseline).

A batch of B queries is fixed at the start and runs until its longest query ends: finished
queries keep their slots (no early termination), the KV cache is reserved for the maximum
input + output length (`ft_baseline.kv_reservation=max`; `p99`: the p99 lengths), prompts are padded to the longest in the batch. TP is maximal inside
a node and PP spans nodes (a100x16 -> TP 8 x PP 2). Latency is held to the maximum output.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.cost_model.memory import MemoryUse
from harness.policies.base import Context, KnobSpec, Plan, Policy, infeasible
from harness.policies.closed_form import expected_max
from harness.policies.common import memory_check, stage_memory, tp_degrees
from harness.policies.pipeline import PipelineCosts, Stage, build_pipeline, distinct

MAX_BATCH = 1024   # search range cap; memory decides feasibility below it


class FasterTransformer(Policy):
    name = "ft"
    kind = "static"
    citation = "FasterTransformer (NVIDIA); ExeGPT §7 baseline"

    def layout(self, ctx: Context) -> tuple[int, int]:
        tp = max(tp_degrees(ctx))
        return tp, ctx.cluster.num_gpus // tp

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        return [KnobSpec("batch_size", 1, MAX_BATCH, 1, throughput_dir=+1, latency_dir=+1, symbol="B")]

    @staticmethod
    def _memory(ctx: Context, stages, b: int, pp: int) -> list[tuple[Stage, MemoryUse]]:
        """One GPU of each stage: the KV cache reserved for B queries of the maximum input +
        output (`ft_baseline.kv_reservation=p99`: p99 lengths), prompts padded to the maximum."""
        m, w = ctx.model, ctx.workload
        max_in, max_out = w.input.max, w.output.max
        kv_in, kv_out = (max_in, max_out) if ctx.ft.kv_reservation == "max" else (w.input.p99, w.output_p99)
        kv_tokens = b * (kv_out + (0 if m.is_encoder_decoder else kv_in))
        return [(st, stage_memory(ctx, st, kv_tokens, b * max_in, b * max_in / pp)) for st in stages]

    def memory_groups(self, ctx: Context, plan: Plan) -> dict[str, list]:
        stages = plan.costs.decode_stages
        return {"all": self._memory(ctx, stages, plan.encode_batch_size, len(stages))}

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        knobs = self.validate(ctx, knobs)
        b = knobs["batch_size"]
        tp, pp = self.layout(ctx)
        m, w = ctx.model, ctx.workload
        if m.num_layers % pp and m.num_decoder_layers % pp:
            return infeasible(self.name, knobs, f"layers: {m.num_decoder_layers} not divisible by pp={pp}")
        stages = build_pipeline(ctx.cost_model, m, [tp] * pp, m.num_encoder_layers, m.num_decoder_layers)
        mem = max(sm.total_bytes for _, sm in self._memory(ctx, distinct(stages), b, pp))
        reason = memory_check(ctx, mem)
        key = tuple(sorted(knobs.items()))
        if reason:
            return Plan(self.name, self.kind, key, False, reason, b, memory_per_gpu_bytes=mem)
        costs = PipelineCosts(ctx.cost_model, m, stages, stages, decode_micro_batches=pp)
        return Plan(self.name, self.kind, key, True, "", b, decode_iters=0,
                    latency_output_len=w.output.max, max_decode_batch=b, memory_per_gpu_bytes=mem,
                    num_stages=pp, costs=costs, mode=ctx.mode, program=self, engine=self.engine)

    # -- the program -----------------------------------------------------------------------
    def run(self, plan: Plan, x) -> None:
        """Batches of B in arrival order, each started when the previous one has ended and all
        its requests have arrived; prompts padded to the batch's longest; the batch decodes
        until its longest output, no early termination (B stays constant)."""
        b, n, t = plan.encode_batch_size, len(x.reqs), 0.0
        for lo in range(0, n, b):
            hi = min(lo + b, n)
            start = max(t, float(x.reqs.arrival_s[hi - 1]))
            t = x.prefill("all", (lo, hi), start, pad=True)
            t = x.decode("all", t, hold=True)

    def expected_timeline(self, plan: Plan, workload, worst: bool) -> tuple[float, float, float]:
        """(throughput, latency, B_D): the batch runs until its longest query ends (expected
        maximum of B draws); latency is held to the maximum output length (§5); `worst`:
        prompts padded to the longest input."""
        c, b_e, s_lat = plan.costs, plan.encode_batch_size, plan.latency_output_len
        in_pad = expected_max(workload.input, b_e)
        out_batch = expected_max(workload.output, b_e)
        enc = c.encode_s(b_e, in_pad)
        batch_s = enc + out_batch * c.decode_iter_s(b_e, in_pad + out_batch / 2, in_pad)
        lat_pad = float(workload.input.max) if worst else in_pad
        lat_enc = c.encode_s(b_e, lat_pad) if worst else enc
        latency = lat_enc + s_lat * c.decode_iter_s(b_e, lat_pad + s_lat / 2, lat_pad)
        return b_e / batch_s, latency, float(b_e)
