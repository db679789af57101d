"""Table 5 (monotonicity) and Table 6 (OPT-13B case study) as markdown, plus a Table 5
heat-map. Inputs are the CSVs `harness monotonicity` and `harness case-study` wrote
(runs/table5/monotonicity.csv, runs/table6/case_study.csv, runs/table6/bounds.csv).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from harness.figures.frame import POLICY_LABELS, STYLE, order_tasks
from harness.results.markdown import markdown_table

KNOB_SYMBOLS = {"encode_batch_size": "B_E", "decode_iters": "N_D", "micro_batches": "B_m",
                "tp_gpus": "T_P #GPUs", "tp_degree": "T_P degree"}


def _pct(x) -> str:
    return "" if pd.isna(x) else f"{100 * x:.1f}%"


def table5_markdown(mono: pd.DataFrame) -> str:
    """Share of neighbouring grid pairs monotone (5% tolerance, paper directions) per
    policy x knob x task, with the number of pairs."""
    out = pd.DataFrame({
        "policy": mono["policy"].map(lambda p: POLICY_LABELS.get(p, p)),
        "knob": mono["knob"].map(lambda k: KNOB_SYMBOLS.get(k, k)),
        "task": mono["task"],
        "pairs": mono["pairs"].astype(int),
        "throughput monotone": mono["thr_monotone_share"].map(_pct),
        "latency monotone": mono["lat_monotone_share"].map(_pct),
    })
    return markdown_table(out)


def monotonicity_heatmap(mono: pd.DataFrame) -> Figure:
    """Table 5 as two heat-maps (throughput, latency): rows policy x knob, columns task."""
    df = mono.assign(row=mono["policy"].map(lambda p: POLICY_LABELS.get(p, p)) + " · "
                     + mono["knob"].map(lambda k: KNOB_SYMBOLS.get(k, k)))
    tasks = order_tasks(df["task"])
    rows = list(dict.fromkeys(df["row"]))
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(2 + 1.2 * len(tasks) * 2, 0.35 * len(rows) + 1.5))
        axes = fig.subplots(1, 2, sharey=True)
        for ax, col, name in zip(axes, ("thr_monotone_share", "lat_monotone_share"),
                                 ("throughput", "latency"), strict=True):
            grid = df.pivot_table(index="row", columns="task", values=col, aggfunc="first")
            grid = grid.reindex(index=rows, columns=tasks) * 100
            sns.heatmap(grid, ax=ax, vmin=0, vmax=100, cmap="viridis", annot=True, fmt=".0f",
                        annot_kws={"fontsize": 6}, cbar=ax is axes[-1],
                        mask=~np.isfinite(grid.to_numpy(dtype=float)))
            ax.set_title(f"{name}: % of pairs monotone (5% tol.)", fontsize=9)
            ax.set_xlabel("task")
            ax.set_ylabel("")
            ax.tick_params(labelsize=7)
        fig.tight_layout()
    return fig


def table6_markdown(case: pd.DataFrame, bounds: pd.DataFrame | None = None) -> str:
    """Paper vs ours per bound of the OPT-13B task S case study (§8 Table 6)."""
    def bound(v) -> str:
        return "Inf" if pd.isna(v) else f"{v:g} s"
    out = pd.DataFrame({
        **({"mode": case["mode"]} if "mode" in case.columns else {}),
        "bound (paper)": case["bound_s"].map(bound),
        "paper": case["paper_policy"].str.upper() + ": " + case["paper_settings"].fillna(""),
        "paper latency (s)": case["paper_latency_s"],
        "paper thr (seq/s)": case["paper_throughput_seq_s"],
        "ours": case["ours_policy"].fillna("NS").str.upper() + ": " + case["ours_settings"].fillna(""),
        "ours latency (s)": case["ours_latency_s"],
        "ours thr (seq/s)": case["ours_throughput_seq_s"],
        "ours / paper thr": case["throughput_ratio"],
        "paper settings in our model": case["paper_settings_in_our_model"],
        "… latency (s)": case["paper_settings_in_our_model_latency_s"],
        "… thr (seq/s)": case["paper_settings_in_our_model_throughput_seq_s"],
        "FT best thr (seq/s)": case["ft_best_throughput_seq_s"],
    })
    text = markdown_table(out)
    if bounds is not None and not bounds.empty:
        b = bounds.rename(columns={"label": "bound", "paper_s": "paper (s)", "ours_s": "ours (s)",
                                   "ours_over_paper": "ours / paper"})
        text += "\n\nFT-derived bounds of OPT-13B task S (paper §7 vs ours):\n\n" + markdown_table(b)
    return text
