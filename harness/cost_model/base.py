"""The cost-model protocol every downstream module uses (ExeGPT §2 XProfiler / §6 XSimulator).

A cost model is bound to one cluster (GPU type + topology) and answers, for any model:
the time of ONE encoder layer and ONE decoder layer at a (batch, length, TP degree) point,
in the encoding phase and the decoding phase, the communication it needs (Megatron TP
all-reduces, pipeline sends, WAA KV-cache moves via host memory), and per-GPU memory.
Times are seconds, sizes bytes, lengths tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from harness.specs.hardware import ClusterSpec
from harness.specs.models import ModelSpec


@dataclass(frozen=True, slots=True)
class LayerTime:
    """Time of one transformer layer on one pipeline stage, split by cause."""

    compute_s: float      # GEMMs, attention, element-wise kernels (incl. per-kernel overheads)
    comm_s: float         # TP all-reduces of this layer (0 at TP degree 1)

    @property
    def total_s(self) -> float:
        return self.compute_s + self.comm_s


@runtime_checkable
class CostModel(Protocol):
    """Implemented by `analytic` (roofline + fitted overheads) and `profiled` (measured tables)."""

    id: str                # e.g. "analytic-v1/a40": recorded with every result for provenance
    cluster: ClusterSpec

    def encode_layer(self, model: ModelSpec, batch_size: int, seq_len: float, tp_degree: int) -> LayerTime:
        """One layer processing `batch_size` prompts of `seq_len` tokens (encoding phase).

        Encoder-decoder models: one encoder layer (bidirectional attention).
        Decoder-only models: one decoder layer in prefill (causal attention).
        TP all-reduces: 2 per layer (Megatron; ExeGPT §4).
        """
        ...

    def decode_layer(self, model: ModelSpec, batch_size: int, context_len: float, tp_degree: int,
                     input_len: float = 0.0) -> LayerTime:
        """One decoder layer generating one token for each of `batch_size` sequences.

        `context_len` is the mean number of cached self-attention tokens per sequence
        (attention cost is linear in it, so the mean is exact for a batch); `input_len`
        is the mean encoder length read by cross-attention (encoder-decoder only).
        TP all-reduces: 2 per layer, 3 with cross-attention (ExeGPT §4).
        """
        ...

    def mixed_layer(self, model: ModelSpec, decode_batch: int, context_len: float, chunk_tokens: int,
                    chunk_context_len: float, tp_degree: int) -> LayerTime:
        """One decoder layer of a hybrid iteration (chunked prefill: Sarathi-Serve, ORCA):
        `decode_batch` sequences decode one token over `context_len` cached tokens while one
        prompt prefills `chunk_tokens` tokens after `chunk_context_len` earlier ones, in one
        forward. chunk_tokens 0 must equal `decode_layer`. Decoder-only models. A model
        without its own may use `mixed_layer_from_phases`."""
        ...

    def lm_head_s(self, model: ModelSpec, num_tokens: int, tp_degree: int) -> float:
        """Final norm + vocabulary projection + sampling for `num_tokens` tokens (last stage)."""
        ...

    def allreduce_s(self, message_bytes: float, num_gpus: int, inter_node: bool = False) -> float:
        """Ring all-reduce of `message_bytes` over `num_gpus` GPUs (latency + bytes/bus bw)."""
        ...

    def p2p_s(self, message_bytes: float, inter_node: bool = False) -> float:
        """Pipeline activation send between neighbouring stages."""
        ...

    def kv_transfer_s(self, kv_bytes: float) -> float:
        """WAA KV-cache move encode GPU -> host memory -> decode GPU (ExeGPT §3)."""
        ...

    def kv_copy_s(self, model: ModelSpec, num_seqs: int, context_len: float, tp_degree: int,
                  input_len: float = 0.0, kind: str = "compact") -> float:
        """One decoder layer's KV cache rewritten for `num_seqs` sequences of `context_len`
        cached tokens (+ cross caches of `input_len`): what an engine without in-place cache
        management pays when queries leave (`kind="compact"`: KV compaction, ExeGPT §2) or
        join a batch (`kind="join"`). 0 for the paper's GPU engines (preallocated caches,
        §7); measured for the CPU runner."""
        ...


def mixed_layer_from_phases(cm: CostModel, model: ModelSpec, decode_batch: int, context_len: float,
                            chunk_tokens: int, chunk_context_len: float, tp_degree: int) -> LayerTime:
    """A hybrid layer approximated from a model's phase times, for cost models that measured
    no hybrid step (the profiled model): decode_layer(decode_batch, context) plus the chunk's
    increment of prefill time, encode_layer(1, prior + chunk) - encode_layer(1, prior) (all of
    encode_layer(1, chunk) when prior is 0). No GEMM fusion: decode and chunk read the weights
    separately, an upper bound for an engine that fuses them (what an engine running the two
    as separate forwards pays). chunk_tokens 0 is decode_layer exactly."""
    if chunk_tokens <= 0:
        return cm.decode_layer(model, decode_batch, context_len, tp_degree)
    whole = cm.encode_layer(model, 1, chunk_context_len + chunk_tokens, tp_degree)
    if chunk_context_len > 0:
        before = cm.encode_layer(model, 1, chunk_context_len, tp_degree)
        whole = LayerTime(max(whole.compute_s - before.compute_s, 0.0), max(whole.comm_s - before.comm_s, 0.0))
    if decode_batch <= 0:
        return whole
    dec = cm.decode_layer(model, decode_batch, context_len, tp_degree)
    return LayerTime(dec.compute_s + whole.compute_s, dec.comm_s + whole.comm_s)


def stage_decode_layer(cm, model: ModelSpec, batch_size: int, context_len: float, tp_degree: int,
                       input_len: float = 0.0, pipelined: bool = False) -> LayerTime:
    """A decoder layer of one stage: a stage of a pipeline (`pipelined`: it holds part of the
    decoder, a neighbour sends to it) is priced by the cost model's `pipelined_decode_layer`
    where it has one (the profiled model: measured inside a pipeline), else `decode_layer`."""
    price = getattr(cm, "pipelined_decode_layer", None) if pipelined else None
    return (price or cm.decode_layer)(model, batch_size, context_len, tp_degree, input_len)
