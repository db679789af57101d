"""Per-GPU memory of each policy's chosen schedule (paper Fig. 9), from runs/fig9.

`memory_bars` (the sweep table): per model (on its cluster) and task, one stacked bar per
policy: `weight_bytes_per_gpu` (solid) and the rest of `memory_per_gpu_bytes` (KV cache,
activations, buffers of the most-loaded GPU; hatched) = memory_per_gpu - weights, clipped at 0.
FT rows carry no memory_per_gpu in the table, so FT shows its weights only. NS policies get
an "NS" marker; a star marks the policy ExeGPT chose. Needs one bound per model x task
(fig9: OPT-13B and GPT-3 101B, tasks T and G, no bound).

`memory_group_bars` (harness.studies.memory_groups rows): the paper's split, weights / KV
cache / other per GPU (the group's mean GPU), one bar per policy x GPU group (RRA and FT: all
GPUs; WAA: encode and decode GPUs), one panel per model x task.
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
    order_tasks,
    palette,
    system_label,
    systems,
)
from harness.policies import EXEGPT_POLICIES

MEMORY_POLICIES = ("ft", *EXEGPT_POLICIES)
CHOSEN_GID = "chosen"


def one_scenario_per_model(df: pd.DataFrame) -> bool:
    """True when every (model, cluster, task) has a single bound (what memory_bars draws)."""
    keys = df[["model", "cluster", "task", "bound"]].dropna().drop_duplicates()
    return not keys.empty and not keys.duplicated(["model", "cluster", "task"]).any()


def _bar_groups(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(model, cluster, task) in model, then task order."""
    tasks = {t: i for i, t in enumerate(order_tasks(df["task"].dropna()))}
    return [(m, c, t) for m, c in systems(df)
            for t in sorted(df.loc[(df["model"] == m) & (df["cluster"] == c), "task"].dropna().unique(),
                            key=tasks.__getitem__)]


def memory_bars(df: pd.DataFrame, policies: Sequence[str] = MEMORY_POLICIES) -> Figure:
    """Stacked per-GPU memory bars (weights + rest) per model x task and policy, in GiB."""
    if not one_scenario_per_model(df):
        raise ValueError("memory_bars needs one scenario (bound) per model x task; "
                         "filter the table first (fig9 has bound inf only)")
    colors = palette()
    rows = _bar_groups(df)
    several_tasks = df["task"].nunique() > 1
    width = 0.8 / len(policies)
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(max(5.0, 1.5 * len(rows) + 1.5), 3.4))
        ax = fig.subplots()
        top = max(pd.to_numeric(df["memory_per_gpu_bytes"], errors="coerce").max(),
                  pd.to_numeric(df["weight_bytes_per_gpu"], errors="coerce").max()) / GiB
        top = top if pd.notna(top) and top > 0 else 1.0
        for i, (model, cluster, task) in enumerate(rows):
            sub = df[(df["model"] == model) & (df["cluster"] == cluster) & (df["task"] == task)]
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
        ax.set_xticks(range(len(rows)), [system_label(m, c) + (f", {t}" if several_tasks else "")
                                         for m, c, t in rows], fontsize=7, rotation=15)
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


GROUP_LABELS = {"all": "", "encode": " enc", "decode": " dec"}
PARTS = (("weights_bytes_per_gpu", "weights", None), ("kv_bytes_per_gpu", "KV cache", "///"),
         ("other_bytes_per_gpu", "other (activations, buffers)", ".."))


def memory_group_bars(groups: pd.DataFrame, policies: Sequence[str] = MEMORY_POLICIES) -> Figure:
    """Fig. 9 as the paper draws it: per panel (model x task), one stacked bar per policy x GPU
    group (weights solid, KV cache hatched, other dotted; GiB per GPU, the group's mean GPU
    and its GPU count below). `groups`: harness.studies.memory_groups rows of one mode and bound."""
    colors = palette()
    panels = _bar_groups(groups)
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(max(4.0, 3.2 * len(panels)), 3.4))
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        top = groups["total_bytes_per_gpu"].max() / GiB if groups["total_bytes_per_gpu"].notna().any() else 1.0
        for ax, (model, cluster, task) in zip(axes, panels, strict=True):
            sub = groups[(groups["model"] == model) & (groups["cluster"] == cluster) & (groups["task"] == task)]
            ticks = []
            for policy in policies:
                for r in sub[sub["policy"] == policy].itertuples(index=False):
                    x = len(ticks)
                    if r.status != "ok":
                        ticks.append(POLICY_LABELS.get(policy, policy))
                        ax.text(x, 0.02 * top, not_ok_label(r.status), ha="center", va="bottom", fontsize=6,
                                rotation=90, color="0.3", gid=NS_GID)
                        continue
                    ticks.append(f"{POLICY_LABELS.get(policy, policy)}{GROUP_LABELS.get(r.group, r.group)}"
                                 f"\n{r.gpus} GPU{'s' if r.gpus > 1 else ''}")
                    bottom = 0.0
                    for col, _, hatch in PARTS:
                        h = getattr(r, col) / GiB
                        ax.bar(x, h, 0.7, bottom=bottom, color=colors[policy], hatch=hatch,
                               alpha=1.0 if hatch is None else 0.5, edgecolor="white", linewidth=0.3)
                        bottom += h
                    if r.chosen:
                        ax.text(x, bottom + 0.02 * top, "★", ha="center", va="bottom", fontsize=8, gid=CHOSEN_GID)
            ax.set_xticks(range(len(ticks)), ticks, fontsize=6)
            ax.set_title(f"{system_label(model, cluster)}, task {task}", fontsize=8)
            ax.set_ylim(0, top * 1.2)
        axes[0].set_ylabel("memory per GPU (GiB)", fontsize=8)
        handles = [Patch(facecolor="0.6", hatch=h, alpha=1.0 if h is None else 0.5, label=lab)
                   for _, lab, h in PARTS]
        axes[0].legend(handles=handles, fontsize=6, loc="upper left")
        fig.suptitle("Per-GPU memory by GPU group (paper Fig. 9; ★ = ExeGPT's choice)", fontsize=9)
        fig.tight_layout()
    return fig
