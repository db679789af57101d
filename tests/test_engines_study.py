"""`harness engines` (issue 20 point 4): the ratio table, ctranslate2's mismatches by batch, the
float64 replay of a disagreement, and (slow) the CI-sized study end to end."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from helpers import tiny

from harness.engine import layers as L
from harness.runner.engine_compare import _logits, divergence
from harness.studies.engines import TARGET_RATIO, _one_token_batches, ratios


def test_ratios_take_the_median_of_each_rounds_pair() -> None:
    # round ratios 12/10 = 1.2, 15/10 = 1.5, 9/10 = 0.9 -> median 1.2, min 0.9, max 1.5
    rows = [("m", 1, r, e, v) for r, (a, b) in enumerate(((10, 12), (10, 15), (10, 9)))
            for e, v in (("torch", a), ("ctranslate2", b))]
    df = pd.DataFrame(rows, columns=["model", "threads", "round", "engine", "throughput_seq_s"])
    out = ratios(df).iloc[0]
    assert out.ratio_ct2_over_ours == pytest.approx(1.2)
    assert (out.ratio_min, out.ratio_max, out.rounds) == (pytest.approx(0.9), pytest.approx(1.5), 3)
    assert out.ours_seq_s == 10 and out.ct2_seq_s == 12
    assert bool(out.within_target) == (1.2 <= TARGET_RATIO)


def test_mismatches_are_counted_by_the_batch_that_holds_a_one_token_prompt() -> None:
    prompts = [[5, 6], [7], [8, 9], [1, 2], [3, 4, 5], [6, 7]]     # batch 2 of size 2 = requests 0-1
    hf = [[1], [2], [3], [4], [5], [6]]
    ct2 = [[9], [2], [3], [0], [5], [6]]                            # 0 (with the 1-token prompt) and 3 differ
    assert _one_token_batches(prompts, ct2, hf, 2) == {"ct2_mismatches": 2, "ct2_mismatches_in_one_token_batches": 1}


def test_divergence_reports_the_float64_gap_of_the_two_tokens() -> None:
    spec = tiny("opt")
    from harness.engine.weights import build_hf_model
    hf = build_hf_model(spec, 0).double()
    prompt = [5, 9, 11]
    logits = _logits(hf, spec, prompt, [])
    top2 = torch.topk(logits, 2)
    best, second = int(top2.indices[0]), int(top2.indices[1])
    rows = divergence(spec, [prompt, prompt], [[second], [best]], [[best], [best]], seed=0)
    assert len(rows) == 1 and rows[0]["request"] == 0 and rows[0]["step"] == 0
    # swapping the argmax for the runner-up: their gap is the top-2 gap, independently computed here
    assert rows[0]["gap_a_b_f64"] == pytest.approx(float(top2.values[0] - top2.values[1]), rel=1e-9)
    assert 0 < rows[0]["f32_logit_err"] < 1e-4


def test_append_slots_writes_in_place_until_the_buffer_is_full() -> None:
    c = torch.randn(2, 3, 4, 5)
    a = L.append_slots(c, torch.ones(2, 3, 1, 5))              # full: a new buffer with spare slots
    assert a.shape == (2, 3, 5, 5) and torch.equal(a[:, :, :4], c) and L._room(a) == L.GROW_SLOTS
    b = L.append_slots(a, torch.full((2, 3, 2, 5), 2.0))       # room: same storage, written in place
    assert b.data_ptr() == a.data_ptr() and torch.equal(b[:, :, :5], a) and bool((b[:, :, 5:] == 2).all())
    assert L._room(c) == 0 and L._room(c[:, :, 1:]) == 0       # a plain tensor and its slices have none
    r = L.reserve(c, 3)
    assert torch.equal(r, c) and L._room(r) == 3 and L._room(r[:, :, 2:]) == 3


@pytest.mark.slow
def test_engines_study_end_to_end(tmp_path, monkeypatch) -> None:
    """CI-sized `harness engines`: opt-20m, 8 requests, 1 thread, 1 round. Our float32 tokens
    equal HF generate's; every number of the summary is finite."""
    from harness.cli.real import engines
    monkeypatch.chdir(tmp_path)
    out = engines(["experiment=engines_tiny", "study.num_requests=8", "study.threads=[1]", "study.rounds=1",
                   "runner.progress=false"])
    s = json.loads((tmp_path / "runs" / "engines" / "summary.json").read_text())
    assert s["tokens"][0]["ours_vs_hf_f32"] == 1.0 and s["tokens"][0]["ours_deterministic"]
    r = s["ratios"][0]
    assert r["ours_seq_s"] > 0 and r["ct2_seq_s"] > 0 and r["rounds"] == 1
    st = s["steps"][0]
    assert st["step_s"] > 0 and st["bandwidth_floor_s"] > 0 and 0.99 < sum(st[f"share_{k}"] for k in
                                                                             ("gemm", "attention", "cache", "other")) < 1.01
    assert out["runs_csv"].endswith("runs.csv")


def test_compaction_and_joins_leave_room_for_the_next_appends() -> None:
    """SeqState.select / concat write their self caches into buffers with spare slots, so the
    steps after a query leaves or joins append in place; values and zero padding as before."""
    b, h, n, d = 3, 2, 5, 4
    k = [torch.randn(b, h, n, d)]
    valid = torch.ones(b, n, dtype=torch.bool)
    valid[0, :2] = False                                   # row 0 holds 3 slots, right-aligned
    pos = torch.arange(n).expand(b, n).clone()
    st = L.SeqState([0, 1, 2], k, [t.clone() for t in k], valid, pos, torch.full((b,), n))
    sel = st.select([0, 2])
    assert torch.equal(sel.k[0], k[0][[0, 2]]) and L._room(sel.k[0]) == L.GROW_SLOTS
    short = L.SeqState([9], [torch.randn(1, h, 2, d)], [torch.randn(1, h, 2, d)], torch.ones(1, 2, dtype=torch.bool),
                       torch.arange(2)[None], torch.tensor([2]))
    j = L.SeqState.concat(sel, short)
    assert j.k[0].shape == (3, h, n, d) and L._room(j.k[0]) == L.GROW_SLOTS
    assert torch.equal(j.k[0][:2], sel.k[0]) and torch.equal(j.k[0][2, :, n - 2:], short.k[0][0])
    assert bool((j.k[0][2, :, :n - 2] == 0).all())        # left padding is zeros (masked, finite)
