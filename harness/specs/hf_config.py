"""A local Hugging Face `config.json` -> ModelSpec (`model.hf_config=<file or folder>`).

The file is read here (so a bad path or bad JSON is one line naming `model.hf_config`) and
parsed by transformers' own config class for its `model_type` (`CONFIG_MAPPING[model_type]`,
as `AutoConfig` does), so defaults the file leaves out (GPT-2's `n_inner`, T5's
`num_decoder_layers`, ...) are transformers'. Nothing is downloaded. transformers is imported
only here, inside the function: `import harness` stays fast.

One function per family below maps the HF fields (named as in the config classes) to
ModelSpec's; what ModelSpec cannot say is noted there, with its size.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import UserError, unknown_name
from harness.specs.models import ModelSpec, with_overrides

KEY = "model.hf_config"


def _opt(c: Any, raw: dict) -> dict:
    # OPTConfig: hidden_size, num_hidden_layers, num_attention_heads, ffn_dim, vocab_size,
    # enable_bias, tie_word_embeddings; the learned table has max_position_embeddings + 2 rows
    # (OPTLearnedPositionalEmbedding's offset). word_embed_proj_dim != hidden_size (opt-350m:
    # 512 vs 1024) narrows the token embedding and adds project_in/out: not expressible, counted
    # at hidden_size (equal for every OPT but 350m).
    return dict(family="opt", num_decoder_layers=c.num_hidden_layers, hidden_size=c.hidden_size,
                num_heads=c.num_attention_heads, ffn_size=c.ffn_dim, vocab_size=c.vocab_size,
                learned_positions=c.max_position_embeddings + 2, bias=getattr(c, "enable_bias", True),
                tied_embeddings=c.tie_word_embeddings)


def _gpt2(c: Any, raw: dict) -> dict:
    # GPT2Config: n_embd, n_layer, n_head, n_inner (null: 4 * n_embd), vocab_size, n_positions
    # learned positions, biases and LayerNorms as ModelSpec's gpt family.
    return dict(family="gpt", num_decoder_layers=c.n_layer, hidden_size=c.n_embd, num_heads=c.n_head,
                ffn_size=c.n_inner or 4 * c.n_embd, vocab_size=c.vocab_size, learned_positions=c.n_positions,
                tied_embeddings=c.tie_word_embeddings)


def _gptj(c: Any, raw: dict) -> dict:
    # GPTJConfig: n_embd, n_layer, n_head, n_inner (null: 4 * n_embd), vocab_size; rotary
    # (rotary_dim of each head), so no position table; tie_word_embeddings false (a separate LM
    # head). GPT-J's q/k/v/out have no bias and each block one LayerNorm (attention and MLP in
    # parallel), while its LM head has a bias; ModelSpec's gpt family counts biases on all four
    # and two LayerNorms, no LM-head bias: 0.03% under GPT-J-6B's published 6,053,381,344.
    return dict(family="gpt", num_decoder_layers=c.n_layer, hidden_size=c.n_embd, num_heads=c.n_head,
                ffn_size=c.n_inner or 4 * c.n_embd, vocab_size=c.vocab_size, learned_positions=0,
                tied_embeddings=c.tie_word_embeddings)


def _gpt_neox(c: Any, raw: dict) -> dict:
    # GPTNeoXConfig: hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
    # vocab_size; rotary (rotary_pct of each head), no position table; biases (attention_bias,
    # the MLP's always); tie_word_embeddings false (embed_out). use_parallel_residual changes the
    # order of the block, not its weights.
    return dict(family="gpt", num_decoder_layers=c.num_hidden_layers, hidden_size=c.hidden_size,
                num_heads=c.num_attention_heads, ffn_size=c.intermediate_size, vocab_size=c.vocab_size,
                learned_positions=0, tied_embeddings=c.tie_word_embeddings)


def _llama(c: Any, raw: dict) -> dict:
    # LlamaConfig / MistralConfig / Qwen2Config: hidden_size, num_hidden_layers,
    # num_attention_heads, num_key_value_heads (GQA; equal to the heads: 0, ModelSpec's "as many
    # as the heads"), head_dim (null: hidden_size / heads), intermediate_size of the SwiGLU MLP,
    # vocab_size, RMSNorm, rotary, tie_word_embeddings. No biases: Llama's attention_bias and
    # mlp_bias are false in the published models; Qwen2's q/k/v do have biases (hard-wired in its
    # model code, 28 * 4608 = 0.002% of Qwen2-7B), which ModelSpec's one `bias` cannot say apart.
    heads = c.num_attention_heads
    kv_heads = c.num_key_value_heads or heads
    return dict(family="llama", num_decoder_layers=c.num_hidden_layers, hidden_size=c.hidden_size,
                num_heads=heads, head_dim=getattr(c, "head_dim", None) or c.hidden_size // max(heads, 1),
                ffn_size=c.intermediate_size, vocab_size=c.vocab_size, num_kv_heads=0 if kv_heads == heads else kv_heads,
                gated_mlp=True, bias=False, tied_embeddings=c.tie_word_embeddings)


def _t5(c: Any, raw: dict) -> dict:
    # T5Config: d_model, d_kv, d_ff, num_heads, num_layers (encoder), num_decoder_layers (null:
    # num_layers), vocab_size; feed_forward_proj "gated-gelu" (T5 v1.1) is a gated MLP
    # (is_gated_act); no biases, RMSNorm, relative position biases (32 buckets x heads, twice:
    # not counted, 8k parameters in t5-11b). The LM head: the file's tie_word_embeddings (T5 v1.1:
    # false, a separate lm_head; absent: true) -- transformers 5's T5Config sets its attribute to
    # true whatever the file says.
    return dict(family="t5", num_encoder_layers=c.num_layers, num_decoder_layers=c.num_decoder_layers,
                hidden_size=c.d_model, num_heads=c.num_heads, head_dim=c.d_kv, ffn_size=c.d_ff,
                vocab_size=c.vocab_size, gated_mlp=bool(c.is_gated_act), bias=False,
                tied_embeddings=raw.get("tie_word_embeddings", True) is not False)


# HF model_type -> its mapping (ModelSpec's family: opt, gpt, gpt, gpt, llama x3, t5)
MODEL_TYPES: dict[str, Callable[[Any, dict], dict]] = {
    "opt": _opt, "gpt2": _gpt2, "gptj": _gptj, "gpt_neox": _gpt_neox,
    "llama": _llama, "mistral": _llama, "qwen2": _llama, "t5": _t5,
}


def config_file(path: str | Path) -> Path:
    """The config.json that `path` names: the file itself, or the one in that folder."""
    p = Path(str(path)).expanduser()
    return p / "config.json" if p.is_dir() else p


def read_config(file: Path) -> dict:
    """The JSON object of `file`; unreadable, not JSON or not an object: one line naming it."""
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{KEY}: cannot read '{file}': {getattr(e, 'strerror', None) or e}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{KEY}: '{file}' is not valid JSON ({e.msg}, line {e.lineno} column {e.colno})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{KEY}: '{file}' is not a JSON object (a Hugging Face config.json)")
    return raw


def _hf_config(raw: dict, file: Path) -> tuple[str, Any]:
    """`raw`'s model_type and transformers' config object for it."""
    model_type = raw.get("model_type")
    if model_type is None:
        raise UserError(f"{KEY}: '{file}' has no model_type; supported: {', '.join(sorted(MODEL_TYPES))}")
    if not isinstance(model_type, str) or model_type not in MODEL_TYPES:
        raise UserError(f"{unknown_name(f'{KEY}: model_type', model_type, MODEL_TYPES)} (in {file})")
    from transformers import CONFIG_MAPPING

    try:
        return model_type, CONFIG_MAPPING[model_type].from_dict(dict(raw))
    except Exception as e:    # transformers' own checks (types, values): their message, on one line
        raise UserError(f"{KEY}: '{file}' is not a valid {model_type} config: {' '.join(str(e).split())}") from None


def _default_name(raw: dict, file: Path) -> str:
    """The config's `_name_or_path`, its last part (facebook/opt-13b -> opt-13b); else the folder's."""
    given = str(raw.get("_name_or_path") or "").rstrip("/").rpartition("/")[2]
    return given or file.resolve().parent.name


def spec_from_hf_config(path: str | Path, name: str | None = None, **overrides: object) -> ModelSpec:
    """The ModelSpec of the Hugging Face config.json at `path` (a file or its folder), named
    `name` (default: the config's `_name_or_path` or the folder's name), with `overrides` (any
    ModelSpec fields) replacing the config's values (harness.specs.models.with_overrides)."""
    file = config_file(path)
    raw = read_config(file)
    model_type, config = _hf_config(raw, file)
    fields = MODEL_TYPES[model_type](config, raw)
    fields.setdefault("num_encoder_layers", 0)
    fields.setdefault("head_dim", fields["hidden_size"] // max(fields["num_heads"], 1))
    return with_overrides(ModelSpec(name=name or _default_name(raw, file), **fields), **overrides)
