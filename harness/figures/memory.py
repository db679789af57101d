"""Per-GPU memory of each policy's chosen schedule (paper Fig. 9), from runs/fig9.

Per model (on its cluster), one stacked bar per policy: `weight_bytes_per_gpu` (solid) and
the rest of `memory_per_gpu_bytes` (KV cache, activations, buffers of the most-loaded GPU;
hatched) = memory_per_gpu - weights, clipped at 0. FT rows carry no memory_per_gpu in the
table, so FT shows its weights only. NS policies get an "NS" marker; a star marks the policy
ExeGPT chose. Needs one scenario per model (fig9: task C1, no bound).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from harness.figures.frame import (
    NS_GID,
    POLICY_LABELS,
    STYLE,
    GiB,
    is_ok,
    not_ok_label,
    palette,
    system_label,
    systems,
)

MEMORY_POLICIES = ("ft", "rra", "waa-c", "waa-m")
CHOSEN_GID = "chosen"


def one_scenario_per_model(df: pd.DataFrame) -> bool:
    """True when every (model, cluster) has a single task x bound (what memory_bars draws)."""
    keys = df[["model", "cluster", "task", "bound"]].dropna().drop_duplicates()
    return not keys.empty and not keys.duplicated(["model", "cluster"]).any()


def memory_bars(df: pd.DataFrame, policies: Sequence[str] = MEMORY_POLICIES) -> Figure:
    """Stacked per-GPU memory bars (weights + rest) per model and policy, in GiB."""
    if not one_scenario_per_model(df):
        raise ValueError("memory_bars needs one scenario (task x bound) per model; "
                         "filter the table first (fig9 has task C1, bound inf)")
    colors = palette()
    rows = systems(df)
    width = 0.8 / len(policies)
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(max(5.0, 1.5 * len(rows) + 1.5), 3.4))
        ax = fig.subplots()
        top = max(pd.to_numeric(df["memory_per_gpu_bytes"], errors="coerce").max(),
                  pd.to_numeric(df["weight_bytes_per_gpu"], errors="coerce").max()) / GiB
        top = top if pd.notna(top) and top > 0 else 1.0
        for i, (model, cluster) in enumerate(rows):
            sub = df[(df["model"] == model) & (df["cluster"] == cluster)]
            chosen = sub.loc[(sub["policy"] == "exegpt") & (sub["status"] == "ok"), "chosen_policy"]
            chosen = chosen.iloc[0] if len(chosen) else None
            for pi, policy in enumerate(policies):
                r = sub[sub["policy"] == policy]
                if r.empty:
                    continue
                r = r.iloc[0]
                x = i + (pi - (len(policies) - 1) / 2) * width
                if not is_ok(r):
                    ax.text(x, 0.02 * top, not_ok_label(r["status"]), ha="center", va="bottom",
                            fontsize=6, rotation=90, color="0.3", gid=NS_GID)
                    continue
                weights = (r["weight_bytes_per_gpu"] or 0) / GiB if pd.notna(r["weight_bytes_per_gpu"]) else 0.0
                total = r["memory_per_gpu_bytes"] / GiB if pd.notna(r["memory_per_gpu_bytes"]) else None
                ax.bar(x, weights, width, color=colors[policy], edgecolor="white", linewidth=0.3)
                height = weights
                if total is not None:
                    rest = max(total - weights, 0.0)
                    ax.bar(x, rest, width, bottom=weights, color=colors[policy], alpha=0.45,
                           hatch="///", edgecolor="white", linewidth=0.3)
                    height = weights + rest
                if policy == chosen:
                    ax.text(x, height + 0.02 * top, "★", ha="center", va="bottom", fontsize=8,
                            gid=CHOSEN_GID)
        ax.set_xticks(range(len(rows)), [system_label(*r) for r in rows], fontsize=7, rotation=15)
        ax.set_ylabel("memory per GPU (GiB)", fontsize=8)
        ax.set_ylim(0, top * 1.2)
        handles = [Patch(facecolor=colors[p], label=POLICY_LABELS.get(p, p)) for p in policies]
        handles += [Patch(facecolor="0.85", label="weights (solid)"),
                    Patch(facecolor="0.85", hatch="///", alpha=0.6,
                          label="rest: KV cache etc. (hatched; not in the table for FT)")]
        ax.legend(handles=handles, fontsize=6, ncol=3, loc="upper left")
        scen = df[["task", "bound"]].dropna().drop_duplicates()
        what = ", ".join(f"task {t}, bound {b}" for t, b in scen.itertuples(index=False))
        ax.set_title(f"Per-GPU memory of each policy's schedule ({what}; ★ = ExeGPT's choice)",
                     fontsize=9)
        fig.tight_layout()
    return fig
