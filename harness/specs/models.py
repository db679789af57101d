"""Transformer model shapes and the quantities derived from them.

The six paper models (ExeGPT §7 table) are registered by name; any other model can be
declared by shape (families t5 / opt / gpt / llama). Parameter counts are computed from the
shapes, never typed in: tests hold them against published totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from harness.errors import UserError, check, unknown_name

FAMILIES = ("t5", "opt", "gpt", "llama")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    family: str                      # t5 | opt | gpt | llama
    num_encoder_layers: int          # E (0 for decoder-only)
    num_decoder_layers: int          # D
    hidden_size: int                 # d_model
    num_heads: int
    head_dim: int                    # d_kv (T5-11B: 128 with d_model 1024)
    ffn_size: int                    # d_ff
    vocab_size: int
    num_kv_heads: int = 0            # grouped KV heads (llama); 0 -> num_heads
    gated_mlp: bool = False          # llama SwiGLU: up, gate, down projections
    bias: bool = True                # linear-layer biases (OPT/GPT yes, T5/llama no)
    learned_positions: int = 0       # rows of a learned position table (OPT/GPT: 2048)
    tied_embeddings: bool = True     # LM head shares the token embedding
    dtype_bytes: int = 2             # FP16 (ExeGPT §7: all models FP16)
    published_params_b: float = field(default=0.0, compare=False)  # for tests/docs only
    _hash: int = field(default=0, init=False, compare=False, repr=False)

    def __hash__(self) -> int:   # cached: specs key the cost model's memo on hot paths
        return self._hash

    def __post_init__(self) -> None:
        check(self.family in FAMILIES, "model.family", f"'{self.family}' not in {', '.join(FAMILIES)}")
        for f in ("num_decoder_layers", "hidden_size", "num_heads", "head_dim", "ffn_size", "vocab_size"):
            check(getattr(self, f) > 0, f"model.{f}", f"must be a positive integer, got {getattr(self, f)}")
        check(self.num_encoder_layers >= 0, "model.num_encoder_layers", "must be >= 0")
        check(self.kv_heads > 0 and self.num_heads % self.kv_heads == 0, "model.num_kv_heads",
              f"{self.num_kv_heads} must divide num_heads={self.num_heads}")
        if self.family != "t5":
            check(self.hidden_size % self.num_heads == 0, "model.num_heads",
                  f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
            check(self.num_encoder_layers == 0, "model.num_encoder_layers",
                  f"family '{self.family}' is decoder-only; use 0")
        key = tuple(getattr(self, f.name) for f in fields(self) if f.compare)
        object.__setattr__(self, "_hash", hash(key))

    # ---- structure ---------------------------------------------------------------
    @property
    def is_encoder_decoder(self) -> bool:
        return self.num_encoder_layers > 0

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def q_dim(self) -> int:            # width of the query/attention output projection
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:           # width of each of K and V
        return self.kv_heads * self.head_dim

    @property
    def num_layers(self) -> int:
        return self.num_encoder_layers + self.num_decoder_layers

    # ---- parameters (counted from shapes) ----------------------------------------
    def _linear(self, n_in: int, n_out: int) -> int:
        return n_in * n_out + (n_out if self.bias else 0)

    def _norm(self) -> int:            # LayerNorm: gain + bias; RMSNorm (t5/llama): gain only
        return self.hidden_size * (1 if self.family in ("t5", "llama") else 2)

    def attention_params(self) -> int:
        h = self.hidden_size
        return (self._linear(h, self.q_dim) + 2 * self._linear(h, self.kv_dim)
                + self._linear(self.q_dim, h))

    def mlp_params(self) -> int:
        h, f = self.hidden_size, self.ffn_size
        n_up = 2 if self.gated_mlp else 1
        return n_up * self._linear(h, f) + self._linear(f, h)

    def encoder_layer_params(self) -> int:
        return self.attention_params() + self.mlp_params() + 2 * self._norm()

    def decoder_layer_params(self) -> int:
        cross = self.attention_params() + self._norm() if self.is_encoder_decoder else 0
        return self.attention_params() + self.mlp_params() + 2 * self._norm() + cross

    def embedding_params(self) -> int:
        emb = self.vocab_size * self.hidden_size + self.learned_positions * self.hidden_size
        if not self.tied_embeddings:
            emb += self.vocab_size * self.hidden_size
        return emb

    def num_params(self) -> int:
        final_norms = self._norm() * (2 if self.is_encoder_decoder else 1)
        return (self.num_encoder_layers * self.encoder_layer_params()
                + self.num_decoder_layers * self.decoder_layer_params()
                + self.embedding_params() + final_norms)

    # ---- per-token quantities -----------------------------------------------------
    def kv_bytes_per_token_per_layer(self) -> int:
        """K and V of one token in one (self-attention) layer: 2 * kv_dim * bytes."""
        return 2 * self.kv_dim * self.dtype_bytes

    def kv_bytes_per_token(self) -> int:
        """Self-attention KV cache of one decoded token across the decoder stack."""
        return self.num_decoder_layers * self.kv_bytes_per_token_per_layer()

    def self_cache_len(self, context_len: float, input_len: float) -> float:
        """Tokens in the decoder's self-attention cache of a sequence that has seen
        `context_len` tokens (input + generated): all of them in a decoder-only model, only
        the generated ones in an encoder-decoder model, whose input is read through the
        cross-attention cache (the runner keeps the two apart: harness.engine.layers.SeqState)."""
        return context_len - input_len if self.is_encoder_decoder else context_len

    def cross_kv_bytes_per_input_token(self) -> int:
        """T5: cross-attention K/V of one encoder token, kept for every decoder layer."""
        return self.kv_bytes_per_token() if self.is_encoder_decoder else 0

    def check_tp(self, tp_degree: int) -> None:
        """Megatron TP splits heads (and KV heads) and the FFN across `tp_degree` GPUs."""
        check(tp_degree >= 1, "tp_degree", f"must be >= 1, got {tp_degree}")
        check(self.num_heads % tp_degree == 0, "tp_degree",
              f"{tp_degree} does not divide num_heads={self.num_heads} of {self.name}")
        check(self.ffn_size % tp_degree == 0, "tp_degree",
              f"{tp_degree} does not divide ffn_size={self.ffn_size} of {self.name}")


def _gpt3(name: str, layers: int, hidden: int, heads: int, published: float) -> ModelSpec:
    # GPT-3 shapes: ExeGPT §7 table (layers, hidden, heads); FFN = 4*hidden, vocab 50257 and
    # 2048 learned positions as in Brown et al. 2020 (Table 2.1) / the Megatron GPT-3 configs.
    return ModelSpec(name=name, family="gpt", num_encoder_layers=0, num_decoder_layers=layers,
                     hidden_size=hidden, num_heads=heads, head_dim=hidden // heads,
                     ffn_size=4 * hidden, vocab_size=50257, learned_positions=2048,
                     published_params_b=published)


MODELS: dict[str, ModelSpec] = {
    # T5-11B (t5-11b config of Raffel et al. 2020; ExeGPT §7): 24+24 layers, d_model 1024,
    # d_ff 65536, 128 heads of d_kv 128, vocab 32128, ReLU FFN, no biases, tied embeddings.
    "t5-11b": ModelSpec(name="t5-11b", family="t5", num_encoder_layers=24, num_decoder_layers=24,
                        hidden_size=1024, num_heads=128, head_dim=128, ffn_size=65536,
                        vocab_size=32128, bias=False, published_params_b=11.3),
    # OPT-13B (Zhang et al. 2022, Table 1; HF facebook/opt-13b config): 40 layers, 5120 hidden,
    # 40 heads, FFN 20480, vocab 50272, 2048 (+2 offset) learned positions.
    "opt-13b": ModelSpec(name="opt-13b", family="opt", num_encoder_layers=0, num_decoder_layers=40,
                         hidden_size=5120, num_heads=40, head_dim=128, ffn_size=20480,
                         vocab_size=50272, learned_positions=2050, published_params_b=12.9),
    "gpt3-39b": _gpt3("gpt3-39b", 48, 8192, 64, 39.0),
    "gpt3-101b": _gpt3("gpt3-101b", 80, 10240, 80, 101.0),
    "gpt3-175b": _gpt3("gpt3-175b", 96, 12288, 96, 174.6),
    "gpt3-341b": _gpt3("gpt3-341b", 120, 15360, 120, 341.0),
}


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise unknown_name("model", name, MODELS)
    return MODELS[name]


def _check_fields(d: dict) -> None:
    """Unknown keys of a model are one error naming them and the valid ones."""
    allowed = {f.name for f in fields(ModelSpec) if f.init}
    extra = set(d) - allowed
    if extra:
        raise UserError(f"model: unknown field(s) {', '.join(sorted(extra))}; valid: {', '.join(sorted(allowed))}")


# Fields that leave the shape, and so a published parameter total, as they are.
SHAPE_FREE = frozenset({"name", "dtype_bytes", "published_params_b"})


def with_overrides(spec: ModelSpec, **changes: object) -> ModelSpec:
    """`spec` with some fields replaced (`model=opt-13b model.dtype_bytes=1`, or the fields set
    beside `model.hf_config`). head_dim follows hidden_size / num_heads when it was their
    quotient and is not itself set; a changed shape drops published_params_b unless it is set."""
    _check_fields(changes)
    if not changes:
        return spec
    if ("head_dim" not in changes and {"hidden_size", "num_heads"} & set(changes)
            and spec.head_dim * spec.num_heads == spec.hidden_size):
        heads = changes.get("num_heads", spec.num_heads)
        changes["head_dim"] = changes.get("hidden_size", spec.hidden_size) // heads if heads > 0 else 0
    if "published_params_b" not in changes and set(changes) - SHAPE_FREE:
        changes["published_params_b"] = 0.0
    return replace(spec, **changes)


def model_from_dict(d: dict) -> ModelSpec:
    """A model declared by shape in config; unknown keys are errors naming the key."""
    _check_fields(d)
    missing = {"name", "family", "num_decoder_layers", "hidden_size", "num_heads", "ffn_size",
               "vocab_size"} - set(d)
    if missing:
        raise UserError(f"model: missing field(s) {', '.join(sorted(missing))}")
    d = dict(d)
    d.setdefault("num_encoder_layers", 0)
    d.setdefault("head_dim", d["hidden_size"] // d["num_heads"] if d["num_heads"] else 0)
    return ModelSpec(**d)
