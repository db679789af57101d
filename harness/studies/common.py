"""Shared plumbing of the studies: scenario contexts from the Hydra config, output writing."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from harness.config import Scenario, build_scenario, compose
from harness.policies import Context


def scenario(overrides: list[str] | tuple[str, ...]) -> tuple[Scenario, Context]:
    """The composed scenario (conf/, `overrides` applied) and its policy context."""
    from harness.cli.commands import context
    s = build_scenario(compose(list(overrides)))
    return s, context(s)


def load_note() -> str:
    """This machine's load while timing (timings here are noisy: 2 shared cores)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def write_tables(out_dir: Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Each table as CSV and parquet under `out_dir`; the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df in tables.items():
        for suffix, write in ((".csv", lambda d, p: d.to_csv(p, index=False)),
                              (".parquet", lambda d, p: d.to_parquet(p, index=False))):
            p = out_dir / f"{name}{suffix}"
            tmp = p.with_name(p.name + ".tmp")
            write(df, tmp)
            tmp.replace(p)
            paths.append(p)
    return paths


def save_figure(fig, out_dir: Path, stem: str) -> list[Path]:
    """PNG and PDF of a matplotlib figure; closes it."""
    import matplotlib.pyplot as plt
    paths = [out_dir / f"{stem}.{ext}" for ext in ("png", "pdf")]
    for p in paths:
        fig.savefig(p, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return paths


def md(df: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a markdown table (floats rounded)."""
    from harness.cli.commands import markdown_table
    return markdown_table(df.round(digits))
