"""Where the commands' outputs go: tables (CSV + parquet), figures (PNG + PDF) and text,
every file through `harness.atomic`. Studies return tables; only the CLI writes them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.atomic import save_figure, write_frame, write_text

FIGURE_FORMATS = ("png", "pdf")


def write_tables(out_dir: Path, tables: dict[str, pd.DataFrame], formats: tuple[str, ...] = ("csv", "parquet"),
                 ) -> list[Path]:
    """Each table as `<out_dir>/<name>.<format>`; the written paths."""
    return [write_frame(df, Path(out_dir) / f"{name}.{fmt}") for name, df in tables.items() for fmt in formats]


def write_figure(fig, out_dir: Path, stem: str, formats: tuple[str, ...] = FIGURE_FORMATS,
                 dpi: int = 120) -> list[Path]:
    """A matplotlib figure as `<out_dir>/<stem>.<format>` for each of `formats`; closes it."""
    import matplotlib.pyplot as plt
    try:
        return [save_figure(fig, Path(out_dir) / f"{stem}.{ext}", dpi=dpi) for ext in formats]
    finally:
        plt.close(fig)


def write_study(out_dir: Path, tables: dict[str, pd.DataFrame], figures: dict | None = None,
                texts: dict[str, str] | None = None) -> list[Path]:
    """A study's outputs under `out_dir`: its tables, its figures ({stem: Figure}), its texts
    ({file name: content}, e.g. summary.md)."""
    paths = write_tables(out_dir, tables)
    for stem, fig in (figures or {}).items():
        paths += write_figure(fig, out_dir, stem)
    paths += [write_text(Path(out_dir) / name, text) for name, text in (texts or {}).items()]
    return paths
