"""`harness engines`: our torch engine against ctranslate2 (the FT-equivalent engine) at the same
batch, precision and cores; where a decoding step's time goes; where their tokens differ and why
(issue 20, point 4; mechanics in harness/runner/engine_compare.py).

Per model and thread count, `rounds` rounds, each running both engines once (order alternating
between rounds, each run in a fresh process) on the same requests with FT semantics; the ratio
ctranslate2 / ours of each round, median over rounds, is the number (`TARGET_RATIO`: within
1.3x). Tokens: ours and ctranslate2 against HF `generate` in float32, and against each other;
every disagreement is replayed in float64 (`divergence`). The step profile times one decoding
step of the whole model against the memory-bandwidth floor of its weight and KV reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from harness.errors import check
from harness.runner.ct2 import convert
from harness.runner.engine_compare import (
    ct2_static,
    divergence,
    hf_tokens,
    isolated,
    step_profile,
    torch_static,
)
from harness.runner.run import prompts_for
from harness.specs.models import ModelSpec
from harness.workload import get_task
from harness.workload.streams import offline

TARGET_RATIO = 1.3       # issue 20: ctranslate2 at most 1.3x our engine's throughput


@dataclass(frozen=True, slots=True)
class Settings:
    models: tuple[str, ...]
    task: str
    num_requests: int
    batch_size: int
    threads: tuple[int, ...]
    rounds: int
    step_context: int          # cached tokens of the profiled decoding step
    seed: int
    progress: bool
    ct2_dir: Path

    @classmethod
    def from_study(cls, st: dict, seed: int, progress: bool, ct2_dir: Path) -> Settings:
        """The `study` section of harness/conf/experiment/engines*.yaml, validated."""
        check(isinstance(st, dict) and bool(st.get("models")), "study.models",
              "missing; run with experiment=engines or engines_tiny (harness/conf/experiment/)")
        threads = tuple(int(t) for t in st.get("threads", (1, 2)))
        check(all(t >= 1 for t in threads), "study.threads", f"each >= 1, got {list(threads)}")
        return cls(tuple(st["models"]), st.get("task", "T-cpu"), int(st.get("num_requests", 32)),
                   int(st.get("batch_size", 8)), threads, int(st.get("rounds", 3)), int(st.get("step_context", 30)),
                   seed, progress, Path(ct2_dir))


def _runs(spec: ModelSpec, st: Settings, prompts, reqs, model_dir, bar) -> list[dict]:
    rows = []
    for rnd in range(st.rounds):
        for t in st.threads:
            order = ("torch", "ctranslate2") if rnd % 2 == 0 else ("ctranslate2", "torch")
            for eng in order:
                r = (isolated(torch_static, spec, prompts, reqs, st.batch_size, t, st.seed) if eng == "torch"
                     else isolated(ct2_static, spec, model_dir, prompts, reqs, st.batch_size, t))
                rows.append({"model": spec.name, "round": rnd, "engine": eng, "threads": t,
                             "batch_size": st.batch_size, "precision": "float32", "num_requests": len(reqs),
                             "wall_s": r.wall_s, "throughput_seq_s": r.throughput_seq_s, "tokens": r.tokens})
                bar.update()
    return rows


def _same(a: list[list[int]], b: list[list[int]]) -> float:
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)]))


def _one_token_batches(prompts, ct2, hf, batch_size: int) -> dict:
    """ctranslate2's mismatches by batch: how many fall in batches that hold a one-token prompt
    (its Generator then decodes the batch's other sequences from a wrong context; at batch 1,
    or with two-token prompts, the same sequences match HF)."""
    bad = [i for i, (a, b) in enumerate(zip(ct2, hf, strict=True)) if a != b]
    short = {i // batch_size for i, p in enumerate(prompts) if len(p) == 1}
    return {"ct2_mismatches": len(bad), "ct2_mismatches_in_one_token_batches": sum(i // batch_size in short for i in bad)}


def model_study(spec: ModelSpec, st: Settings, bar) -> tuple[list[dict], list[dict], list[dict], dict]:
    """(runs, divergences, step profiles, token summary) of one model."""
    reqs = offline(get_task(st.task), st.num_requests, st.seed)
    prompts = [list(p) for p in prompts_for(spec, reqs, st.seed)]
    model_dir = convert(spec, st.ct2_dir, seed=st.seed)
    runs = _runs(spec, st, prompts, reqs, model_dir, bar)
    ours = next(r["tokens"] for r in runs if r["engine"] == "torch")
    ct2 = next(r["tokens"] for r in runs if r["engine"] == "ctranslate2")
    lengths = [int(k) for k in reqs.output_len]
    hf = isolated(hf_tokens, spec, prompts, lengths, st.seed)
    ct2_alone = isolated(ct2_static, spec, model_dir, prompts, reqs, 1, 1).tokens
    tokens = {"model": spec.name, "ours_vs_hf_f32": _same(ours, hf), "ct2_vs_hf_f32": _same(ct2, hf),
              "ours_vs_ct2": _same(ours, ct2), "ct2_batch1_vs_hf_f32": _same(ct2_alone, hf),
              **_one_token_batches(prompts, ct2, hf, st.batch_size),
              "ours_deterministic": all(r["tokens"] == ours for r in runs if r["engine"] == "torch")}
    div = [{"model": spec.name, "pair": "ctranslate2 vs HF", **d} for d in divergence(spec, prompts, ct2, hf, st.seed)]
    div += [{"model": spec.name, "pair": "ours vs HF", **d} for d in divergence(spec, prompts, ours, hf, st.seed)]
    steps = [{"model": spec.name, **isolated(step_profile, spec, st.batch_size, st.step_context, t, st.seed)}
             for t in st.threads]
    bar.update()
    return runs, div, steps, tokens


def ratios(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model and threads: median throughput of each engine and the median over rounds of
    ctranslate2 / ours (each round's two runs are adjacent in time)."""
    w = runs.pivot_table(index=["model", "threads", "round"], columns="engine", values="throughput_seq_s")
    w["ratio"] = w["ctranslate2"] / w["torch"]
    g = w.groupby(level=["model", "threads"])
    out = pd.DataFrame({"ours_seq_s": g["torch"].median(), "ct2_seq_s": g["ctranslate2"].median(),
                        "ratio_ct2_over_ours": g["ratio"].median(), "ratio_min": g["ratio"].min(),
                        "ratio_max": g["ratio"].max(), "rounds": g["ratio"].size()}).reset_index()
    out["within_target"] = out.ratio_ct2_over_ours <= TARGET_RATIO
    return out


def summary(rat: pd.DataFrame, tokens: pd.DataFrame, div: pd.DataFrame, steps: pd.DataFrame) -> dict:
    d = div if len(div) else pd.DataFrame(columns=["gap_a_b_f64", "f32_logit_err"])
    near = (d.gap_a_b_f64 <= 2 * d.f32_logit_err) if len(d) else pd.Series(dtype=bool)
    return {"target_ratio": TARGET_RATIO, "max_ratio": float(rat.ratio_ct2_over_ours.max()),
            "all_within_target": bool(rat.within_target.all()),
            "ratios": rat.to_dict(orient="records"), "tokens": tokens.to_dict(orient="records"),
            "divergences": int(len(d)),
            "divergence_median_gap_f64": float(d.gap_a_b_f64.median()) if len(d) else math.nan,
            "divergence_median_f32_err": float(d.f32_logit_err.median()) if len(d) else math.nan,
            "divergence_near_ties": float(near.mean()) if len(d) else math.nan,
            "steps": steps.to_dict(orient="records")}


def run(st: Settings, specs: dict[str, ModelSpec]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """(runs, divergences, step profiles, summary) over `st.models`."""
    runs, div, steps, toks = [], [], [], []
    total = len(st.models) * (st.rounds * len(st.threads) * 2 + 1)
    with tqdm(total=total, desc="engines", disable=not st.progress) as bar:
        for m in st.models:
            r, d, s, t = model_study(specs[m], st, bar)
            runs += r
            div += d
            steps += s
            toks.append(t)
    runs_df = pd.DataFrame(runs).drop(columns="tokens")
    div_df = pd.DataFrame(div, columns=["model", "pair", "request", "step", "gap_a_b_f64", "top2_gap_f64",
                                        "f32_logit_err", "logit_scale"])
    steps_df = pd.DataFrame(steps)
    return runs_df, div_df, steps_df, summary(ratios(runs_df), pd.DataFrame(toks), div_df, steps_df)
