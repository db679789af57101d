"""Analytic cost model: roofline per kernel + fitted fixed overheads + collective model.

Kernel time (one GPU): max(FLOPs / (peak * eff(M)), bytes / (bandwidth * bw_fraction))
+ per-kernel overhead; layer time = sum over the layer's kernels (harness.cost_model.kernels)
+ a per-layer framework overhead; TP all-reduces (Megatron: 2 per encoder layer, 2 per
decoder-only layer, 3 per decoder layer with cross-attention; ExeGPT §4) follow the collective
model latency + bytes / (link bandwidth * fraction). Small batches are dominated by the
fixed terms, as on real GPUs. All fractions and overheads are fitted (harness.cost_model.fit)
and loaded from fitted/analytic-v1.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.cost_model import kernels as K
from harness.cost_model.base import LayerTime
from harness.cost_model.params import FittedParams, GPUParams, load
from harness.specs.hardware import ClusterSpec
from harness.specs.models import ModelSpec

_NORMS = frozenset({"input_layernorm", "post_attention_layernorm", "cross_layernorm", "final_layernorm"})


@dataclass(frozen=True, slots=True, eq=False)   # hashed by identity (lru caches key on it)
class AnalyticCostModel:
    cluster: ClusterSpec
    params: FittedParams = field(default_factory=load)
    id: str = field(init=False)
    _gpu: GPUParams = field(init=False, repr=False)
    _memo: dict = field(init=False, repr=False)   # layer-time memo: searches revisit points

    def __post_init__(self) -> None:
        object.__setattr__(self, "_memo", {})
        object.__setattr__(self, "_gpu", self.params.for_gpu(self.cluster.gpu.name))
        object.__setattr__(self, "id", f"analytic-{self.params.version}/{self.cluster.gpu.name}")

    # ---- kernels -------------------------------------------------------------------
    def kernel_s(self, k: K.Kernel) -> float:
        c, gpu = self._gpu.compute, self.cluster.gpu
        if k.kind is K.Kind.ELEMENTWISE:
            frac = c.norm_bw_fraction if k.name in _NORMS else c.pointwise_bw_fraction
            return k.bytes / (gpu.mem_bandwidth_Bps * frac) + c.pointwise_overhead_s
        bw_frac = c.gemm_bw_fraction
        if k.kind is K.Kind.ATTENTION:
            bw_frac *= self.params.framework.attention_bw_fraction
        m = max(k.tokens, 1)
        eff = c.gemm_peak_fraction * m / (m + c.gemm_half_tokens)
        return max(k.flops / (gpu.fp16_flops * eff), k.bytes / (gpu.mem_bandwidth_Bps * bw_frac)) + c.gemm_overhead_s

    def kernels_s(self, kernels: list[K.Kernel]) -> float:
        return sum(self.kernel_s(k) for k in kernels)

    # ---- layers (CostModel protocol) ----------------------------------------------------
    def _layer(self, kernels: list[K.Kernel], tokens: float, num_allreduce: int, model: ModelSpec,
               tp: int) -> LayerTime:
        compute = self.kernels_s(kernels) + self.params.framework.per_layer_overhead_s
        comm = 0.0
        if tp > 1:
            msg = tokens * model.hidden_size * model.dtype_bytes
            comm = num_allreduce * self.allreduce_s(msg, tp, inter_node=tp > self.cluster.gpus_in_node)
        return LayerTime(compute, comm)

    def encode_layer(self, model: ModelSpec, batch_size: int, seq_len: float, tp_degree: int) -> LayerTime:
        key = ("e", model, batch_size, seq_len, tp_degree)
        if (hit := self._memo.get(key)) is None:
            ks = K.encode_layer_kernels(model, batch_size, seq_len, tp_degree)
            hit = self._memo[key] = self._layer(ks, batch_size * seq_len, 2, model, tp_degree)
        return hit

    def decode_layer(self, model: ModelSpec, batch_size: int, context_len: float, tp_degree: int,
                     input_len: float = 0.0) -> LayerTime:
        key = ("d", model, batch_size, context_len, tp_degree, input_len)
        if (hit := self._memo.get(key)) is None:
            ks = K.decode_layer_kernels(model, batch_size, context_len, tp_degree, input_len)
            n_ar = 3 if model.is_encoder_decoder else 2
            hit = self._memo[key] = self._layer(ks, batch_size, n_ar, model, tp_degree)
        return hit

    def cross_kv_s(self, model: ModelSpec, batch_size: int, input_len: float, tp_degree: int) -> float:
        """T5: one decoder layer's projection of the encoder output to cross K/V (once per query)."""
        return self.kernels_s(K.cross_kv_kernels(model, batch_size, input_len, tp_degree))

    def lm_head_s(self, model: ModelSpec, num_tokens: int, tp_degree: int) -> float:
        """Final norm + vocabulary projection + the per-iteration framework cost (embedding
        lookup, sampling, host loop); the vocabulary all-gather is folded into the latter."""
        key = ("h", model, num_tokens, tp_degree)
        if (hit := self._memo.get(key)) is None:
            hit = self._memo[key] = (self.kernels_s(K.lm_head_kernels(model, num_tokens, tp_degree))
                                     + self.params.framework.per_iteration_overhead_s)
        return hit

    # ---- communication ---------------------------------------------------------------
    def allreduce_s(self, message_bytes: float, num_gpus: int, inter_node: bool = False) -> float:
        if num_gpus <= 1:
            return 0.0
        c = self._gpu.comm
        algo_bytes = 2.0 * (num_gpus - 1) / num_gpus * message_bytes
        if inter_node:
            return c.allreduce_inter_latency_s + algo_bytes / (
                self.cluster.inter_node_Bps_per_gpu * c.allreduce_inter_bw_fraction)
        return c.allreduce_latency_s + algo_bytes / (self.cluster.gpu.intra_node_Bps * c.allreduce_bw_fraction)

    def p2p_s(self, message_bytes: float, inter_node: bool = False) -> float:
        c = self._gpu.comm
        if inter_node:
            return c.p2p_inter_latency_s + message_bytes / (
                self.cluster.inter_node_Bps_per_gpu * c.p2p_inter_bw_fraction)
        return c.p2p_latency_s + message_bytes / (self.cluster.gpu.intra_node_Bps * c.p2p_bw_fraction)

    def kv_copy_s(self, model: ModelSpec, num_seqs: int, context_len: float, tp_degree: int,
                  input_len: float = 0.0, kind: str = "compact") -> float:
        """0: FasterTransformer-style engines (the paper's, §7) update preallocated caches in place."""
        return 0.0

    def kv_transfer_s(self, kv_bytes: float) -> float:
        """GPU -> host -> GPU over PCIe (two copies), at the intra-node p2p efficiency."""
        c = self._gpu.comm
        return 2.0 * (c.p2p_latency_s + kv_bytes / (self.cluster.gpu.host_link_Bps * c.p2p_bw_fraction))
