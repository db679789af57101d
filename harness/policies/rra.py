"""RRA: round-robin layer allocation with alternating encode/decode phases (ExeGPT §3).

Every pipeline stage holds its share of encoder and decoder layers (decoder-only: of the one
stack). Each cycle encodes B_E queries, then runs N_D decoding iterations on the decoding
batch B_D; finished queries leave early (KV compaction) and the next encoded batch joins, so
B_D stays near its steady state (§6): the length-biased B_E * E[S] / N_D (`mode.rra_decode_batch=
steady-state`, ours) or the paper's B_E / sum_U P_D(U) (`finish-fraction`); see
harness/simulator/expected.py. Partial TP (degree, #GPUs) shortens the pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from harness.cost_model.memory import MemoryUse
from harness.policies.base import Context, KnobSpec, Plan, Policy, infeasible
from harness.policies.closed_form import (
    live_context_len,
    live_self_cache_len,
    rra_decode_batches,
    rra_phase_s,
)
from harness.policies.common import memory_check, stage_memory, tp_degrees
from harness.policies.pipeline import PipelineCosts, Stage, build_pipeline, distinct, stage_degrees

MAX_ENCODE_BATCH = 512


class RoundRobin(Policy):
    name = "rra"
    kind = "rra"
    citation = "ExeGPT (Oh et al., ASPLOS 2024) §3"
    runtime_adjustment = True

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        degrees = tp_degrees(ctx)
        n = ctx.cluster.num_gpus
        return [
            KnobSpec("encode_batch_size", 1, MAX_ENCODE_BATCH, 1, +1, +1, "B_E"),
            KnobSpec("decode_iters", 1, ctx.workload.output.max, 1, -1, -1, "N_D"),
            KnobSpec("tp_degree", 1, max(degrees), 1, 0, 0, "T_P degree"),
            # The paper treats T_P as monotone (latency and throughput fall); in this cost model
            # more TP often raises throughput too, so T_P is enumerated, not assumed monotone.
            KnobSpec("tp_gpus", 0, n, 1, 0, 0, "T_P #GPUs"),
        ]

    def default_knobs(self, ctx: Context) -> dict[str, int]:
        return {"encode_batch_size": 8, "decode_iters": 8, "tp_degree": 1, "tp_gpus": 0}

    def validate(self, ctx: Context, knobs: Mapping[str, int]) -> dict[str, int]:
        knobs = dict(knobs)
        if "tp_degree" in knobs and "tp_gpus" not in knobs:
            knobs["tp_gpus"] = ctx.cluster.num_gpus if int(knobs["tp_degree"]) > 1 else 0
        return Policy.validate(self, ctx, knobs)

    @staticmethod
    def _memory(ctx: Context, stages, b_e: int, b_d: float, n_stages: int) -> list[tuple[Stage, MemoryUse]]:
        """One GPU of each stage: the KV of the peak decoding batch B_D, its share of the
        encoded prompts' activations."""
        w, m = ctx.workload, ctx.model
        kv_tokens = b_d * live_self_cache_len(w, m)
        return [(st, stage_memory(ctx, st, kv_tokens, b_d * w.input.mean, max(b_e * w.input.mean, b_d) / n_stages))
                for st in stages]

    def memory_groups(self, ctx: Context, plan: Plan) -> dict[str, list]:
        stages = plan.costs.decode_stages
        b_d = rra_decode_batches(plan.encode_batch_size, ctx.workload.output, plan.decode_iters, ctx.mode)[0]
        return {"all": self._memory(ctx, stages, plan.encode_batch_size, b_d, len(stages))}

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        knobs = self.validate(ctx, knobs)
        key = tuple(sorted(knobs.items()))
        m, w = ctx.model, ctx.workload
        d, g = knobs["tp_degree"], knobs["tp_gpus"]
        if d not in tp_degrees(ctx) or g % d or (d == 1 and g):
            return infeasible(self.name, knobs, f"tp: degree {d} on {g} GPUs; degrees {tp_degrees(ctx)}, "
                              "#GPUs a multiple of the degree", self.kind)
        degrees = stage_degrees(ctx.cluster.num_gpus, d, g)
        stages = build_pipeline(ctx.cost_model, m, degrees, m.num_encoder_layers, m.num_decoder_layers)
        b_e = knobs["encode_batch_size"]
        b_d = rra_decode_batches(b_e, w.output, knobs["decode_iters"], ctx.mode)[0]   # peak: memory
        mem = max(sm.total_bytes for _, sm in self._memory(ctx, distinct(stages), b_e, b_d, len(stages)))
        reason = memory_check(ctx, mem)
        costs = PipelineCosts(ctx.cost_model, m, stages, stages, decode_micro_batches=len(stages))
        # Out of memory: still priced (costs kept), so the search can bound a box's throughput.
        return Plan(self.name, self.kind, key, not reason, reason, b_e, knobs["decode_iters"],
                    ctx.sla.latency_output_len(w),
                    max_decode_batch=int(b_d * 1.5) + 1, memory_per_gpu_bytes=mem,
                    num_stages=len(stages), costs=costs, mode=ctx.mode, program=self, engine=self.engine)

    # -- the program -----------------------------------------------------------------------
    def run(self, plan: Plan, x) -> None:
        """Cycles of one encoding of up to B_E waiting requests, then N_D decoding iterations
        (finished queries leave at once: early termination + KV compaction), then the
        pipeline drain. With runtime adjustment (§3) `x.adjuster` sizes each encoding from
        the mean decoding batch of the last phase."""
        reqs, n = x.reqs, len(x.reqs)
        cap, adj = plan.max_decode_batch or math.inf, x.adjuster
        nxt, t, phase_mean = 0, 0.0, 0.0
        while nxt < n or x.live("all"):
            arrived, live = x.arrived(t), x.live("all")
            if not live and arrived <= nxt:           # idle: wait for the next arrival
                t = float(reqs.arrival_s[nxt])
                continue
            if adj is None:
                m = int(max(0, min(plan.encode_batch_size, arrived - nxt, cap - live)))
            else:
                adj.observe(phase_mean)
                room = int(max(0, min(arrived - nxt, cap - live)))
                m = adj.size(reqs.input_len[nxt:nxt + room], room)
            if m:
                t = x.prefill("all", (nxt, nxt + m), t)
                nxt += m
            t = x.decode("all", t, plan.decode_iters)
            phase_mean = x.last_mean_batch("all")
            t = x.drain("all", t)

    def expected_timeline(self, plan: Plan, workload, worst: bool) -> tuple[float, float, float]:
        """(throughput, latency, B_D) of the encode / N_D-iteration / drain cycle (§6). The
        p99-length query is live in every iteration of its phases: charged the iteration
        time at the mean batch of a live query's iterations, or, `worst`, at the phase-start
        batch."""
        c, b_e, s_lat, inp = plan.costs, plan.encode_batch_size, plan.latency_output_len, workload.input.mean
        peak, b_d = rra_decode_batches(b_e, workload.output, plan.decode_iters, plan.mode)
        ctx, n_d = live_context_len(workload), plan.decode_iters
        enc = c.encode_s(b_e, inp)
        phase = rra_phase_s(c, b_e, workload.output, n_d, ctx, inp, plan.mode)
        drain = c.decode_drain_s(max(1, round(b_d)), ctx, inp)
        it = c.decode_iter_s(max(1, round(peak if worst else b_d)), ctx, inp)
        cycles = math.ceil(s_lat / n_d)
        return b_e / (enc + phase + drain), cycles * enc + (cycles - 1) * drain + s_lat * it, b_d
