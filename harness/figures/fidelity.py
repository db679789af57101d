"""The fidelity study's scatter plot (`harness fidelity`, harness/studies/fidelity.py).

`scatter(table)`: predicted (discrete-event, profiled) vs measured throughput and p99-length
latency, one point per configuration coloured by policy; hollow: the same predictions scaled
by each run's speed drift (harness/runner/drift.py). The CLI saves it as fidelity-<size>.png.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

PANELS = (("real_throughput_seq_s", "sim_throughput_seq_s", "throughput (seq/s)"),
          ("real_latency_p99len_s", "sim_latency_p99len_s", "p99-length latency (s)"))


def _panel(ax, ok: pd.DataFrame, real: str, sim: str, title: str) -> None:
    for pol, g in ok.groupby("policy"):
        ax.scatter(g[real], g[sim], label=pol, s=22)
    if "speed_drift" in ok:      # the same predictions at each run's measured speed (drift.py)
        scale = 1 / ok.speed_drift if real.startswith("real_throughput") else ok.speed_drift
        ax.scatter(ok[real], ok[sim] * scale, s=22, facecolors="none", edgecolors="grey", lw=0.7,
                   label="x run's speed drift")
    lo, hi = np.nanmin(ok[[real, sim]].to_numpy()) * 0.8, np.nanmax(ok[[real, sim]].to_numpy()) * 1.25
    xs = np.geomspace(lo, hi, 50)
    ax.plot(xs, xs, "k-", lw=0.8)
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="grey", alpha=0.2, label="±10%")
    ax.set(xscale="log", yscale="log", xlabel=f"measured {title}", ylabel=f"simulated {title}", title=title)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())
        axis.set_major_formatter(ScalarFormatter())
    ax.legend(fontsize=7)


def scatter(df: pd.DataFrame) -> Figure:
    """The fidelity table's successful configurations, predicted vs measured (module docstring)."""
    ok = df[df.status == "ok"]
    fig = Figure(figsize=(10, 4.5))
    axes = fig.subplots(1, 2)
    for ax, (real, sim, title) in zip(axes, PANELS, strict=True):
        _panel(ax, ok, real, sim, title)
    fig.suptitle("XSimulator (discrete-event, profiled cost model) vs real runner, cpu-2w")
    fig.tight_layout()
    return fig
