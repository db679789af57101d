"""FLOP and byte accounting of one transformer layer, kernel by kernel (per GPU).

Shapes only: no timing here. Megatron tensor parallelism (ExeGPT §4) splits the attention
heads, the QKV/output projections and the FFN by `tp`; every GPU of the TP group runs the
same kernels on its shard. Kernel names follow the Vidur operator profiles
(../shared/profiles/vidur: attn_pre_proj, attn_post_proj, mlp_up_proj, ...), so the same
accounting is validated against those measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from harness.specs.models import ModelSpec


class Kind(Enum):
    GEMM = "gemm"              # tensor-core matrix multiply
    ELEMENTWISE = "elementwise"  # norms, activation, residual add, rotary
    ATTENTION = "attention"    # softmax(QK^T)V over the KV cache


@dataclass(frozen=True, slots=True)
class Kernel:
    name: str
    kind: Kind
    flops: float
    bytes: float
    tokens: int = 0            # GEMM rows (M); drives tensor-core utilisation


def gemm(name: str, m: float, k: float, n: float, dtype_bytes: int) -> Kernel:
    """C[m,n] = A[m,k] @ W[k,n]: 2mkn FLOPs; reads A and W, writes C."""
    return Kernel(name, Kind.GEMM, 2.0 * m * k * n, dtype_bytes * (m * k + k * n + m * n), int(m))


def elementwise(name: str, elements_moved: float, dtype_bytes: int, flops_per_element: float = 1.0) -> Kernel:
    return Kernel(name, Kind.ELEMENTWISE, flops_per_element * elements_moved, dtype_bytes * elements_moved)


def attention(name: str, batch: float, q_len: float, kv_len: float, model: ModelSpec, tp: int,
              causal: bool) -> Kernel:
    """Fused attention over `kv_len` cached keys for `q_len` queries per sequence.

    FLOPs: QK^T and PV, 2 * 2 * q_len * kv_len * head_dim per head (half when causal
    prefill skips the masked triangle). Bytes: read Q, K, V (the KV cache), write O.
    """
    heads, kv_heads, hd, b = model.num_heads / tp, model.kv_heads / tp, model.head_dim, model.dtype_bytes
    frac = 0.5 if causal and q_len > 1 else 1.0
    flops = 4.0 * batch * q_len * kv_len * heads * hd * frac
    moved = batch * (2 * q_len * heads * hd + 2 * kv_len * kv_heads * hd)
    return Kernel(name, Kind.ATTENTION, flops, b * moved, int(batch * q_len))


def _mlp(model: ModelSpec, t: float, tp: int) -> list[Kernel]:
    h, f, b = model.hidden_size, model.ffn_size / tp, model.dtype_bytes
    n_up = 2 if model.gated_mlp else 1
    return [
        elementwise("post_attention_layernorm", 2 * t * h, b, 5.0),
        gemm("mlp_up_proj", t, h, n_up * f, b),
        elementwise("mlp_act", (n_up + 1) * t * f, b, 4.0),
        gemm("mlp_down_proj", t, f, h, b),
        elementwise("add", 3 * t * h, b),
    ]


def chunk_attention(name: str, q_len: float, prior_len: float, model: ModelSpec, tp: int) -> Kernel:
    """One prompt's chunk of `q_len` tokens attending to `prior_len` earlier tokens of its
    prompt (already cached) and causally to itself: chunked prefill (Sarathi-Serve, ORCA).

    FLOPs: 4 * q_len * (prior_len + q_len / 2) * head_dim per head; bytes: Q, O of the chunk,
    K/V of prior_len + q_len tokens. `prior_len` 0 is `attention(name, 1, q, q, causal=True)`.
    """
    if prior_len <= 0:
        return attention(name, 1, q_len, q_len, model, tp, causal=True)
    heads, kv_heads, hd, b = model.num_heads / tp, model.kv_heads / tp, model.head_dim, model.dtype_bytes
    seen = prior_len + (0.5 * q_len if q_len > 1 else q_len)
    flops = 4.0 * q_len * seen * heads * hd
    moved = 2 * q_len * heads * hd + 2 * (prior_len + q_len) * kv_heads * hd
    return Kernel(name, Kind.ATTENTION, flops, b * moved, int(q_len))


def _attention_block(model: ModelSpec, t: float, attn: list[Kernel], tp: int) -> list[Kernel]:
    """Norm, QKV projection (+ rotary), the attention kernels `attn`, output projection and
    residual add over `t` tokens."""
    h, b = model.hidden_size, model.dtype_bytes
    q, kv = model.q_dim / tp, model.kv_dim / tp
    ks = [elementwise("input_layernorm", 2 * t * h, b, 5.0),
          gemm("attn_pre_proj", t, h, q + 2 * kv, b)]
    if model.family == "llama":
        ks.append(elementwise("attn_rope", 2 * t * (q + kv), b, 3.0))
    ks += attn
    ks += [gemm("attn_post_proj", t, q, h, b),
           elementwise("add", 3 * t * h, b)]
    return ks


def _self_attention(model: ModelSpec, batch: float, q_len: float, kv_len: float, tp: int,
                    causal: bool) -> list[Kernel]:
    return _attention_block(model, batch * q_len,
                            [attention("attn", batch, q_len, kv_len, model, tp, causal)], tp)


def _cross_attention(model: ModelSpec, batch: float, q_len: float, input_len: float, tp: int) -> list[Kernel]:
    """T5 decoder cross-attention over the encoder output (K/V precomputed, see cross_kv)."""
    h, b = model.hidden_size, model.dtype_bytes
    t = batch * q_len
    q = model.q_dim / tp
    return [elementwise("cross_layernorm", 2 * t * h, b, 5.0),
            gemm("cross_q_proj", t, h, q, b),
            attention("cross_attn", batch, q_len, input_len, model, tp, causal=False),
            gemm("cross_post_proj", t, q, h, b),
            elementwise("add", 3 * t * h, b)]


def encode_layer_kernels(model: ModelSpec, batch: float, seq_len: float, tp: int) -> list[Kernel]:
    """One encoder layer (T5, bidirectional) or one decoder layer in prefill (causal)."""
    causal = not model.is_encoder_decoder
    return _self_attention(model, batch, seq_len, seq_len, tp, causal) + _mlp(model, batch * seq_len, tp)


def decode_layer_kernels(model: ModelSpec, batch: float, context_len: float, tp: int,
                         input_len: float = 0.0) -> list[Kernel]:
    """One decoder layer generating one token per sequence with `context_len` cached tokens."""
    ks = _self_attention(model, batch, 1, context_len, tp, causal=False)
    if model.is_encoder_decoder:
        ks += _cross_attention(model, batch, 1, input_len, tp)
    return ks + _mlp(model, batch, tp)


def mixed_layer_kernels(model: ModelSpec, decode_batch: int, context_len: float, chunk_tokens: int,
                        chunk_context_len: float, tp: int) -> list[Kernel]:
    """One decoder layer of a hybrid iteration (decoder-only models): `decode_batch` sequences
    decode one token over `context_len` cached tokens and one prompt prefills `chunk_tokens`
    tokens after `chunk_context_len` earlier ones. The linear layers and element-wise kernels
    run once over decode_batch + chunk_tokens tokens (fused GEMMs); decode attention and the
    chunk's attention are two kernels (as vLLM and Sarathi-Serve launch them). chunk_tokens 0
    is decode_layer_kernels; decode_batch 0 with chunk_context_len 0 is encode_layer_kernels
    of one prompt of chunk_tokens tokens."""
    attn = []
    if decode_batch > 0:
        attn.append(attention("attn", decode_batch, 1, context_len, model, tp, causal=False))
    if chunk_tokens > 0:
        attn.append(chunk_attention("attn", chunk_tokens, chunk_context_len, model, tp))
    t = decode_batch + chunk_tokens
    return _attention_block(model, t, attn, tp) + _mlp(model, t, tp)


def cross_kv_kernels(model: ModelSpec, batch: float, input_len: float, tp: int) -> list[Kernel]:
    """T5: project the encoder output to cross-attention K/V once, per decoder layer."""
    return [gemm("cross_kv_proj", batch * input_len, model.hidden_size, 2 * model.kv_dim / tp,
                 model.dtype_bytes)] if model.is_encoder_decoder else []


def lm_head_kernels(model: ModelSpec, num_tokens: float, tp: int) -> list[Kernel]:
    """Final norm and vocabulary projection (vocab split over TP, as in Megatron/FT)."""
    h, b = model.hidden_size, model.dtype_bytes
    return [elementwise("final_layernorm", 2 * num_tokens * h, b, 5.0),
            gemm("lm_head", num_tokens, h, model.vocab_size / tp, b)]


def layer_flops(kernels: list[Kernel]) -> float:
    return sum(k.flops for k in kernels)
