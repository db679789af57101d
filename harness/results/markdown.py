"""Markdown tables for the terminal and REPORT.md: pandas' `DataFrame.to_markdown` (tabulate).

Missing values are blank, `|` and newlines inside cells are escaped, numbers right-aligned,
floats formatted with `floats` (a format spec, e.g. ".3g"). Cells are not padded to a common
width (`| a | 1.5 |`), so a change in one row does not rewrite the whole table in a diff.
"""

from __future__ import annotations

import math
import re

import pandas as pd


def _cell(v):
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    return v.replace("|", "\\|").replace("\n", " ") if isinstance(v, str) else v


def markdown_table(df: pd.DataFrame, floats: str = ".3g") -> str:
    """`df` as a GitHub markdown table (no index)."""
    cells = pd.DataFrame({c: pd.Series([_cell(v) for v in df[c]], dtype=object) for c in df.columns},
                         columns=df.columns)
    lines = cells.to_markdown(index=False, floatfmt=floats, missingval="").splitlines()
    return "\n".join([_compact(lines[0]), _rule(lines[1]), *map(_compact, lines[2:])])


def _split(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def _compact(line: str) -> str:
    return "| " + " | ".join(_split(line)) + " |"


def _rule(line: str) -> str:
    """The alignment row: `---:` for right-aligned (numeric) columns, `---` otherwise."""
    return "|" + "|".join("---:" if c.endswith(":") and not c.startswith(":") else "---" for c in _split(line)) + "|"
