"""Small real models built offline: a HF `transformers` model from a `ModelSpec` with seeded
random weights, and its weights re-laid out (and TP-sharded) for our own layer code.

Timing does not depend on weight values, so nothing is downloaded: the HF model is only the
reference the runner's tokens are tested against (tests/test_runner_correctness.py) and the
source the ctranslate2 baseline is converted from. Families: t5 (encoder-decoder, T5 v1.0:
ReLU FFN, RMS norm, relative position buckets 32/128), opt and gpt (decoder-only, pre-LN,
learned positions). Megatron TP (ExeGPT §4): heads and the FFN are split across `tp_degree`
ranks; the attention output and FFN-down projections are row-split and followed by an
all-reduce; their biases are added once, after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from harness.errors import UserError
from harness.specs.models import ModelSpec

OPT_POSITION_OFFSET = 2      # HF OPTLearnedPositionalEmbedding.offset


@dataclass(frozen=True, slots=True)
class Norm:
    weight: torch.Tensor
    bias: torch.Tensor | None      # None: T5 RMS norm (scale only)
    eps: float


@dataclass(frozen=True, slots=True)
class Attention:
    """Projections in nn.Linear layout [out, in]; q/k/v hold this rank's heads only."""

    wq: torch.Tensor
    wk: torch.Tensor
    wv: torch.Tensor
    wo: torch.Tensor               # [hidden, local heads * head_dim] (row-split input)
    bq: torch.Tensor | None
    bk: torch.Tensor | None
    bv: torch.Tensor | None
    bo: torch.Tensor | None        # full bias, added after the all-reduce


@dataclass(frozen=True, slots=True)
class MLP:
    w1: torch.Tensor               # [local ffn, hidden]
    b1: torch.Tensor | None
    w2: torch.Tensor               # [hidden, local ffn]
    b2: torch.Tensor | None        # full bias, added after the all-reduce
    act: str                       # relu | gelu_new


@dataclass(frozen=True, slots=True)
class Layer:
    ln1: Norm
    attn: Attention
    ln2: Norm
    mlp: MLP
    ln_cross: Norm | None = None   # T5 decoder: cross-attention block
    cross: Attention | None = None


@dataclass(frozen=True, slots=True)
class Weights:
    """One rank's view of a model: all layers (sharded for `tp_rank` of `tp_degree`)."""

    spec: ModelSpec
    family: str
    tp_degree: int
    tp_rank: int
    local_heads: int
    head_dim: int
    attn_scale: float              # 1/sqrt(head_dim); T5: 1.0 (no scaling)
    tok_emb: torch.Tensor          # [vocab, hidden], tied LM head
    pos_emb: torch.Tensor | None   # learned positions (opt: offset 2)
    encoder: tuple[Layer, ...]
    decoder: tuple[Layer, ...]
    enc_final: Norm | None         # T5 encoder final norm
    final: Norm                    # decoder final norm
    enc_rel_bias: torch.Tensor | None   # T5 [buckets, local heads] (bidirectional)
    dec_rel_bias: torch.Tensor | None   # T5 [buckets, local heads] (causal)
    eos_id: int
    decoder_start_id: int          # T5: pad id 0
    head_scale: float              # T5 v1.0 scales decoder output by d_model**-0.5

    def nbytes(self) -> int:
        seen, total = set(), 0
        for t in _tensors(self):
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
        return total


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, tuple):
        for o in obj:
            yield from _tensors(o)
    elif hasattr(obj, "__slots__"):
        for name in obj.__slots__:
            yield from _tensors(getattr(obj, name))


# ---- the HF reference model --------------------------------------------------------------
def hf_config(spec: ModelSpec):
    """A `transformers` config with the spec's shape (dropout off, cache on)."""
    import transformers as tf
    if spec.family == "t5":
        return tf.T5Config(vocab_size=spec.vocab_size, d_model=spec.hidden_size, d_kv=spec.head_dim,
                           d_ff=spec.ffn_size, num_layers=spec.num_encoder_layers,
                           num_decoder_layers=spec.num_decoder_layers, num_heads=spec.num_heads,
                           dropout_rate=0.0, feed_forward_proj="relu")
    if spec.family == "opt":
        return tf.OPTConfig(vocab_size=spec.vocab_size, hidden_size=spec.hidden_size,
                            num_hidden_layers=spec.num_decoder_layers, ffn_dim=spec.ffn_size,
                            num_attention_heads=spec.num_heads, dropout=0.0,
                            max_position_embeddings=spec.learned_positions - OPT_POSITION_OFFSET,
                            word_embed_proj_dim=spec.hidden_size, do_layer_norm_before=True)
    if spec.family == "gpt":
        return tf.GPT2Config(vocab_size=spec.vocab_size, n_embd=spec.hidden_size,
                             n_layer=spec.num_decoder_layers, n_head=spec.num_heads,
                             n_inner=spec.ffn_size, n_positions=spec.learned_positions,
                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                             bos_token_id=spec.vocab_size - 1, eos_token_id=spec.vocab_size - 1)
    raise UserError(f"model.family: '{spec.family}' has no real engine; valid: t5, opt, gpt")


def build_hf_model(spec: ModelSpec, seed: int = 0, dtype: torch.dtype = torch.float32):
    """The HF model of `spec` with weights drawn from HF's own initialiser under `seed`."""
    import transformers as tf
    cls = {"t5": tf.T5ForConditionalGeneration, "opt": tf.OPTForCausalLM, "gpt": tf.GPT2LMHeadModel}
    if spec.family not in cls:
        raise UserError(f"model.family: '{spec.family}' has no real engine; valid: {', '.join(cls)}")
    torch.manual_seed(seed)
    model = cls[spec.family](hf_config(spec))
    return model.to(dtype).eval()


@lru_cache(maxsize=4)
def _cached_hf(spec: ModelSpec, seed: int):
    return build_hf_model(spec, seed)


# ---- extraction and TP sharding ----------------------------------------------------------------
def _rows(w: torch.Tensor, rank: int, tp: int) -> torch.Tensor:
    n = w.shape[0] // tp
    return w[rank * n:(rank + 1) * n].contiguous()


def _cols(w: torch.Tensor, rank: int, tp: int) -> torch.Tensor:
    n = w.shape[1] // tp
    return w[:, rank * n:(rank + 1) * n].contiguous()


def _vec(b, rank: int, tp: int):
    return None if b is None else _rows(b.detach(), rank, tp)


def _attn(q, k, v, o, r: int, tp: int, bq=None, bk=None, bv=None, bo=None) -> Attention:
    return Attention(_rows(q, r, tp), _rows(k, r, tp), _rows(v, r, tp), _cols(o, r, tp),
                     _vec(bq, r, tp), _vec(bk, r, tp), _vec(bv, r, tp),
                     None if bo is None else bo.detach().clone())


def _ln(m, eps: float | None = None) -> Norm:
    bias = getattr(m, "bias", None)
    e = eps if eps is not None else getattr(m, "eps", getattr(m, "variance_epsilon", 1e-6))
    return Norm(m.weight.detach().clone(), None if bias is None else bias.detach().clone(), float(e))


def _t5_layers(stack, r: int, tp: int, decoder: bool) -> tuple[Layer, ...]:
    out = []
    for blk in stack.block:
        sa = blk.layer[0]
        a = sa.SelfAttention
        attn = _attn(a.q.weight, a.k.weight, a.v.weight, a.o.weight, r, tp)
        cross = ln_cross = None
        if decoder:
            ca = blk.layer[1]
            x = ca.EncDecAttention
            cross, ln_cross = _attn(x.q.weight, x.k.weight, x.v.weight, x.o.weight, r, tp), _ln(ca.layer_norm)
        ff = blk.layer[-1]
        mlp = MLP(_rows(ff.DenseReluDense.wi.weight, r, tp), None,
                  _cols(ff.DenseReluDense.wo.weight, r, tp), None, "relu")
        out.append(Layer(_ln(sa.layer_norm), attn, _ln(ff.layer_norm), mlp, ln_cross, cross))
    return tuple(out)


def _t5(spec: ModelSpec, m, r: int, tp: int) -> dict:
    enc_bias = m.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.detach()
    dec_bias = m.decoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.detach()
    return dict(attn_scale=1.0, tok_emb=m.shared.weight.detach().clone(), pos_emb=None,
                encoder=_t5_layers(m.encoder, r, tp, False), decoder=_t5_layers(m.decoder, r, tp, True),
                enc_final=_ln(m.encoder.final_layer_norm), final=_ln(m.decoder.final_layer_norm),
                enc_rel_bias=_cols(enc_bias, r, tp), dec_rel_bias=_cols(dec_bias, r, tp),
                eos_id=int(m.config.eos_token_id), decoder_start_id=int(getattr(m.config, "decoder_start_token_id", None) or m.config.pad_token_id or 0),
                head_scale=spec.hidden_size ** -0.5 if m.config.scale_decoder_outputs else 1.0)


def _opt(spec: ModelSpec, m, r: int, tp: int) -> dict:
    dec = m.model.decoder
    layers = []
    for lay in dec.layers:
        a = lay.self_attn
        attn = _attn(a.q_proj.weight, a.k_proj.weight, a.v_proj.weight, a.out_proj.weight, r, tp,
                     a.q_proj.bias, a.k_proj.bias, a.v_proj.bias, a.out_proj.bias)
        mlp = MLP(_rows(lay.fc1.weight, r, tp), _vec(lay.fc1.bias, r, tp), _cols(lay.fc2.weight, r, tp),
                  lay.fc2.bias.detach().clone(), "relu")
        layers.append(Layer(_ln(lay.self_attn_layer_norm), attn, _ln(lay.final_layer_norm), mlp))
    return dict(attn_scale=spec.head_dim ** -0.5, tok_emb=dec.embed_tokens.weight.detach().clone(),
                pos_emb=dec.embed_positions.weight.detach().clone(), encoder=(), decoder=tuple(layers),
                enc_final=None, final=_ln(dec.final_layer_norm), enc_rel_bias=None, dec_rel_bias=None,
                eos_id=int(m.config.eos_token_id), decoder_start_id=0, head_scale=1.0)


def _gpt(spec: ModelSpec, m, r: int, tp: int) -> dict:
    tr, h = m.transformer, spec.hidden_size
    layers = []
    for blk in tr.h:
        w = blk.attn.c_attn.weight.detach().t()          # Conv1D [in, 3h] -> Linear [3h, in]
        b = blk.attn.c_attn.bias.detach()
        attn = _attn(w[:h], w[h:2 * h], w[2 * h:], blk.attn.c_proj.weight.detach().t(), r, tp,
                     b[:h], b[h:2 * h], b[2 * h:], blk.attn.c_proj.bias)
        mlp = MLP(_rows(blk.mlp.c_fc.weight.detach().t(), r, tp), _vec(blk.mlp.c_fc.bias, r, tp),
                  _cols(blk.mlp.c_proj.weight.detach().t(), r, tp), blk.mlp.c_proj.bias.detach().clone(),
                  "gelu_new")
        layers.append(Layer(_ln(blk.ln_1), attn, _ln(blk.ln_2), mlp))
    return dict(attn_scale=spec.head_dim ** -0.5, tok_emb=tr.wte.weight.detach().clone(),
                pos_emb=tr.wpe.weight.detach().clone(), encoder=(), decoder=tuple(layers),
                enc_final=None, final=_ln(tr.ln_f), enc_rel_bias=None, dec_rel_bias=None,
                eos_id=int(m.config.eos_token_id), decoder_start_id=0, head_scale=1.0)


def extract(spec: ModelSpec, hf_model, tp_degree: int = 1, tp_rank: int = 0) -> Weights:
    """Our layout of `hf_model`'s weights for rank `tp_rank` of a TP group of `tp_degree`."""
    spec.check_tp(tp_degree)
    fn = {"t5": _t5, "opt": _opt, "gpt": _gpt}[spec.family]
    with torch.no_grad():
        parts = fn(spec, hf_model, tp_rank, tp_degree)
    return Weights(spec=spec, family=spec.family, tp_degree=tp_degree, tp_rank=tp_rank,
                   local_heads=spec.num_heads // tp_degree, head_dim=spec.head_dim, **parts)


def load_weights(spec: ModelSpec, seed: int = 0, tp_degree: int = 1, tp_rank: int = 0,
                 dtype: torch.dtype = torch.float32, device: str = "cpu") -> Weights:
    """Seeded model -> this rank's shard (the HF model is built on the CPU once per process,
    then the shard is cast and moved)."""
    with torch.device("cpu"):
        w = extract(spec, _cached_hf(spec, seed), tp_degree, tp_rank)
    if dtype == torch.float32 and device == "cpu":
        return w
    return to_dtype(w, dtype, device)


def to_dtype(obj, dtype: torch.dtype | None = None, device: str | None = None):
    """A copy of a weights tree with every floating tensor cast (float64 for reference tests)
    and every tensor moved to `device` (the worker's GPU on a CUDA cluster)."""
    if isinstance(obj, torch.Tensor):
        t = obj.to(dtype) if dtype is not None and obj.is_floating_point() else obj
        return t.to(device) if device is not None else t
    if isinstance(obj, tuple):
        return tuple(to_dtype(o, dtype, device) for o in obj)
    if isinstance(obj, (Weights, Layer, Attention, MLP, Norm)):
        return type(obj)(**{n: to_dtype(getattr(obj, n), dtype, device) for n in obj.__dataclass_fields__})
    return obj


DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16}
DEVICE_DTYPES = {"cpu": ("float32", "float64"), "cuda": tuple(DTYPES)}   # float16: CUDA only


def check_dtype(dtype: str, device: str) -> None:
    """`runner.dtype` against `runner.device`: one line naming the field and the allowed values
    (float16 runs on CUDA only; CPU half-precision kernels are slow and partly missing)."""
    allowed = DEVICE_DTYPES.get(device, ())
    if dtype not in allowed:
        raise UserError(f"runner.dtype: '{dtype}' must be one of {', '.join(allowed)} on runner.device={device}"
                        + (" (float16 needs runner.device=cuda)" if dtype == "float16" else ""))


def cached_weights(ctx, spec: ModelSpec, seed: int, tp: int, r: int, dtype: str = "float32") -> Weights:
    """Rank r's shard at TP `tp`, built once per worker process (`ctx.cache` of the pool's
    WorkerContext; runs and profiles share it)."""
    key = ("w", spec, seed, tp, r, dtype)
    if key not in ctx.cache:
        ctx.cache[key] = load_weights(spec, seed, tp, r, DTYPES[dtype], ctx.device)
    return ctx.cache[key]
