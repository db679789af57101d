"""WAA: workload-aware allocation, separate encode and decode pipelines (ExeGPT §3).

The GPUs are split into an encoding and a decoding pipeline that run asynchronously; in
steady state one encoded batch of B_E queries joins the decoding batch per decoding
iteration, so B_D = B_E * S_D. The encoded KV cache moves encode GPUs -> host -> decode
GPUs. Decoder-only models keep two weight copies (one per pipeline). B_m decoder
micro-batches overlap in the decode pipeline. Partial TP applies to the decode pipeline
(`mode.waa_tp_side=decode`, ours); `either` (the paper's §4 "a subset of pipeline GPUs") adds
the knob `tp_side` (0: decode pipeline, 1: encode pipeline), searched like the TP degree.
- waa-c splits GPUs by compute time: ~N * C_E / (C_E + C_D) GPUs encode.
- waa-m splits so encode and decode GPUs use the same memory.
T5: the cross-K/V projection is charged on the encode pipeline where the cost model says the
runner does it there (`profiled`: the CPU runner's encode worker projects them and ships
them, `PipelineCosts.encode_projects_cross_kv`); under the GPU cost models it is not
modelled (one GEMM per query and decoder layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from harness.cost_model.memory import MemoryUse
from harness.policies import waa_timeline
from harness.policies.base import Context, KnobSpec, Plan, Policy, infeasible
from harness.policies.closed_form import kv_copy_fn, live_self_cache_len
from harness.policies.common import memory_check, stage_memory, tp_degrees
from harness.policies.pipeline import PipelineCosts, build_pipeline, distinct, stage_degrees

MAX_ENCODE_BATCH = 256
MAX_MICRO_BATCHES = 16


class _WAA(Policy):
    kind = "waa"
    citation = "ExeGPT (Oh et al., ASPLOS 2024) §3"
    runtime_adjustment = True

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        n = ctx.cluster.num_gpus
        return [
            KnobSpec("encode_batch_size", 1, MAX_ENCODE_BATCH, 1, +1, +1, "B_E"),
            # The paper reports B_m and T_P as monotone (latency and throughput fall as they
            # grow). Here micro-batches first fill the decode pipeline (throughput rises up to
            # the stage count) and TP often raises throughput: both are enumerated, not assumed.
            KnobSpec("micro_batches", 1, MAX_MICRO_BATCHES, 1, 0, 0, "B_m"),
            KnobSpec("tp_degree", 1, max(tp_degrees(ctx)), 1, 0, 0, "T_P degree"),
            KnobSpec("tp_gpus", 0, max(0, n - 1), 1, 0, 0, "T_P #GPUs"),
            *([KnobSpec("tp_side", 0, 1, 1, 0, 0, "T_P side")] if ctx.mode.waa_tp_side == "either" else []),
        ]

    def default_knobs(self, ctx: Context) -> dict[str, int]:
        side = {"tp_side": 0} if ctx.mode.waa_tp_side == "either" else {}
        return {"encode_batch_size": 4, "micro_batches": 1, "tp_degree": 1, "tp_gpus": 0, **side}

    def validate(self, ctx: Context, knobs: Mapping[str, int]) -> dict[str, int]:
        knobs = dict(knobs)
        if "tp_degree" in knobs and "tp_gpus" not in knobs:
            knobs["tp_gpus"] = int(knobs["tp_degree"]) if int(knobs["tp_degree"]) > 1 else 0
        return Policy.validate(self, ctx, knobs)

    # -- layout ---------------------------------------------------------------------------
    def _layout(self, ctx: Context, n_enc: int, d: int, g: int, side: int = 0):
        """Encode and decode pipelines; the TP group (degree d on g GPUs) sits in the decode
        pipeline (side 0) or the encode pipeline (side 1)."""
        m, n = ctx.model, ctx.cluster.num_gpus
        enc_layers = m.num_encoder_layers if m.is_encoder_decoder else 0
        enc_prefill = 0 if m.is_encoder_decoder else m.num_decoder_layers
        enc_deg = stage_degrees(n_enc, d, g) if side else [1] * n_enc
        dec_deg = [1] * (n - n_enc) if side else stage_degrees(n - n_enc, d, g)
        enc = build_pipeline(ctx.cost_model, m, enc_deg, enc_layers, enc_prefill)
        dec = build_pipeline(ctx.cost_model, m, dec_deg, 0, m.num_decoder_layers)
        return enc, dec

    @staticmethod
    def _stage_memory(ctx: Context, st, decode_side: bool, b_e: float, b_d: float) -> MemoryUse:
        """One GPU of stage `st`: encode side holds the prompt's activations (and, decoder-only,
        its KV until handed over); decode side the KV of B_D live sequences."""
        w, m = ctx.workload, ctx.model
        if decode_side:
            gen = b_d * live_self_cache_len(w, m)
            return stage_memory(ctx, st, gen, b_d * w.input.mean, b_d)
        prompt = b_e * w.input.mean
        return stage_memory(ctx, st, 0 if m.is_encoder_decoder else prompt, 0, prompt)

    def _memory(self, ctx: Context, enc, dec, b_e: float, b_d: float) -> tuple[float, float]:
        """Most loaded encode GPU and most loaded decode GPU, bytes."""
        return (max(self._stage_memory(ctx, st, False, b_e, b_d).total_bytes for st in distinct(enc)),
                max(self._stage_memory(ctx, st, True, b_e, b_d).total_bytes for st in distinct(dec)))

    def memory_groups(self, ctx: Context, plan: Plan) -> dict[str, list]:
        b_e = plan.encode_batch_size
        b_d = b_e * ctx.workload.output.mean          # B_D = B_E * S_D (§3), as `plan` sizes it
        return {side: [(st, self._stage_memory(ctx, st, side == "decode", b_e, b_d)) for st in stages]
                for side, stages in (("encode", plan.costs.encode_stages), ("decode", plan.costs.decode_stages))}

    def choose_encode_gpus(self, ctx: Context, b_e: int, d: int, g: int, side: int = 0) -> int:
        raise NotImplementedError

    def encode_gpus(self, ctx: Context, b_e: int, d: int, g: int, side: int = 0) -> int:
        """`choose_encode_gpus`, memoised: the plan and the search's regime both ask."""
        return _encode_gpus_cached(self, ctx, b_e, d, g, side)

    regime_knobs = ("encode_batch_size", "tp_degree", "tp_gpus", "tp_side")   # not B_m

    def regime(self, ctx: Context, knobs: Mapping[str, int]) -> int:
        """The number of encode GPUs: it moves with B_E (compute or memory balance), and
        throughput jumps where it does (OPT-13B/S/a40x4, TP 2: B_E 2 -> 21.9, 3 -> 19.9 seq/s)."""
        # The search passes every knob; anything else is validated (defaults filled) first.
        k = knobs if {"encode_batch_size", "tp_degree", "tp_gpus"} <= set(knobs) else self.validate(ctx, knobs)
        return self.encode_gpus(ctx, k["encode_batch_size"], k["tp_degree"], k["tp_gpus"], k.get("tp_side", 0))

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        knobs = self.validate(ctx, knobs)
        key = tuple(sorted(knobs.items()))
        n, w = ctx.cluster.num_gpus, ctx.workload
        d, g, b_e, b_m = knobs["tp_degree"], knobs["tp_gpus"], knobs["encode_batch_size"], knobs["micro_batches"]
        side = knobs.get("tp_side", 0)
        if n < 2:
            return infeasible(self.name, knobs, "cluster: WAA needs >= 2 GPUs (two pipelines)", self.kind)
        if d not in tp_degrees(ctx) or g % d or (d == 1 and g):
            return infeasible(self.name, knobs, f"tp: degree {d} on {g} GPUs; degrees {tp_degrees(ctx)}", self.kind)
        n_enc = self.encode_gpus(ctx, b_e, d, g, side)
        n_side = n_enc if side else n - n_enc
        if n_enc < 1 or n - n_enc < 1 or n_side < max(1, g):
            return infeasible(self.name, knobs, f"tp: {g} TP GPUs do not fit the {n_side}-GPU "
                              f"{'encode' if side else 'decode'} pipeline", self.kind)
        enc, dec = self._layout(ctx, n_enc, d, g, side)
        b_d = b_e * w.output.mean
        mem = max(self._memory(ctx, enc, dec, b_e, b_d))
        reason = memory_check(ctx, mem)
        costs = PipelineCosts(ctx.cost_model, ctx.model, enc, dec, decode_micro_batches=b_m, kv_senders=n_enc)
        # Out of memory: still priced (costs kept), so the search can bound a box's throughput.
        return Plan(self.name, self.kind, key, not reason, reason, b_e, 1, ctx.sla.latency_output_len(w),
                    max_decode_batch=int(b_d * 1.5) + 1, memory_per_gpu_bytes=mem,
                    num_stages=len(enc) + len(dec), costs=costs, mode=ctx.mode, program=self, engine=self.engine)

    def executor(self, plan: Plan) -> str:
        """One decoding iteration per call: the O(1) executor, unless the engine pays cache
        rewrites at joins and compactions (the CPU runner's profile), which the phase
        executor prices."""
        return "phase" if kv_copy_fn(plan.costs) is not None else "iteration"

    def weight_copies(self, ctx: Context, plan: Plan) -> int:
        """§3: a decoder-only model is held by both pipelines."""
        return 1 if ctx.model.is_encoder_decoder else 2

    def run(self, plan: Plan, x) -> None:
        """Asynchronous encode and decode pipelines (harness/policies/waa_timeline.py)."""
        waa_timeline.run(plan, x)

    def expected_timeline(self, plan: Plan, workload, worst: bool) -> tuple[float, float, float]:
        """Closed form of the two pipelines (§3, §6; harness/policies/waa_timeline.py)."""
        return waa_timeline.expected_timeline(plan, workload, worst)

    def worker_groups(self, plan: Plan) -> dict[str, tuple]:
        """The encode pipeline prefills and ships the KV caches to the decode pipeline (§3)."""
        return {"encode": tuple(plan.costs.encode_stages), "decode": tuple(plan.costs.decode_stages)}

    def runner_support(self, plan: Plan) -> str:
        enc = plan.costs.encode_stages
        if len(enc) != 1 or enc[0].tp_degree != 1:
            return (f"the runner's encode pipeline is one worker (it ships every decode rank its layers "
                    f"and heads); this plan encodes on {sum(s.tp_degree for s in enc)} GPUs")
        return ""


@lru_cache(maxsize=65536)
def _encode_gpus_cached(policy: _WAA, ctx: Context, b_e: int, d: int, g: int, side: int) -> int:
    return policy.choose_encode_gpus(ctx, b_e, d, g, side)


class WAACompute(_WAA):
    name = "waa-c"

    def choose_encode_gpus(self, ctx: Context, b_e: int, d: int, g: int, side: int = 0) -> int:
        """~ N * C_E / (C_E + C_D): whole-model encode time of B_E vs one decode iteration of B_D."""
        m, w, cm = ctx.model, ctx.workload, ctx.cost_model
        n = ctx.cluster.num_gpus
        layers_e = m.num_encoder_layers if m.is_encoder_decoder else m.num_decoder_layers
        c_e = layers_e * cm.encode_layer(m, b_e, w.input.mean, 1).total_s
        b_d = max(1, round(b_e * w.output.mean))
        own = max(1.0, live_self_cache_len(w, m))
        c_d = m.num_decoder_layers * cm.decode_layer(m, b_d, own, 1, w.input.mean).total_s
        return min(n - 1, max(1, round(n * c_e / (c_e + c_d))))


class WAAMemory(_WAA):
    name = "waa-m"

    def choose_encode_gpus(self, ctx: Context, b_e: int, d: int, g: int, side: int = 0) -> int:
        """The split whose encode and decode GPUs use the most equal memory (the fewest encode
        GPUs on ties). Memory is linear in B_E per stage (B_D = B_E * S_D), so each split's
        stages are priced once as lines and every B_E reuses them."""
        n = ctx.cluster.num_gpus
        best, best_gap = 1, float("inf")
        splits = range(max(1, g), n) if side else range(1, n - max(1, g) + 1)
        for n_enc in splits:
            enc_lines, dec_lines = _memory_lines(self, ctx, n_enc, d, g, side)
            gap = abs(max(a + k * b_e for a, k in enc_lines) - max(a + k * b_e for a, k in dec_lines))
            if gap < best_gap:
                best, best_gap = n_enc, gap
        return best


@lru_cache(maxsize=16384)
def _memory_lines(policy: _WAA, ctx: Context, n_enc: int, d: int, g: int, side: int):
    """Per distinct stage, (bytes at B_E = 0, bytes per unit of B_E) on the encode and the
    decode side of a split: `_memory` is linear in B_E stage by stage."""
    enc, dec = policy._layout(ctx, n_enc, d, g, side)
    s_d = ctx.workload.output.mean
    sides = []
    for stages, decode_side in ((enc, False), (dec, True)):
        lines = []
        for st in distinct(stages):
            m0 = policy._stage_memory(ctx, st, decode_side, 0.0, 0.0).total_bytes
            lines.append((m0, policy._stage_memory(ctx, st, decode_side, 1.0, s_d).total_bytes - m0))
        sides.append(tuple(lines))
    return tuple(sides)
