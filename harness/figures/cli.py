"""`harness figures`: regenerate every figure and runs/REPORT.md from the results tables."""

from __future__ import annotations

from pathlib import Path

from harness.figures.report import write_figures, write_report


def run(runs_dir: Path) -> None:
    """Redraw every figure of every experiment with a results.parquet, then write REPORT.md;
    prints each path written (relative to `runs_dir` where possible)."""
    runs_dir = Path(runs_dir)
    for path in [*write_figures(runs_dir), write_report(runs_dir)]:
        try:
            shown = path.relative_to(runs_dir.parent)
        except ValueError:
            shown = path
        print(f"wrote {shown}")
