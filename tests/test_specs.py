"""Model and cluster specs: parameter counts vs published totals, KV sizes by hand (ExeGPT §7)."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from harness.specs import MODELS, ModelSpec, get_cluster, get_model

# Published totals (billions): T5-11B (Raffel et al. 2020), OPT-13B (Zhang et al. 2022),
# GPT-3 175B (Brown et al. 2020); the other GPT-3 sizes are checked against their names.
PUBLISHED_B = {"t5-11b": 11.3, "opt-13b": 12.9, "gpt3-39b": 39.0, "gpt3-101b": 101.0,
               "gpt3-175b": 174.6, "gpt3-341b": 341.0}


def one_line_error(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, f"error is not one line: {msg!r}"
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


def llama_like(num_kv_heads: int) -> ModelSpec:
    # Llama-3-8B-like shape, declared here (not in the registry).
    return ModelSpec(name=f"llama-kv{num_kv_heads}", family="llama", num_encoder_layers=0,
                     num_decoder_layers=32, hidden_size=4096, num_heads=32, head_dim=128,
                     ffn_size=14336, vocab_size=128256, num_kv_heads=num_kv_heads,
                     gated_mlp=True, bias=False, tied_embeddings=False)


def test_paper_models_are_registered():
    assert set(MODELS) == set(PUBLISHED_B)


@pytest.mark.parametrize("name", list(PUBLISHED_B))
def test_param_count_from_shapes_matches_published(name):
    got_b = get_model(name).num_params() / 1e9
    assert got_b == pytest.approx(PUBLISHED_B[name], rel=0.02)


def test_kv_bytes_per_token_opt13b_by_hand():
    # 2 (K and V) * 40 layers * 5120 hidden * 2 bytes (FP16)
    m = get_model("opt-13b")
    assert m.kv_bytes_per_token() == 2 * 40 * 5120 * 2 == 819_200
    assert m.cross_kv_bytes_per_input_token() == 0


def test_kv_bytes_t5_uses_heads_times_dkv_not_d_model():
    m = get_model("t5-11b")
    assert m.kv_dim == 128 * 128 == 16_384 != m.hidden_size
    assert m.kv_bytes_per_token_per_layer() == 2 * 16_384 * 2
    assert m.kv_bytes_per_token() == 24 * 2 * 16_384 * 2        # decoder self-attention only
    assert m.cross_kv_bytes_per_input_token() == 24 * 2 * 16_384 * 2
    assert m.is_encoder_decoder and m.num_layers == 48


def test_gqa_gives_four_times_less_kv():
    gqa, mha = llama_like(8), llama_like(0)
    assert mha.kv_heads == 32 and gqa.kv_heads == 8
    assert mha.kv_bytes_per_token() == 4 * gqa.kv_bytes_per_token()
    assert gqa.kv_bytes_per_token() == 32 * 2 * 8 * 128 * 2
    assert llama_like(8).num_params() / 1e9 == pytest.approx(8.03, rel=0.02)  # Llama-3-8B


def test_decoder_layer_params_are_12h2_plus_biases_and_norms():
    m = get_model("opt-13b")
    h = m.hidden_size
    # QKV + out: 4h^2 + 4h; FFN h->4h->h: 8h^2 + 5h; two LayerNorms: 4h.
    assert m.decoder_layer_params() == 12 * h * h + 13 * h
    assert m.decoder_layer_params() / (12 * h * h) == pytest.approx(1.0, rel=1e-3)


# ---- errors -----------------------------------------------------------------------------
def test_unknown_model_suggests_and_lists():
    with pytest.raises(UserError) as e:
        get_model("opt-14b")
    one_line_error(e, "model", "did you mean 'opt-13b'", *MODELS)


def test_hidden_not_divisible_by_heads_names_num_heads():
    with pytest.raises(UserError) as e:
        ModelSpec(name="bad", family="opt", num_encoder_layers=0, num_decoder_layers=2,
                  hidden_size=1000, num_heads=3, head_dim=333, ffn_size=4000, vocab_size=100)
    one_line_error(e, "num_heads")


def test_check_tp_names_tp_degree():
    m = get_model("opt-13b")
    for ok in (1, 2, 4, 8):
        m.check_tp(ok)
    with pytest.raises(UserError) as e:
        m.check_tp(3)
    one_line_error(e, "tp_degree", "40")


def test_clusters():
    a40x4 = get_cluster("a40x4")
    assert (a40x4.num_nodes, a40x4.gpus_in_node, a40x4.num_gpus) == (1, 4, 4)
    a100x16 = get_cluster("a100x16")
    assert (a100x16.num_nodes, a100x16.gpus_per_node, a100x16.gpu.name) == (2, 8, "a100")
    h100x8 = get_cluster("h100x8")
    assert (h100x8.num_nodes, h100x8.num_gpus, h100x8.gpu.name) == (1, 8, "h100")
    assert get_cluster("a40x48").num_nodes == 6                  # ExeGPT §7: 6 nodes x 8


def test_cluster_errors():
    with pytest.raises(UserError) as e:
        get_cluster("a40x12")
    one_line_error(e, "num_gpus", "12")
    with pytest.raises(UserError) as e:
        get_cluster("tpu4")
    one_line_error(e, "cluster", "tpu4", "a40x4", "a100x16")
