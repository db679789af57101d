"""`harness figures`: every figure and runs/REPORT.md from the results tables alone.

`harness.figures` draws (pure functions returning figures and markdown); this module writes
what they return, through `harness.atomic`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from harness.atomic import write_text
from harness.cli.output import write_figure
from harness.figures.frame import Output
from harness.figures.report import outputs, report_markdown

PNG_DPI = 130      # the report's embedded PNGs (PDFs are vector; the dpi only sizes raster parts)


def write_outputs(items: Iterable[Output]) -> list[Path]:
    """Write each Output (figure in its formats, text, or remove a stale file); the paths written."""
    written: list[Path] = []
    for o in items:
        if o.content is None:
            o.path.unlink(missing_ok=True)
        elif isinstance(o.content, str):
            written.append(write_text(o.path, o.content))
        else:
            written += write_figure(o.content, o.path.parent, o.path.name, o.formats, dpi=PNG_DPI)
    return written


def write_figures(runs_dir: Path) -> list[Path]:
    """Redraw every figure of every experiment with a results table; the paths written."""
    return write_outputs(outputs(Path(runs_dir)))


def write_report(runs_dir: Path) -> Path:
    """Write runs/REPORT.md (figures embedded by relative path; run write_figures first)."""
    return write_text(Path(runs_dir) / "REPORT.md", report_markdown(Path(runs_dir)))


def run(runs_dir: Path) -> None:
    """Redraw every figure, then write REPORT.md; prints each path written (relative to the
    runs folder's parent where possible)."""
    runs_dir = Path(runs_dir)
    for path in [*write_figures(runs_dir), write_report(runs_dir)]:
        try:
            shown = path.relative_to(runs_dir.parent)
        except ValueError:
            shown = path
        print(f"wrote {shown}")
