"""Claims of the paper's Table 5 (§5, monotonicity) and Table 6 (§8, OPT-13B case study, with
the paper's A40 numbers as a test set), as rows of the report's claims table
(harness.figures.headline)."""

from __future__ import annotations

import math

import pandas as pd

from harness.figures.claim_rows import _row
from harness.specs.paper import MONOTONE_SHARES, MONOTONE_WORST, TABLE5_MODEL


def table6_claims(case: pd.DataFrame | None, bounds: pd.DataFrame | None) -> list[dict]:
    out = []
    if case is not None:
        for r in case.itertuples(index=False):
            b = "Inf" if pd.isna(r.bound_s) else f"{r.bound_s:g} s"
            same = str(r.ours_policy).startswith(str(r.paper_policy)[:3])
            row = _row("Table 6", f"OPT-13B S, L = {b}: {r.paper_policy.upper()} {r.paper_settings}",
                       r.paper_throughput_seq_s, r.ours_throughput_seq_s,
                       f"case_study.csv: ours {str(r.ours_policy).upper()} {r.ours_settings}, "
                       f"latency {r.ours_latency_s:.3g} s (paper {r.paper_latency_s:g} s)", unit=" seq/s",
                       ref=None)
            row["holds"] += "; same policy" if same else f"; policy differs (ours {str(r.ours_policy).upper()})"
            out.append(row)
            # The paper's own schedule priced by our model: the A40 test set (the cost model's error).
            what = str(getattr(r, "paper_settings_in_our_model", "ok"))
            for name, paper, ours, unit in (("latency", r.paper_latency_s, r.paper_settings_in_our_model_latency_s, " s"),
                                            ("throughput", r.paper_throughput_seq_s,
                                             r.paper_settings_in_our_model_throughput_seq_s, " seq/s")):
                out.append(_row("Table 6 (A40 test set)", f"OPT-13B S, L = {b}: the paper's schedule priced by our "
                                f"model, {name}", paper, ours, f"case_study.csv: the paper's settings in our model "
                                f"({what})", unit=unit, ref=None))
    if bounds is not None:
        for r in bounds.itertuples(index=False):
            out.append(_row("Table 6 (A40 test set)", f"OPT-13B S FT-derived bound {r.label}", r.paper_s, r.ours_s,
                            "bounds.csv (bottom 10/30/70% of FT latencies over batch sizes)",
                            unit=" s", ref=None))
    return out


def _share_pct(m: pd.DataFrame, col: str) -> float:
    """Pairs-weighted share (percent) of `col`; rows without pairs or a share are left out."""
    if col not in m.columns:
        return math.nan
    m = m[(m["pairs"] > 0) & m[col].notna()]
    return 100 * (m[col] * m["pairs"]).sum() / m["pairs"].sum() if len(m) else math.nan


def monotonicity_claims(mono: pd.DataFrame | None) -> list[dict]:
    """Table 5 (§5): GPT-3 39B as the paper measured it (5% of each value; and latency within
    5% of L_B, the p70 bound), then T5-11B and GPT-3 101B (not in the paper: beyond)."""
    if mono is None or mono.empty:
        return []
    has_model = "model" in mono.columns
    m = mono[(mono["pairs"] > 0) & ((mono["model"] == TABLE5_MODEL) if has_model else True)]
    if m.empty:
        return []
    w = m["pairs"]
    thr_pct, lat_pct = (100 * MONOTONE_SHARES[k].value for k in ("throughput", "latency"))   # 97%, 96%
    by_knob = ", ".join(f"{k} {_share_pct(g, 'thr_monotone_share'):.0f}%" for k, g in m.groupby("knob", sort=False))
    out = [_row("§5 Table 5", f"share of points monotone in {name} ({tol}, GPT-3 39B)", paper,
                _share_pct(m, col), f"pairs-weighted mean over {len(m)} policy×knob×task rows ({int(w.sum())} "
                "pairs)", unit="share", ref=None,
                finding=f"by knob, monotone in throughput: {by_knob} (the paper's directions, §4)"
                if name == "throughput" else "")
           for name, col, paper, tol in (("throughput", "thr_monotone_share", thr_pct, "5% tol."),
                                         ("latency", "lat_monotone_share", lat_pct, "5% tol."),
                                         ("latency", "lat_monotone_share_lb", lat_pct, "tol. 5% of L_B"))
           if col in m.columns]
    bm = m[(m["knob"] == "micro_batches") & (m["task"] == "T")]
    worst = m.loc[m["lat_monotone_share"].idxmin()]
    ours = 100 * ((1 - bm["lat_monotone_share"]) * bm["pairs"]).sum() / bm["pairs"].sum() if len(bm) else None
    out.append(_row("§5 Table 5", "worst: B_m on task T, share non-monotone in latency",
                    100 * MONOTONE_WORST.value, ours,
                    f"WAA-C/WAA-M B_m rows of task T, pairs-weighted; our worst row: {worst['policy']} "
                    f"{worst['knob']} {worst['task']} ({100 * (1 - worst['lat_monotone_share']):.1f}%)",
                    unit="share", ref=None))
    others = mono[(mono["pairs"] > 0) & (mono["model"] != TABLE5_MODEL)] if has_model else None
    for model, g in ([] if others is None else others.groupby("model", sort=False)):
        for name, col, paper in (("throughput", "thr_monotone_share", thr_pct),
                                 ("latency", "lat_monotone_share_lb", lat_pct)):
            out.append(_row("beyond: Table 5", f"share monotone in {name}, {model} ({g['cluster'].iloc[0]})", None,
                            _share_pct(g, col), f"as for GPT-3 39B ({'5% tol.' if name == 'throughput' else 'tol. 5% of L_B'}); "
                            f"paper measured 39B only ({paper:g}%)", paper_text=f"({paper:g}% on 39B)",
                            ours_text=f"{_share_pct(g, col):.1f}%", holds="not in the paper"))
    return out
