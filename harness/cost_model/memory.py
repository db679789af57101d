"""Per-GPU memory: weights of a TP/PP shard, KV cache, activations; the largest batch that fits.

Bytes throughout. The KV cache per token and layer is 2 (K and V) * kv_dim * dtype bytes
(harness.specs.models); under TP each GPU holds 1/tp of the heads. ExeGPT §3: WAA keeps
a second copy of a decoder-only model's weights (one per pipeline) and its decode GPUs hold
the KV caches; FT reserves KV for the maximum length of every slot (ExeGPT §1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from harness.specs.hardware import GPUSpec
from harness.specs.models import ModelSpec

# Fraction of device memory a serving engine may use; the rest is left to the CUDA context,
# cuBLAS/NCCL workspaces and fragmentation. 0.9 is vLLM's default `gpu_memory_utilization`
# (vLLM docs, EngineArgs), the only published default of its kind among the engines we cite.
USABLE_MEMORY_FRACTION = 0.9


@dataclass(frozen=True, slots=True)
class StageShard:
    """What one GPU of a pipeline stage holds."""

    encoder_layers: float = 0.0     # number of encoder layers on this stage (E/N for RRA)
    decoder_layers: float = 0.0     # number of decoder layers on this stage
    tp_degree: int = 1
    embeddings: bool = True         # token embedding / LM head held here (first/last stage)


@dataclass(frozen=True, slots=True)
class MemoryUse:
    weights_bytes: float
    kv_cache_bytes: float
    activation_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes


@lru_cache(maxsize=256)
def _param_counts(model: ModelSpec) -> tuple[int, int, int]:
    return model.encoder_layer_params(), model.decoder_layer_params(), model.embedding_params()


def weight_bytes(model: ModelSpec, shard: StageShard) -> float:
    """Parameters held by one GPU of the stage, FP16."""
    enc, dec, emb = _param_counts(model)
    params = shard.encoder_layers * enc + shard.decoder_layers * dec + (emb if shard.embeddings else 0)
    return params * model.dtype_bytes / shard.tp_degree


def kv_cache_bytes(model: ModelSpec, shard: StageShard, self_tokens: float, cross_tokens: float = 0.0) -> float:
    """KV cache for `self_tokens` decoded/prompt tokens (+ `cross_tokens` encoder tokens, T5)."""
    per_layer = model.kv_bytes_per_token_per_layer() / shard.tp_degree
    cross = cross_tokens if model.is_encoder_decoder else 0.0
    return shard.decoder_layers * per_layer * (self_tokens + cross)


def activation_bytes(model: ModelSpec, tokens_in_flight: float, tp_degree: int) -> float:
    """Peak live activations of one layer's forward pass over `tokens_in_flight` tokens:
    residual + normed input (2h), QKV (q+2kv)/tp, attention output q/tp, FFN (n_up+1)*ffn/tp.
    Layers run one after another, so one layer's worth is live at a time."""
    n_up = 2 if model.gated_mlp else 1
    width = (2 * model.hidden_size + (2 * model.q_dim + 2 * model.kv_dim) / tp_degree
             + (n_up + 1) * model.ffn_size / tp_degree)
    return tokens_in_flight * width * model.dtype_bytes


def usable_bytes(gpu: GPUSpec) -> float:
    return gpu.memory_bytes * USABLE_MEMORY_FRACTION


def max_sequences(model: ModelSpec, gpu: GPUSpec, shard: StageShard, tokens_per_sequence: float,
                  prompt_tokens: float, weight_copies: int = 1, cross_tokens_per_sequence: float = 0.0) -> int:
    """Largest number of sequences whose KV cache (reserved for `tokens_per_sequence`) and
    encoding activations (`prompt_tokens` each) fit beside the weights; 0 if none fits."""
    free = usable_bytes(gpu) - weight_copies * weight_bytes(model, shard)
    per_seq = (kv_cache_bytes(model, shard, tokens_per_sequence, cross_tokens_per_sequence)
               + activation_bytes(model, prompt_tokens, shard.tp_degree))
    if free <= 0 or per_seq <= 0:
        return 0
    return int(free // per_seq)
