"""REPORT.md's engine section: our torch engine vs ctranslate2 at the same batch, precision and
cores, a decoding step against its memory-bandwidth floor, and where their tokens differ
(`harness engines`, harness/studies/engines.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from harness.results.markdown import markdown_table


def _ratio_table(s: dict) -> str:
    r = pd.DataFrame(s["ratios"])
    show = pd.DataFrame({"model": r.model, "threads (1 process each)": r.threads,
                         "ours (seq/s)": r.ours_seq_s.map("{:.2f}".format),
                         "ctranslate2 (seq/s)": r.ct2_seq_s.map("{:.2f}".format),
                         "ctranslate2 / ours, median [min, max] over rounds": [
                             f"{m:.2f}x [{lo:.2f}, {hi:.2f}]" for m, lo, hi in
                             zip(r.ratio_ct2_over_ours, r.ratio_min, r.ratio_max, strict=True)],
                         "rounds": r.rounds})
    return markdown_table(show)


def _step_table(steps: pd.DataFrame) -> str:
    show = pd.DataFrame({"model": steps.model, "threads": steps.threads,
                         "step (ms)": (1e3 * steps.step_s).map("{:.2f}".format),
                         "weights + KV read (MB)": ((steps.weight_bytes + steps.kv_bytes) / 1e6).map("{:.1f}".format),
                         "read bandwidth (GB/s)": steps.read_bandwidth_gb_s.map("{:.1f}".format),
                         "bandwidth floor (ms)": (1e3 * steps.bandwidth_floor_s).map("{:.2f}".format),
                         "step / floor": steps.over_floor.map("{:.2f}x".format),
                         **{f"{k} share": steps[f"share_{k}"].map("{:.0%}".format)
                            for k in ("gemm", "attention", "cache", "other")}})
    return markdown_table(show)


def _token_lines(s: dict) -> list[str]:
    t = pd.DataFrame(s["tokens"])
    pct = "{:.0%}".format
    show = pd.DataFrame({"model": t.model, "ours = HF generate (float32)": t.ours_vs_hf_f32.map(pct),
                         "ctranslate2 = HF (batch 8)": t.ct2_vs_hf_f32.map(pct),
                         "ctranslate2 = HF (batch 1)": t.ct2_batch1_vs_hf_f32.map(pct),
                         "ctranslate2 mismatches (in batches with a 1-token prompt)": [
                             f"{a} ({b})" for a, b in zip(t.ct2_mismatches, t.ct2_mismatches_in_one_token_batches,
                                                          strict=True)]})
    gap, err = s.get("divergence_median_gap_f64", math.nan), s.get("divergence_median_f32_err", math.nan)
    return [markdown_table(show), "",
            f"At the first differing token of each of the {s.get('divergences')} disagreements, the float64 logits "
            f"of the two tokens differ by a median {gap:.3g}, against a float32 logit error of {err:.2g} there "
            f"({s.get('divergence_near_ties', math.nan):.0%} are near-ties that rounding decides)."]


def engines_section(runs_dir) -> list[str]:
    """The section from runs/engines/summary.json and steps.csv; nothing when not run."""
    d = Path(runs_dir) / "engines"
    if not (d / "summary.json").exists() or not (d / "steps.csv").exists():
        return []
    s = json.loads((d / "summary.json").read_text())
    return ["## Our engine vs ctranslate2 (the FT-equivalent engine; CPU, not in the paper)", "",
            "`harness engines`: FT semantics (batch 8, every sequence decoded to its batch's longest output, EOS "
            "suppressed), float32, the same requests and seeded weights; each run in a fresh process, rounds "
            f"alternating the engines. Target: ctranslate2 within {s.get('target_ratio')}x of ours at the same "
            f"batch, precision and cores; measured max {s.get('max_ratio', math.nan):.2f}x "
            f"({'met' if s.get('all_within_target') else 'NOT met'}).", "",
            _ratio_table(s), "",
            "One decoding step of the whole model (every decoder layer and the LM head) against the time its weight "
            "and KV reads take at the streaming read bandwidth measured in the same process; CPU time by op class "
            "(torch.profiler):", "",
            _step_table(pd.read_csv(d / "steps.csv")), "", *_token_lines(s), ""]
