"""Speed-up heat-map: ExeGPT's throughput over FT's under the same bound, every scenario.

Rows: model (on its cluster); columns: task x bound. The colour is log10 of
`speedup_over_ft` of the `exegpt` rows (diverging around 1x: red = FT wins, green = ExeGPT
wins), the number printed is the speed-up. Cells without a number say why: "NS" (ExeGPT has
no feasible schedule), "failed" (the job raised), "FT NS" (ExeGPT feasible but FT is not,
so no ratio exists). Scenarios absent from the table stay blank.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from harness.figures.frame import (
    BOUND_LABELS,
    NS_GID,
    STYLE,
    order_bounds,
    order_tasks,
    system_label,
    systems,
)

FT_NS_GID = "ft-ns"
VALUE_GID = "speedup"


def speedup_cells(df: pd.DataFrame, policy: str = "exegpt") -> pd.DataFrame:
    """One row per scenario: model, cluster, task, bound, speedup (or NaN) and the cell label."""
    sel = df[df["policy"] == policy]
    ft = df[df["policy"] == "ft"].set_index(["model", "cluster", "task", "bound"])["status"]
    out = []
    for row in sel.itertuples(index=False):
        key = (row.model, row.cluster, row.task, row.bound)
        ft_status = ft.get(key) if key in ft.index else None
        speedup = row.speedup_over_ft
        ok = row.status == "ok" and speedup is not None and not pd.isna(speedup)
        if ok:
            label = f"{speedup:.1f}"
        elif row.status == "failed":
            label = "failed"
        elif row.status == "ok":
            label = "FT NS" if ft_status != "ok" else "?"
        else:
            label = "NS"
        out.append({"model": row.model, "cluster": row.cluster, "task": row.task,
                    "bound": row.bound, "speedup": float(speedup) if ok else math.nan,
                    "label": label})
    return pd.DataFrame(out, columns=["model", "cluster", "task", "bound", "speedup", "label"])


def speedup_heatmap(df: pd.DataFrame, policy: str = "exegpt") -> Figure:
    """Heat-map of `speedup_over_ft` (rows model, columns task x bound), NS cells marked."""
    cells = speedup_cells(df, policy)
    rows = systems(df[df["policy"] == policy])
    cols = [(t, b) for t in order_tasks(cells["task"]) for b in order_bounds(cells["bound"])
            if ((cells["task"] == t) & (cells["bound"] == b)).any()]
    values = np.full((len(rows), len(cols)), np.nan)
    labels = np.full((len(rows), len(cols)), "", dtype=object)
    index = {k: i for i, k in enumerate(rows)}
    cindex = {k: j for j, k in enumerate(cols)}
    for c in cells.itertuples(index=False):
        i, j = index[(c.model, c.cluster)], cindex[(c.task, c.bound)]
        values[i, j] = math.log10(c.speedup) if c.speedup > 0 else np.nan
        labels[i, j] = c.label
    finite = values[np.isfinite(values)]
    span = max(abs(finite).max(), math.log10(2)) if finite.size else 1.0
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(max(4.0, 0.62 * len(cols) + 2), max(2.0, 0.5 * len(rows) + 1.2)))
        ax = fig.subplots()
        sns.heatmap(pd.DataFrame(values), mask=~np.isfinite(values), cmap="RdYlGn", center=0.0,
                    vmin=-span, vmax=span, linewidths=0.5, linecolor="white", ax=ax,
                    cbar_kws={"label": f"{policy} / FT throughput (log scale)"})
        cbar = ax.collections[0].colorbar if ax.collections else None
        if cbar is not None:
            ticks = [t for t in (-1, -math.log10(2), 0, math.log10(2), math.log10(5), 1, math.log10(20))
                     if -span <= t <= span]
            cbar.set_ticks(ticks, labels=[f"{10 ** t:.2g}×" for t in ticks])
        for i in range(len(rows)):
            for j in range(len(cols)):
                lab = labels[i, j]
                if not lab:
                    continue
                gid = VALUE_GID if np.isfinite(values[i, j]) else FT_NS_GID if lab == "FT NS" else NS_GID
                ax.text(j + 0.5, i + 0.5, lab, ha="center", va="center", fontsize=6, gid=gid,
                        color="black" if gid == VALUE_GID else "0.35")
        ax.set_xticks(np.arange(len(cols)) + 0.5,
                      [f"{t}\n{BOUND_LABELS.get(b, b)}" for t, b in cols], rotation=0, fontsize=6)
        ax.set_yticks(np.arange(len(rows)) + 0.5, [system_label(*r) for r in rows], rotation=0,
                      fontsize=7)
        ax.set_xlabel("task / bound", fontsize=8)
        ax.set_ylabel("")
        n_ok = int(np.isfinite(values).sum())
        ax.set_title(f"ExeGPT speed-up over FT under the same bound ({n_ok} of {len(cells)} "
                     f"scenarios with a ratio; NS = no feasible schedule)", fontsize=9)
        fig.tight_layout()
    return fig
