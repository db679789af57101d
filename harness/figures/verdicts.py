"""Every claim under both readings of the paper (`mode=ours`, `mode=paper`): the headline
table of each mode side by side, and for each claim that misses in both, its cause (the
attribution factorial's, a definitional one, and what the tables themselves show).

Nothing is recomputed: the inputs are the tables `harness figures` reads.
"""

from __future__ import annotations

import pandas as pd

from harness.figures.attribution import TOL_HIGH, TOL_LOW, attribution_key, cause_text
from harness.figures.headline import headline_table

MODES = ("ours", "paper")   # column order of the two readings (harness/specs/mode.py)


def mode_of(df: pd.DataFrame) -> pd.Series:
    """Each row's reading; rows written before modes existed are `ours` (the only reading then)."""
    if "mode" not in df.columns:
        return pd.Series("ours", index=df.index)
    return df["mode"].fillna("ours").astype(str)


def _in_mode(df: pd.DataFrame | None, mode: str) -> pd.DataFrame | None:
    return None if df is None else df[mode_of(df) == mode]


def headline_by_mode(results: pd.DataFrame, case: pd.DataFrame | None = None,
                     bounds: pd.DataFrame | None = None, mono: pd.DataFrame | None = None,
                     causes: pd.DataFrame | None = None,
                     studies: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Every claim under both readings: ours and the verdict per mode, and, where a claim
    misses in both, its cause from the attribution factorial (harness.figures.attribution)."""
    modes = [m for m in MODES if (mode_of(results) == m).any()] or ["ours"]
    studies = studies or {}
    per = {m: headline_table(results[mode_of(results) == m], _in_mode(case, m), _in_mode(bounds, m),
                             _in_mode(mono, m), {k: _in_mode(v, m) for k, v in studies.items()})
           for m in modes}
    keys = ["section", "claim", "paper"]
    out = per[modes[0]][keys].copy()
    for m in modes:
        t = per[m].rename(columns={"ours": f"ours (mode={m})", "holds": f"holds (mode={m})",
                                   "ours / paper": f"ours / paper (mode={m})",
                                   "how ours is computed": f"how (mode={m})"})
        out = out.merge(t[[*keys, f"ours (mode={m})", f"ours / paper (mode={m})", f"holds (mode={m})",
                           f"how (mode={m})"]], on=keys, how="left")   # the claims of the first mode, in order
    by_key = {} if causes is None else {c["claim"]: c for _, c in causes.iterrows()}
    both_miss = out[[f"holds (mode={m})" for m in modes]].apply(
        lambda r: all(not str(v).startswith(("holds", "not in the paper", "not computed")) for v in r), axis=1)
    findings = per[modes[0]].set_index(keys)["finding"].to_dict()
    out["cause"] = [_cause(by_key, c, studies, findings.get((sec, c, p), ""), miss)
                    for sec, c, p, miss in zip(out["section"], out["claim"], out["paper"], both_miss, strict=True)]
    return out


def _cause(by_key: dict, claim: str, studies: dict, finding: str, missed: bool) -> str:
    """The factorial's cause, the definitional one (weight overhead), and what the table shows."""
    if not missed:
        return ""
    parts = [cause_text(by_key[k]) if (k := attribution_key(claim)) in by_key else
             _overhead_cause(studies.get("weight_overhead"), claim) or ""]
    parts.append(finding)
    text = "; ".join(p for p in parts if p)
    return text or "no suspect switched for this claim (see harness attribute)"


def _overhead_cause(wo: pd.DataFrame | None, claim: str) -> str | None:
    """WAA's weight overhead misses by definition: the paper does not say what it compares.
    Lists the candidate definitions (runs/fig9/weight_overhead.csv) within ±25% per mode."""
    if wo is None or not claim.startswith("WAA weight memory vs FT, "):
        return None
    family = claim.split("[")[0]
    rows = wo[wo["claim"].str.startswith(family)]
    near = {m: sorted(r["claim"].split("[")[1].rstrip("]") for _, r in g.iterrows()
                      if r["ours"] == r["ours"] and TOL_LOW <= r["ours"] / r["paper"] <= TOL_HIGH)
            for m, g in rows.groupby(mode_of(rows))}
    n = rows["claim"].nunique()
    fits = "; ".join(f"mode={m}: {', '.join(v) or 'none'}" for m, v in near.items())
    return (f"definition: the paper does not say what it compares; of {n} candidate definitions "
            f"(Fig. 9 section) within ±25% for this family: {fits}")
