"""Analytic cost model: roofline per kernel + fitted fixed overheads + collective model.

Kernel time (one GPU): max(FLOPs / (peak * eff(M)), bytes / (bandwidth * bw_fraction))
+ per-kernel overhead; layer time = sum over the layer's kernels (harness.cost_model.kernels)
+ a per-layer framework overhead; TP all-reduces (Megatron: 2 per encoder layer, 2 per
decoder-only layer, 3 per decoder layer with cross-attention; ExeGPT §4) follow the collective
model latency + bytes / (link bandwidth * fraction). Small batches are dominated by the
fixed terms, as on real GPUs. All fractions and overheads are fitted (harness.cost_model.fit)
and loaded from fitted/analytic-v1.json.

Options (`cost_model.<key>=<value>`, OPTIONS below) swap a transferred constant for a named
alternative with its own source (harness.cost_model.params): `attention_bw_fraction` (decode
attention fitted to FT on A100 vs PyTorch SDPA on H100 / vLLM on A100, or a number) and `comm`
(A100 DGX link efficiencies transferred to the A40 vs rings composed from the A40's own
send/recv measurement). Without options the model is the fitted one, number for number.

The serving engine (harness.cost_model.engines; `engine=`, default `ft`, the engine the model is
fitted to) sets decode attention's efficiency (unless `attention_bw_fraction` is given: the
option wins) and the per-iteration overhead; `with_engine(name)` is the same model priced by
another engine, memoised, its `id` tagged `+<engine>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.cost_model import kernels as K
from harness.cost_model.base import LayerTime
from harness.cost_model.engines import DEFAULT_ENGINE, ENGINES, EngineSpec, get_engine
from harness.cost_model.params import (
    ATTENTION_BW_FRACTIONS,
    COMM_ALTERNATIVES,
    DEFAULT_ATTENTION,
    DEFAULT_COMM,
    CommAlternative,
    FittedParams,
    GPUParams,
    load,
)
from harness.errors import UserError, check, unknown_name
from harness.specs.hardware import ClusterSpec
from harness.specs.models import ModelSpec

_NORMS = frozenset({"input_layernorm", "post_attention_layernorm", "cross_layernorm", "final_layernorm"})

# The options (`cost_model.<key>`; null/absent = the fitted model). Values and their sources:
# harness/cost_model/params.py (ATTENTION_BW_FRACTIONS, COMM_ALTERNATIVES).
OPTIONS: dict[str, str] = {
    "attention_bw_fraction": "decode-attention KV streaming as a fraction of gemm_bw_fraction: "
                             f"{' | '.join(ATTENTION_BW_FRACTIONS)} (default {DEFAULT_ATTENTION}) or a number",
    "comm": f"GPU-to-GPU communication: {' | '.join(COMM_ALTERNATIVES)} (default {DEFAULT_COMM})",
    "engine_override": f"price every policy with one engine's kernels: {' | '.join(ENGINES)} (default: each "
                       "policy its own, `Policy.engine`); separates scheduling from kernels",
}


def _attention_fraction(value: object, fitted: float, gpu: GPUParams, gpu_name: str,
                        engine: EngineSpec) -> tuple[float, str | None]:
    """(fraction used, id tag; None for the default). A number must keep attention at or
    under the datasheet bandwidth: fraction * gemm_bw_fraction <= 1. Unset: the engine's."""
    if value is None and engine.attention is not None:
        return ATTENTION_BW_FRACTIONS[engine.attention].value, None     # tagged by `+<engine>`
    if value is None or value == DEFAULT_ATTENTION:
        return fitted, None
    if isinstance(value, str) and value in ATTENTION_BW_FRACTIONS:
        return ATTENTION_BW_FRACTIONS[value].value, value
    top = 1.0 / gpu.compute.gemm_bw_fraction
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value <= top
    check(ok, "cost_model.attention_bw_fraction",
          f"must be one of {', '.join(ATTENTION_BW_FRACTIONS)} or a number in (0, {top:.3f}] ({gpu_name}: above it "
          f"attention would stream faster than the datasheet memory bandwidth); got {value!r}")
    return float(value), repr(float(value))


def _comm_alternative(value: object, gpu_name: str) -> tuple[CommAlternative, str | None]:
    if value is None or value == DEFAULT_COMM:
        return COMM_ALTERNATIVES[DEFAULT_COMM], None
    if not isinstance(value, str) or value not in COMM_ALTERNATIVES:
        raise unknown_name("cost_model.comm", value, COMM_ALTERNATIVES)
    alt = COMM_ALTERNATIVES[value]
    check(not alt.gpus or gpu_name in alt.gpus, "cost_model.comm",
          f"'{value}' is grounded in {', '.join(alt.gpus)} data, this cluster's GPU is {gpu_name}; "
          f"valid here: {DEFAULT_COMM}")
    return alt, value


@dataclass(frozen=True, slots=True, eq=False, init=False)   # hashed by identity (lru caches key on it)
class AnalyticCostModel:
    """`AnalyticCostModel(cluster, params=None, engine="ft", **options)`: `options` are the
    documented OPTIONS (unknown name or bad value: one-line UserError); `id` names the engine
    unless `ft` and every non-default option."""

    cluster: ClusterSpec
    params: FittedParams
    options: tuple[tuple[str, str], ...]      # non-default options, as tagged in `id`
    id: str
    engine: str                               # harness.cost_model.engines name
    engine_pinned: bool                       # option engine_override: every policy on this engine
    _engine: EngineSpec = field(repr=False)
    _raw_options: dict = field(repr=False)    # as given, for `with_engine`
    _gpu: GPUParams = field(repr=False)
    _attention_bw_fraction: float = field(repr=False)
    _comm: CommAlternative = field(repr=False)
    _p2p: dict = field(repr=False)            # inter_node -> (latency_s, bw_fraction)
    _memo: dict = field(repr=False)           # layer-time memo: searches revisit points

    def __init__(self, cluster: ClusterSpec, params: FittedParams | None = None, engine: str = DEFAULT_ENGINE,
                 **options: object) -> None:
        for key in options:
            if key not in OPTIONS:
                raise UserError(f"cost_model.{key}: not an option of the analytic cost model; "
                                f"valid: {', '.join(OPTIONS)}")
        pinned = options.get("engine_override")
        if pinned is not None:
            if pinned not in ENGINES:
                raise unknown_name("cost_model.engine_override", str(pinned), ENGINES)
            engine = str(pinned)                # every policy priced by it: with_engine returns self
        spec = get_engine(engine)
        params = load() if params is None else params
        gpu = params.for_gpu(cluster.gpu.name)
        attn, attn_tag = _attention_fraction(options.get("attention_bw_fraction"),
                                             params.framework.attention_bw_fraction, gpu, cluster.gpu.name, spec)
        comm, comm_tag = _comm_alternative(options.get("comm"), cluster.gpu.name)
        pin_tag = None if pinned is None else "all"
        tags = tuple((k, t) for k, t in (("attention_bw_fraction", attn_tag), ("comm", comm_tag),
                                         ("engine_override", pin_tag)) if t is not None)
        c = gpu.comm
        p2p = {False: (c.p2p_latency_s, c.p2p_bw_fraction), True: (c.p2p_inter_latency_s, c.p2p_inter_bw_fraction)}
        for inter, fit in ((False, comm.p2p_intra), (True, comm.p2p_inter)):
            if fit is not None:
                p2p[inter] = (fit.latency_s, fit.bw_fraction)
        set_ = object.__setattr__
        tag = "" if engine == DEFAULT_ENGINE else f"+{engine}"
        for name, v in (("cluster", cluster), ("params", params), ("options", tags), ("_gpu", gpu),
                        ("_attention_bw_fraction", attn), ("_comm", comm), ("_p2p", p2p), ("_memo", {}),
                        ("engine", engine), ("_engine", spec), ("_raw_options", dict(options)),
                        ("engine_pinned", pin_tag is not None),
                        ("id", f"analytic-{params.version}/{cluster.gpu.name}{tag}"
                               + "".join(f",{k}={t}" for k, t in tags))):
            set_(self, name, v)

    def with_engine(self, engine: str) -> AnalyticCostModel:
        """This model (cluster, params, options) priced by `engine`; memoised, itself when
        it is already that engine's (use harness.cost_model.engines.with_engine)."""
        if engine == self.engine or self.engine_pinned:
            return self
        key = ("engine", engine)
        if (hit := self._memo.get(key)) is None:
            hit = self._memo[key] = AnalyticCostModel(self.cluster, self.params, engine, **self._raw_options)
        return hit

    # ---- kernels -------------------------------------------------------------------
    def kernel_s(self, k: K.Kernel) -> float:
        c, gpu = self._gpu.compute, self.cluster.gpu
        if k.kind is K.Kind.ELEMENTWISE:
            frac = c.norm_bw_fraction if k.name in _NORMS else c.pointwise_bw_fraction
            return k.bytes / (gpu.mem_bandwidth_Bps * frac) + c.pointwise_overhead_s
        bw_frac = c.gemm_bw_fraction
        if k.kind is K.Kind.ATTENTION:
            bw_frac *= self._attention_bw_fraction
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
            # Kernel times add up: the attention kernels (which read the context and input
            # lengths) are priced apart from the rest (batch only, memoised once per batch),
            # so a replay's many (batch, context) points each cost one kernel.
            base_key = ("db", model, batch_size, tp_degree)
            if (base := self._memo.get(base_key)) is None:
                n_ar = 3 if model.is_encoder_decoder else 2
                ks = K.decode_layer_kernels(model, batch_size, context_len, tp_degree, input_len)
                rest = [k for k in ks if k.kind is not K.Kind.ATTENTION]
                base = self._memo[base_key] = self._layer(rest, batch_size, n_ar, model, tp_degree)
            # the attention kernels of K.decode_layer_kernels, in its order
            attn = self._decode_attention_s(model, batch_size, context_len, tp_degree)
            if model.is_encoder_decoder:
                attn += self.kernel_s(K.attention("cross_attn", batch_size, 1, input_len, model, tp_degree,
                                                  causal=False))
            hit = self._memo[key] = LayerTime(base.compute_s + attn, base.comm_s)
        return hit

    def mixed_layer(self, model: ModelSpec, decode_batch: int, context_len: float, chunk_tokens: int,
                    chunk_context_len: float, tp_degree: int) -> LayerTime:
        """A hybrid layer (kernels.mixed_layer_kernels): decode of `decode_batch` sequences and
        a prefill chunk in one forward, GEMMs fused; chunk_tokens 0 is decode_layer exactly."""
        if chunk_tokens <= 0:
            return self.decode_layer(model, decode_batch, context_len, tp_degree)
        check(not model.is_encoder_decoder, "chunk_tokens",
              f"chunked prefill is for decoder-only models; {model.name} is encoder-decoder")
        # As decode_layer: the fused linear/element-wise kernels depend on the token count only,
        # each attention kernel on its own arguments; all three memoised apart, the sum not (a
        # replay meets ~10^6 distinct combinations, each three lookups).
        tokens = decode_batch + chunk_tokens
        base_key = ("mb", model, tokens, tp_degree)
        if (base := self._memo.get(base_key)) is None:
            ks = K.mixed_layer_kernels(model, decode_batch, context_len, chunk_tokens, chunk_context_len, tp_degree)
            rest = [k for k in ks if k.kind is not K.Kind.ATTENTION]
            base = self._memo[base_key] = self._layer(rest, tokens, 2, model, tp_degree)
        attn = self._decode_attention_s(model, decode_batch, context_len, tp_degree) if decode_batch > 0 else 0.0
        chunk_key = ("ca", model, chunk_tokens, chunk_context_len, tp_degree)
        if (chunk := self._memo.get(chunk_key)) is None:
            chunk = self._memo[chunk_key] = self.kernel_s(
                K.chunk_attention("attn", chunk_tokens, chunk_context_len, model, tp_degree))
        return LayerTime(base.compute_s + attn + chunk, base.comm_s)

    def _decode_attention_s(self, model: ModelSpec, batch_size: int, context_len: float, tp_degree: int) -> float:
        """One decode step's self-attention kernel (K.attention, one query token), memoised."""
        key = ("da", model, batch_size, context_len, tp_degree)
        if (hit := self._memo.get(key)) is None:
            hit = self._memo[key] = self.kernel_s(K.attention("attn", batch_size, 1, context_len, model, tp_degree,
                                                              causal=False))
        return hit

    def cross_kv_s(self, model: ModelSpec, batch_size: int, input_len: float, tp_degree: int) -> float:
        """T5: one decoder layer's projection of the encoder output to cross K/V (once per query)."""
        return self.kernels_s(K.cross_kv_kernels(model, batch_size, input_len, tp_degree))

    def lm_head_s(self, model: ModelSpec, num_tokens: int, tp_degree: int) -> float:
        """Final norm + vocabulary projection + the per-iteration framework cost (embedding
        lookup, sampling, host loop; the engine's, harness.cost_model.engines); the vocabulary
        all-gather is folded into the latter."""
        key = ("h", model, num_tokens, tp_degree)
        if (hit := self._memo.get(key)) is None:
            overhead = self._engine.overhead_s(tp_degree)
            if overhead is None:
                overhead = self.params.framework.per_iteration_overhead_s
            hit = self._memo[key] = self.kernels_s(K.lm_head_kernels(model, num_tokens, tp_degree)) + overhead
        return hit

    # ---- communication ---------------------------------------------------------------
    def allreduce_s(self, message_bytes: float, num_gpus: int, inter_node: bool = False) -> float:
        if num_gpus <= 1:
            return 0.0
        if self._comm.ring_inter if inter_node else self._comm.ring_intra:
            # Ring all-reduce from p2p: reduce-scatter + all-gather, 2(n-1) steps of message/n.
            return 2 * (num_gpus - 1) * self.p2p_s(message_bytes / num_gpus, inter_node)
        c = self._gpu.comm
        algo_bytes = 2.0 * (num_gpus - 1) / num_gpus * message_bytes
        if inter_node:
            return c.allreduce_inter_latency_s + algo_bytes / (
                self.cluster.inter_node_Bps_per_gpu * c.allreduce_inter_bw_fraction)
        return c.allreduce_latency_s + algo_bytes / (self.cluster.gpu.intra_node_Bps * c.allreduce_bw_fraction)

    def p2p_s(self, message_bytes: float, inter_node: bool = False) -> float:
        latency_s, bw_fraction = self._p2p[inter_node]
        if inter_node:
            return latency_s + message_bytes / (self.cluster.inter_node_Bps_per_gpu * bw_fraction)
        return latency_s + message_bytes / (self.cluster.gpu.intra_node_Bps * bw_fraction)

    def kv_copy_s(self, model: ModelSpec, num_seqs: int, context_len: float, tp_degree: int,
                  input_len: float = 0.0, kind: str = "compact") -> float:
        """0: FasterTransformer-style engines (the paper's, §7) update preallocated caches in place."""
        return 0.0

    def kv_transfer_s(self, kv_bytes: float) -> float:
        """GPU -> host -> GPU over PCIe (two copies), at the fitted intra-node p2p efficiency
        (the `comm` option leaves it: the A40 send/recv data are GPU-to-GPU, not host copies)."""
        c = self._gpu.comm
        return 2.0 * (c.p2p_latency_s + kv_bytes / (self.cluster.gpu.host_link_Bps * c.p2p_bw_fraction))
