"""Latency-throughput curves: per scenario, each policy's schedule at the four bounds.

One facet per model (on its cluster) x task; one line per policy through its feasible points
(`latency_s`, `throughput_seq_s`) ordered by bound, tightest first; the bounds themselves are
dotted vertical lines. NS points are simply absent (the bars figure marks them).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from harness.figures.frame import (
    BOUND_LABELS,
    POLICY_LABELS,
    STYLE,
    facet_grid,
    is_ok,
    order_bounds,
    palette,
    policies_in,
)

CURVE_GID = "curve"
MARKERS = {"ft": "s", "rra": "o", "waa-c": "^", "waa-m": "v", "exegpt": "*"}


def latency_throughput(df: pd.DataFrame, policies: Sequence[str] | None = None,
                       log_latency: bool = True) -> Figure:
    """Throughput vs latency of each policy's chosen schedule, one point per bound (default:
    every policy with rows, `policies_in`)."""
    policies = tuple(policies) if policies is not None else policies_in(df)
    colors = palette(policies)
    with sns.axes_style(STYLE):
        fig, axes = facet_grid(df, cell_w=3.4, cell_h=2.6)
        for (model, cluster, task), ax in axes.items():
            sub = df[(df["model"] == model) & (df["cluster"] == cluster) & (df["task"] == task)]
            bounds = order_bounds(sub["bound"].dropna())
            for bound in bounds:
                vals = sub.loc[sub["bound"] == bound, "bound_s"].dropna()
                if len(vals):
                    ax.axvline(vals.iloc[0], color="0.6", lw=0.6, ls=":")
                    ax.text(vals.iloc[0], 1.0, BOUND_LABELS.get(bound, bound), fontsize=5,
                            color="0.4", transform=ax.get_xaxis_transform(), ha="center", va="bottom")
            for policy in policies:
                pts = [sub[(sub["bound"] == b) & (sub["policy"] == policy)] for b in bounds]
                pts = [p.iloc[0] for p in pts if not p.empty and is_ok(p.iloc[0])]
                if not pts:
                    continue
                chosen = policy == "exegpt"          # drawn dashed on top: the policy it chose shows through
                ax.plot([p["latency_s"] for p in pts], [p["throughput_seq_s"] for p in pts],
                        marker=MARKERS.get(policy, "o"), ms=7 if chosen else 4,
                        mfc="none" if chosen else colors[policy], ls="--" if chosen else "-",
                        lw=0.8 if chosen else 1.2, color=colors[policy],
                        label=POLICY_LABELS.get(policy, policy), gid=CURVE_GID, zorder=3 if chosen else 2)
            if log_latency:
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("latency (s)", fontsize=7)
            ax.set_ylabel("throughput (seq/s)", fontsize=7)
            ax.tick_params(labelsize=6)
        handles, labels = [], []
        for ax in axes.values():
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="upper center", ncol=max(len(labels), 1), fontsize=8,
                   bbox_to_anchor=(0.5, 1.0), frameon=False)
        fig.suptitle("Latency vs throughput of each policy's schedule at the four bounds",
                     y=1.03, fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def curve_count(fig: Figure) -> int:
    """Number of policy curves drawn (tests, sanity checks)."""
    return sum(1 for ax in fig.axes for ln in ax.lines if ln.get_gid() == CURVE_GID)
