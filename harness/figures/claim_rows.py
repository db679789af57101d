"""A row of the report's claims table: the paper's number, ours, their ratio and the verdict
(definitions in harness/figures/headline.py's docstring, which the report prints)."""

from __future__ import annotations

import math

import pandas as pd

TOL_LOW, TOL_HIGH = 0.8, 1.25          # "holds": ours / paper within ±25% (our tolerance)
COLUMNS = ["section", "claim", "paper", "ours", "ours / paper", "holds", "how ours is computed",
           "paper_value", "ours_value", "finding"]


def verdict(paper: float, ours: float, ref: float | None = 1.0) -> str:
    """`ref`: the value whose side the claim is about (1x: ExeGPT beats FT; 0%: WAA needs more
    memory); None for plain values (bounds, shares, Table 6 throughputs): no direction to hold."""
    if ours is None or pd.isna(ours):
        return "not computed"
    if paper and TOL_LOW <= ours / paper <= TOL_HIGH:
        return "holds (±25%)"
    if ref is not None and (ours > ref) == (paper > ref):
        return "direction only"
    return "no"


def _row(section, claim, paper, ours, how, paper_text=None, ours_text=None, unit="×", ref: float | None = 1.0,
         holds=None, finding: str = "") -> dict:
    """One claim row. `finding`: a cause read from the table itself (which knob, which task),
    shown beside the attribution factorial's."""
    fmts = {"×": "{:.2f}×", "%": "{:+.0f}%", "share": "{:.1f}%"}       # % = an increase, share = a share
    fmt = fmts.get(unit, "{:.3g}" + unit).format
    ok = ours is not None and not pd.isna(ours)
    ratio = ours / paper if ok and paper else math.nan
    return {"section": section, "claim": claim,
            "paper": paper_text or fmt(paper), "ours": ours_text or (fmt(ours) if ok else "—"),
            "ours / paper": ratio, "holds": holds or verdict(paper, ours if ok else None, ref),
            "how ours is computed": how, "paper_value": paper, "ours_value": ours if ok else math.nan,
            "finding": finding}
