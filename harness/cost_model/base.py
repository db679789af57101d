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
