"""The results table as the figures read it: names, orders, colours, facets, saving.

Every figure is a pure `DataFrame -> Figure` over the tidy `results.parquet` of a sweep
(one row per scenario x policy, see docs/results.md); nothing is recomputed here, the
table is only selected, ordered and drawn.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from harness.policies import EXEGPT_POLICIES

POLICIES = ("ft", *EXEGPT_POLICIES, "exegpt")          # exegpt = XScheduler's choice (§5)
BASELINES = ("dsi", "vllm", "orca", "sarathi", "distserve")    # other schedulers (harness/studies/modern.py)
POLICY_LABELS = {"ft": "FT", "rra": "RRA", "waa-c": "WAA-C", "waa-m": "WAA-M", "exegpt": "ExeGPT",
                 "dsi": "DeepSpeed-Inf.", "vllm": "vLLM", "orca": "ORCA", "sarathi": "Sarathi-Serve",
                 "distserve": "DistServe"}
BOUNDS = ("p10", "p30", "p70", "inf")                          # FT-derived latency bounds (§7)
BOUND_LABELS = {"p10": "10%", "p30": "30%", "p70": "70%", "inf": "Inf"}
TASKS = ("S", "T", "G", "C1", "C2")                            # paper task order (§7)
SCENARIO = ("model", "cluster", "task", "bound")               # one scenario = one sweep job
GiB = 2**30
NS_GID = "NS"                     # gid of every "NS"/"failed" marker, so tests can count them
STYLE = "whitegrid"


def policies_in(df: pd.DataFrame) -> tuple[str, ...]:
    """The policies with rows in `df`, in figure order: the paper's (POLICIES), the baselines,
    then any other (a plug-in policy) by name."""
    present = set(df["policy"].dropna().astype(str)) if "policy" in df else set()
    known = [p for p in POLICIES + BASELINES if p in present]
    return tuple(known + sorted(present - set(known)))


def palette(extra: Sequence[str] = ()) -> dict[str, tuple]:
    """One fixed colour per policy (colour-blind safe), the same in every figure; the paper's
    policies keep the first five colours whatever baselines are added, and policies outside
    both lists (plug-ins, `extra`) take the colours after them."""
    names = POLICIES + BASELINES + tuple(p for p in extra if p not in POLICIES + BASELINES)
    colors = sns.color_palette("husl" if len(names) > 10 else "colorblind", len(names))
    return dict(zip(names, colors, strict=True))


def _params_b(model: str) -> float:
    m = re.search(r"(\d+(?:\.\d+)?)b\b", model.lower())
    return float(m.group(1)) if m else math.inf


def order_models(models: Iterable[str]) -> list[str]:
    """Models by parameter count read from the name (t5-11b < opt-13b < gpt3-39b ...)."""
    return sorted(set(models), key=lambda m: (_params_b(m), m))


def order_tasks(tasks: Iterable[str]) -> list[str]:
    known = [t for t in TASKS if t in set(tasks)]
    return known + sorted(set(tasks) - set(TASKS))


def order_bounds(bounds: Iterable[str]) -> list[str]:
    known = [b for b in BOUNDS if b in set(bounds)]
    return known + sorted(set(map(str, bounds)) - set(BOUNDS))


def systems(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, cluster) pairs in model order: the rows of every facet grid."""
    pairs = df[["model", "cluster"]].dropna().drop_duplicates().itertuples(index=False)
    return sorted(map(tuple, pairs), key=lambda mc: (_params_b(mc[0]), mc[0], mc[1]))


def system_label(model: str, cluster: str) -> str:
    return f"{model} ({cluster})"


def is_ok(row) -> bool:
    """A row with a feasible schedule and a throughput to draw."""
    thr = row["throughput_seq_s"]
    return row["status"] == "ok" and thr is not None and not pd.isna(thr)


def not_ok_label(status: str) -> str:
    """What an infeasible or broken row shows instead of a bar."""
    return "failed" if status == "failed" else "NS"


def bound_tick(df: pd.DataFrame, bound: str) -> str:
    """'10%\\n4.2 s': the bound's label and its value in seconds from the table."""
    vals = df.loc[df["bound"] == bound, "bound_s"].dropna() if "bound_s" in df else pd.Series([])
    label = BOUND_LABELS.get(bound, bound)
    return f"{label}\n{vals.iloc[0]:.3g} s" if len(vals) else label


def load_results(path: Path | str) -> pd.DataFrame:
    """results.parquet with the columns a failed row may lack filled with NA."""
    df = pd.read_parquet(path)
    for col in ("bound_s", "throughput_seq_s", "latency_s", "speedup_over_ft",
                "memory_per_gpu_bytes", "weight_bytes_per_gpu", "chosen_policy", "reason"):
        if col not in df:
            df[col] = None
    df["bound"] = df["bound"].astype(str)
    return df


def facet_grid(df: pd.DataFrame, cell_w: float = 3.4, cell_h: float = 2.4
               ) -> tuple[Figure, dict[tuple[str, str, str], Axes]]:
    """One axes per (model, cluster) x task present in `df`; absent combinations get none.
    Returns the figure and {(model, cluster, task): axes}."""
    rows, cols = systems(df), order_tasks(df["task"].dropna())
    fig = Figure(figsize=(cell_w * len(cols), cell_h * len(rows)))
    grid = fig.subplots(len(rows), len(cols), squeeze=False)
    present = set(map(tuple, df[["model", "cluster", "task"]].dropna().drop_duplicates()
                      .itertuples(index=False)))
    axes = {}
    for i, (model, cluster) in enumerate(rows):
        for j, task in enumerate(cols):
            ax = grid[i][j]
            if (model, cluster, task) not in present:
                fig.delaxes(ax)
                continue
            ax.set_title(f"{system_label(model, cluster)} · {task}", fontsize=8)
            axes[(model, cluster, task)] = ax
    return fig, axes


@dataclass(frozen=True, slots=True)
class Output:
    """One file the figures layer asks the CLI to write (harness.cli.figures): a figure under
    `path` (a stem) in each of `formats`, a text file at `path`, or None: remove a stale `path`."""

    path: Path
    content: Figure | str | None
    formats: tuple[str, ...] = ("png", "pdf")


def figure_output(fig: Figure, stem: Path, pdf: bool = True) -> Output:
    return Output(stem, fig, ("png", "pdf") if pdf else ("png",))


def read_table(path: Path) -> pd.DataFrame | None:
    """A CSV table the report reads, or None where the step that writes it has not run."""
    return pd.read_csv(path) if path.exists() else None


def ns_count(fig: Figure) -> int:
    """Number of "NS" / "failed" markers drawn in `fig` (tests, sanity checks)."""
    return sum(1 for ax in fig.axes for t in ax.texts if t.get_gid() == NS_GID)


def find_runs() -> Path:
    """$HARNESS_RUNS_DIR, else the `runs/` of the repository (searched upwards from the cwd,
    then from the installed package): where notebooks find the results tables."""
    import os

    import harness
    if os.environ.get("HARNESS_RUNS_DIR"):
        return Path(os.environ["HARNESS_RUNS_DIR"])
    for start in (Path.cwd().resolve(), Path(harness.__file__).resolve().parent):
        for d in (start, *start.parents):
            if (d / "pyproject.toml").exists() and (d / "runs").is_dir():
                return d / "runs"
    raise FileNotFoundError("no runs/ folder found; set HARNESS_RUNS_DIR")
