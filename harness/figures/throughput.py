"""Throughput of FT vs RRA vs WAA-C vs WAA-M vs ExeGPT at the four bounds (paper Fig. 6 / 8).

One facet per model (on its cluster) x task, grouped bars by bound, one bar per policy. A
policy without a feasible schedule under the bound gets an "NS" marker where its bar would
be (a job that raised gets "failed"). ExeGPT's bar carries its speed-up over FT, read from
`speedup_over_ft`.
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
    bound_tick,
    facet_grid,
    is_ok,
    not_ok_label,
    order_bounds,
    palette,
    policies_in,
)

SPEEDUP_GID = "speedup"


def throughput_bars(df: pd.DataFrame, policies: Sequence[str] | None = None,
                    annotate_speedup: bool = True) -> Figure:
    """Grouped bars of `throughput_seq_s`: facets (model, cluster) x task, groups = bounds;
    one bar per policy (default: every policy with rows, `policies_in`)."""
    policies = tuple(policies) if policies is not None else policies_in(df)
    colors = palette(policies)
    with sns.axes_style(STYLE):
        fig, axes = facet_grid(df)
        width = 0.8 / len(policies)
        for (model, cluster, task), ax in axes.items():
            sub = df[(df["model"] == model) & (df["cluster"] == cluster) & (df["task"] == task)]
            bounds = order_bounds(sub["bound"].dropna())
            top = pd.to_numeric(sub["throughput_seq_s"], errors="coerce").max()
            top = top if pd.notna(top) and top > 0 else 1.0
            for bi, bound in enumerate(bounds):
                for pi, policy in enumerate(policies):
                    rows = sub[(sub["bound"] == bound) & (sub["policy"] == policy)]
                    if rows.empty:
                        continue
                    row = rows.iloc[0]
                    x = bi + (pi - (len(policies) - 1) / 2) * width
                    if is_ok(row):
                        ax.bar(x, row["throughput_seq_s"], width, color=colors[policy],
                               hatch="//" if policy == "exegpt" else None, edgecolor="white",
                               linewidth=0.3)
                        if annotate_speedup and policy == "exegpt" and pd.notna(row["speedup_over_ft"]):
                            ax.text(x, row["throughput_seq_s"] + 0.02 * top,
                                    f"{row['speedup_over_ft']:.1f}×", ha="center", va="bottom",
                                    fontsize=5, rotation=90, gid=SPEEDUP_GID)
                    else:
                        ax.text(x, 0.02 * top, not_ok_label(row["status"]), ha="center",
                                va="bottom", fontsize=5, rotation=90, color="0.3", gid=NS_GID)
            ax.set_xticks(range(len(bounds)), [bound_tick(sub, b) for b in bounds], fontsize=6)
            ax.set_ylim(0, top * 1.25)
            ax.tick_params(axis="y", labelsize=6)
            ax.set_ylabel("throughput (seq/s)", fontsize=7)
        handles = [Patch(facecolor=colors[p], hatch="//" if p == "exegpt" else None,
                         label=POLICY_LABELS.get(p, p)) for p in policies]
        fig.legend(handles=handles, loc="upper center", ncol=len(policies), fontsize=8,
                   bbox_to_anchor=(0.5, 1.0), frameon=False)
        fig.suptitle("Throughput under the FT-derived latency bounds (NS: no feasible schedule)",
                     y=1.03, fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig
