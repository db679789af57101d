"""DistServe: disaggregated prefill and decoding (Zhong et al., "DistServe: Disaggregating
Prefill and Decoding for Goodput-optimized LLM Serving", OSDI 2024; Splitwise, Patel et al.,
ISCA 2024, is the same idea).

The GPUs are split into a prefill pool (`prefill_gpus`) and a decode pool (the rest); each
pool runs instances of its own TP (knob) x PP (the fewest stages that fit, as vllm.py), so
a pool has `pool GPUs // (TP x PP)` instances (leftover GPUs idle).
- Prefill instances (DistServe §4.3): one FCFS queue in arrival order; a free instance
  prefills the oldest waiting prompts, whole, up to `prefill_token_budget` tokens (at least
  one prompt). Admission: a prompt is prefilled only when a decode instance has a free slot
  for it (fewer than `max_num_seqs` requests assigned: live, being pulled, waiting to be
  pulled or being prefilled), and is assigned then to the one with the fewest (ties: the
  lowest index). A saturated decode pool thus pushes back on prefill admission rather than
  prompts' KV queueing in the prefill pool (their latency counts from their prefill;
  DistServe sizes the pools so that neither phase queues at the other, §4). The KV stays
  on the prefill instance until its decode instance pulls it; an instance whose KV memory
  is full waits for a pull.
- Hand-over: when a prefill batch ends, its decode instances pull the ready KV at
  its iteration boundaries (FCFS, while `max_num_seqs` and its free blocks admit them); the
  pull runs beside decoding and the requests join at the first boundary after it ends, so a
  decode instance never stalls for a prefill (unlike vllm.py, whose prefill iterations stop
  decoding). The pull is priced by `PipelineCosts.kv_transfer_s`, the cost model's
  GPU -> host -> GPU path (ExeGPT §3, WAA), with min(prefill, decode) instance GPUs moving
  their shards in parallel. DistServe moves KV GPU-to-GPU (NVLink in a node, the network
  across), which is faster: the host path is a conservative stand-in.
- Decode instances: continuous batching with paged KV (vLLM's block manager: 16-token
  blocks, a 1% watermark on admissions, `iteration.BlockTable`); when the next token needs
  a block and none is free, the newest request is preempted by recompute (vllm.py): it goes
  back to the head of the prefill queue, is prefilled again (prompt + generated tokens) and
  returns to the same decode instance (the executor resumes a request on its own group).
A first token comes from the first decode iteration after the pull (program.py), so
TTFT = queueing + prefill + wait for a boundary + transfer + one iteration.
Knobs: prefill_gpus, decode_tp (enumerated), max_num_seqs (the search's axis), prefill_tp and
prefill_token_budget (pinned in the search: `search_space`). Priced by the `vllm` engine: DistServe runs
vLLM-class paged-attention kernels (harness/cost_model/engines.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from harness.cost_model.engines import with_engine
from harness.cost_model.memory import MemoryUse, activation_bytes, kv_cache_bytes, weight_bytes
from harness.policies import distserve_program
from harness.policies.base import Context, KnobSpec, Plan, Policy, infeasible
from harness.policies.common import tp_degrees
from harness.policies.iteration import BLOCK_SIZE, Replica, min_pipeline, replica
from harness.policies.pipeline import PipelineCosts

MAX_NUM_SEQS = 1024     # search range cap of max_num_seqs (as vllm.py); also the decode
                        # instances' activation budget (one token per sequence per iteration)


class DistServe(Policy):
    name = "distserve"
    kind = "disaggregated"
    citation = "Zhong et al., DistServe, OSDI 2024 (Splitwise, Patel et al., ISCA 2024)"
    estimator = "discrete-event"
    iteration_level = True
    engine = "vllm"
    search_resolution = "coarse"   # the DES estimate's sampling noise (~2%) exceeds the fine grid's steps

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        tp = max(tp_degrees(ctx))
        return [
            KnobSpec("prefill_gpus", 1, ctx.cluster.num_gpus, 1, 0, 0, "prefill pool GPUs"),
            KnobSpec("prefill_tp", 1, tp, 1, 0, 0, "prefill TP"),
            KnobSpec("decode_tp", 1, tp, 1, 0, 0, "decode TP"),
            KnobSpec("max_num_seqs", 1, MAX_NUM_SEQS, 1, +1, +1, "max_num_seqs"),
            KnobSpec("prefill_token_budget", 512, 16384, 1, 0, 0, "prefill token budget"),
        ]

    def default_knobs(self, ctx: Context) -> dict[str, int]:
        # half the GPUs prefill; prefill TP: the per-GPU fastest (`best_prefill_tp`); decode
        # TP 1 (the pool scales by instances); vLLM's 256 sequences and its prefill budget
        # max(2048, the longest prompt)
        budget = max(2048, ctx.workload.input.max)
        return {"prefill_gpus": max(1, ctx.cluster.num_gpus // 2), "prefill_tp": best_prefill_tp(ctx, budget),
                "decode_tp": 1, "max_num_seqs": 256, "prefill_token_budget": budget}

    def search_space(self, ctx: Context) -> list[KnobSpec]:
        """max_num_seqs (the axis) per (prefill GPUs, decode TP); prefill GPUs over 1 ..
        GPUs - 1 (the grid takes the powers of two and both ends). Pinned at their defaults:
        the prefill budget (whole prompts need >= the longest; larger only delays first
        tokens) and the prefill TP, chosen per phase as DistServe's placement search does
        (§4.1: each phase's parallelism optimised on its own): the TP whose instances prefill
        the most tokens per GPU-second."""
        n = ctx.cluster.num_gpus
        return [KnobSpec("prefill_gpus", 1, max(1, n - 1), 1, 0, 0, "prefill pool GPUs") if k.name == "prefill_gpus"
                else k for k in self.knob_space(ctx) if k.name not in ("prefill_token_budget", "prefill_tp")]

    @staticmethod
    def pool_layers(ctx: Context) -> tuple[tuple[int, int], tuple[int, int]]:
        """(encoder, decoder) layers of a prefill and of a decode instance. The prefill
        instance holds the whole model: a decoder-only model prefills through its stack; T5
        encodes and projects every decoder layer's cross K/V (what it hands over) with the
        decoder's weights (conservative: only their cross-attention K/V projections are
        needed). The decode instance holds the decoder stack."""
        m = ctx.model
        return (m.num_encoder_layers, m.num_decoder_layers), (0, m.num_decoder_layers)

    def pools(self, ctx: Context, knobs: Mapping[str, int]) -> tuple[Replica | None, Replica | None, str]:
        """The prefill and the decode instance, or a reason why the knobs do not lay out."""
        n, g_p = ctx.cluster.num_gpus, knobs["prefill_gpus"]
        tp_p, tp_d, budget = knobs["prefill_tp"], knobs["decode_tp"], knobs["prefill_token_budget"]
        legal = tp_degrees(ctx)
        for name, tp in (("prefill_tp", tp_p), ("decode_tp", tp_d)):
            if tp not in legal:
                return None, None, f"{name}: {tp} not one of {legal} (divides heads and FFN, inside a node)"
        if budget < ctx.workload.input.max:
            return None, None, (f"prefill_token_budget: {budget} is below the longest prompt "
                                f"({ctx.workload.input.max} tokens); prompts are prefilled whole")
        pre_layers, dec_layers = self.pool_layers(ctx)
        pp_p = min_pipeline(ctx, tp_p, budget, pre_layers)
        pp_d = min_pipeline(ctx, tp_d, MAX_NUM_SEQS, dec_layers)
        if not pp_p or not pp_d:
            side, tp = ("prefill", tp_p) if not pp_p else ("decode", tp_d)
            return None, None, f"memory: no {side} instance of TP {tp} fits the weights on {n} GPUs"
        if tp_p * pp_p > g_p:
            return None, None, (f"prefill_gpus: {g_p} cannot hold one prefill instance "
                                f"(TP {tp_p} x PP {pp_p} = {tp_p * pp_p} GPUs)")
        if g_p + tp_d * pp_d > n:
            return None, None, (f"prefill_gpus: {g_p} + decode pool (one instance: TP {tp_d} x PP {pp_d} = "
                                f"{tp_d * pp_d} GPUs) exceed {n} GPUs")
        if ctx.model.num_decoder_layers < pp_d:
            return None, None, f"layout: {ctx.model.num_decoder_layers} decoder layers cannot fill {pp_d} stages"
        pre = replica(ctx, tp_p, pp_p, budget, pre_layers, gpus=g_p)
        dec = replica(ctx, tp_d, pp_d, MAX_NUM_SEQS, dec_layers, gpus=n - g_p)
        if pre.kv_tokens < budget:
            return None, None, (f"memory: a prefill instance holds {pre.kv_tokens} KV tokens, less than "
                                f"one prefill batch ({budget} tokens)")
        longest = -(-(ctx.workload.input.max + ctx.workload.output.max) // BLOCK_SIZE)
        if dec.kv_tokens // BLOCK_SIZE < longest:
            return None, None, (f"memory: {dec.kv_tokens // BLOCK_SIZE} KV blocks per decode instance hold "
                                f"less than the longest request ({longest} blocks)")
        return pre, dec, ""

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        knobs = self.validate(ctx, knobs)
        pre, dec, err = self.pools(ctx, knobs)
        if err:
            return infeasible(self.name, knobs, err, self.kind)
        cm = with_engine(ctx.cost_model, self.engine)
        costs = PipelineCosts(cm, ctx.model, pre.stages, dec.stages, decode_micro_batches=dec.pp,
                              kv_senders=min(pre.tp * pre.pp, dec.tp * dec.pp))
        seqs, w = knobs["max_num_seqs"], ctx.workload
        # B_D cap: max_num_seqs, or the requests of mean live length (input + half the
        # output) the blocks hold, if fewer (what sizes the DES estimate's stream)
        live = -(-round(w.input.mean + w.output.mean / 2) // BLOCK_SIZE)
        cap = max(1, min(seqs, dec.kv_tokens // BLOCK_SIZE // live))
        return Plan(self.name, self.kind, tuple(sorted(knobs.items())), True, "", seqs, 1,
                    ctx.sla.latency_output_len(w), max_decode_batch=cap,
                    memory_per_gpu_bytes=max(pre.memory_per_gpu_bytes, dec.memory_per_gpu_bytes),
                    num_stages=dec.pp, costs=costs, mode=ctx.mode, program=self, engine=self.engine,
                    derived=(("replicas", dec.count), ("prefill_instances", pre.count),
                             ("num_blocks", dec.kv_tokens // BLOCK_SIZE), ("prefill_kv_tokens", pre.kv_tokens),
                             ("prefill_pp", pre.pp), ("decode_pp", dec.pp)))

    def memory_groups(self, ctx: Context, plan: Plan) -> dict[str, list]:
        """Per pool, one GPU of each stage of its instance: weights, the preallocated paged KV
        pool (the instance's KV tokens on that stage's layers, filling what is left of the
        usable memory), one forward's activations. As in vllm.py (`iteration.replica`), the
        plan's `memory_per_gpu_bytes` is the most loaded GPU's weights + activations: the KV
        pool takes the rest by construction."""
        pre, dec, _ = self.pools(ctx, dict(plan.knobs))

        def group(r: Replica, act_tokens: int) -> list:
            return [(st, MemoryUse(weight_bytes(ctx.model, st.shard()), kv_cache_bytes(ctx.model, st.shard(),
                     r.kv_tokens), activation_bytes(ctx.model, act_tokens, st.tp_degree))) for st in r.stages]
        return {"prefill": group(pre, dict(plan.knobs)["prefill_token_budget"]), "decode": group(dec, MAX_NUM_SEQS)}

    def weight_copies(self, ctx: Context, plan: Plan) -> int:
        """One per prefill and per decode instance."""
        d = dict(plan.derived)
        return int(d["prefill_instances"]) + int(d["replicas"])

    def worker_groups(self, plan: Plan) -> dict[str, tuple]:
        """"p0".."pP-1" (prefill instances' stages), then "d0".."dD-1" (decode instances')."""
        d = dict(plan.derived)
        pre, dec = tuple(plan.costs.encode_stages), tuple(plan.costs.decode_stages)
        return {**{f"p{k}": pre for k in range(int(d["prefill_instances"]))},
                **{f"d{j}": dec for j in range(int(d["replicas"]))}}

    def runner_support(self, plan: Plan) -> str:
        return ("distserve: not validated on the real runner yet (pools of instances, KV pulled at "
                "decode iteration boundaries); simulated only")

    # -- the program -----------------------------------------------------------------------
    def run(self, plan: Plan, x) -> None:
        """The pools' event loop: harness/policies/distserve_program.py."""
        distserve_program.run(plan, x)


@lru_cache(maxsize=1024)
def best_prefill_tp(ctx: Context, budget: int) -> int:
    """The legal TP whose prefill instance (fewest stages that fit) prefills a batch of
    `budget` tokens of mean-length prompts at the most tokens per GPU-second (the smaller TP
    on ties; 1 where none fits: the plan then says why)."""
    pre_layers, _ = DistServe.pool_layers(ctx)
    cm, w = with_engine(ctx.cost_model, DistServe.engine), ctx.workload
    mean_in = max(1, round(w.input.mean))
    batch = max(1, budget // mean_in)
    best, best_rate = 1, 0.0
    for tp in tp_degrees(ctx):
        pp = min_pipeline(ctx, tp, budget, pre_layers)
        if not pp:
            continue
        st = replica(ctx, tp, pp, budget, pre_layers).stages
        # a prefill instance runs one batch at a time (`_Program.prefill`): fill to drain
        busy = PipelineCosts(cm, ctx.model, st, st, pp).encode_s(batch, mean_in)
        rate = batch * mean_in / (busy * tp * pp)
        if rate > best_rate * (1 + 1e-9):
            best, best_rate = tp, rate
    return best
