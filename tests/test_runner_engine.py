"""Our torch engine against HF `generate` (greedy, forced lengths), single process, tiny models.

Tolerances: tokens must be equal (float64 on both sides, so near-ties cannot flip); logits of
the first decoding step within 1e-9 absolute (float64 round-off of two different kernels;
T5: 1e-5, as HF's T5LayerNorm computes its variance in float32 even in a float64 model).
"""

from __future__ import annotations

import pytest
import torch
from helpers import TINY, tiny

from harness.engine import layers as L
from harness.engine.stage import StageModel, StageSlice, generate, split_layers
from harness.engine.weights import build_hf_model, extract
from harness.errors import UserError
from harness.specs.models import ModelSpec, model_from_dict

PROMPT_LENS, OUTPUT_LENS = [5, 1, 12, 7], [6, 3, 9, 2]


def _prompts(spec: ModelSpec) -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(3, spec.vocab_size - 2, (n,), generator=g).tolist() for n in PROMPT_LENS]


def _hf_greedy(hf, spec: ModelSpec, prompt: list[int], n: int) -> list[int]:
    kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1)
    if spec.family == "t5":
        kw["decoder_start_token_id"] = 0
    out = hf.generate(torch.tensor([prompt]), **kw)[0].tolist()
    return out[1:] if spec.family == "t5" else out[len(prompt):]


@pytest.mark.parametrize("family", ["t5", "opt", "gpt"])
def test_tokens_equal_hf_generate(family: str) -> None:
    spec = tiny(family)
    hf = build_hf_model(spec, seed=3).double()
    w = extract(spec, hf)
    prompts = _prompts(spec)
    # one batch with early termination, compaction and unequal prompts
    ours = generate(w, prompts, OUTPUT_LENS, dtype=torch.float64)
    ref = [_hf_greedy(hf, spec, p, n) for p, n in zip(prompts, OUTPUT_LENS, strict=True)]
    assert ours == ref
    assert [len(o) for o in ours] == OUTPUT_LENS


@pytest.mark.parametrize("family", ["t5", "opt", "gpt"])
def test_first_step_logits_equal_hf(family: str) -> None:
    """Stronger than tokens where random weights make greedy output repetitive (T5)."""
    spec = tiny(family)
    hf = build_hf_model(spec, seed=4).double()
    w = extract(spec, hf)
    prompts = _prompts(spec)[:1]
    S = StageModel(w, StageSlice(0, len(w.encoder), 0, len(w.decoder)), torch.float64)
    x, st = S.encode(S.embed_prompts(prompts), prompts, [0])
    if S.t5:
        st = S.cross_state(x, S.prompt_lengths(prompts), [0])
    ours = L.head(w, S.decode(st, S.first_inputs(prompts)))[0]
    with torch.no_grad():
        if family == "t5":
            ref = hf(input_ids=torch.tensor(prompts), decoder_input_ids=torch.tensor([[0]])).logits[0, -1]
        else:
            ref = hf(input_ids=torch.tensor(prompts)).logits[0, -1]
    # HF's T5LayerNorm takes the variance in float32 even in a float64 model: 1e-5 there
    assert (ours - ref).abs().max() < (1e-5 if family == "t5" else 1e-9)


def test_tp_shards_sum_to_the_full_layer() -> None:
    """Megatron split (ExeGPT §4): the partial outputs of 2 shards all-reduce to the TP-1 result."""
    spec = tiny("opt")
    hf = build_hf_model(spec, seed=5).double()
    full, shards = extract(spec, hf), [extract(spec, hf, 2, r) for r in range(2)]
    x = torch.randn(1, 6, spec.hidden_size, dtype=torch.float64)
    seg, pos = L.packed_layout([6])
    mask = L.packed_mask(full, seg, pos, causal=True, dtype=torch.float64)
    ref, _, _ = L.full_block(full, full.decoder[0], x, mask, L.no_allreduce)
    # a TP layer = attention half + MLP half with an all-reduce after each; emulate it
    h = L.norm(x, full.decoder[0].ln1)
    parts = []
    for w in shards:
        a = w.decoder[0].attn
        q = L._heads(torch.nn.functional.linear(h, a.wq, a.bq), w.head_dim)
        k = L._heads(torch.nn.functional.linear(h, a.wk, a.bk), w.head_dim)
        v = L._heads(torch.nn.functional.linear(h, a.wv, a.bv), w.head_dim)
        ctx = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=w.attn_scale)
        parts.append(torch.nn.functional.linear(L._merge(ctx), a.wo))
    x2 = x + sum(parts) + shards[0].decoder[0].attn.bo
    m = [torch.nn.functional.linear(torch.relu(torch.nn.functional.linear(L.norm(x2, w.decoder[0].ln2),
                                                                         w.decoder[0].mlp.w1, w.decoder[0].mlp.b1)),
                                    w.decoder[0].mlp.w2) for w in shards]
    out = x2 + sum(m) + shards[0].decoder[0].mlp.b2
    assert torch.allclose(out, ref, atol=1e-10)


def test_state_join_and_compaction_keep_sequences_apart() -> None:
    spec = tiny("gpt")
    w = extract(spec, build_hf_model(spec, seed=6).double())
    prompts = _prompts(spec)
    S = StageModel(w, StageSlice(0, 0, 0, len(w.decoder)), torch.float64)
    _, a = S.encode(S.embed_prompts(prompts[:2]), prompts[:2], [0, 1])
    _, b = S.encode(S.embed_prompts(prompts[2:]), prompts[2:], [2, 3])
    j = L.SeqState.concat(a, b)
    assert j.ids == [0, 1, 2, 3] and j.valid.shape[1] == max(len(p) for p in prompts) - 1
    assert j.valid.sum(1).tolist() == [len(p) - 1 for p in prompts]
    c = j.select([2])
    assert c.ids == [2] and c.valid.shape[1] == len(prompts[2]) - 1   # unused columns trimmed


def test_split_layers_and_unknown_family() -> None:
    assert split_layers(8, [1, 1]) == [(0, 4), (4, 8)]
    assert split_layers(7, [2.0, 1.0]) == [(0, 5), (5, 7)]
    assert split_layers(3, [1, 1, 1, 1]) == [(0, 1), (1, 2), (2, 3), (3, 3)]
    spec = model_from_dict({**TINY["opt"], "name": "llama-tiny", "family": "llama", "bias": False})
    with pytest.raises(UserError, match="model.family"):
        build_hf_model(spec)
