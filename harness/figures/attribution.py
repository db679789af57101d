"""Causes of the misses, read from runs/attribution/attribution.csv (`harness attribute`).

A claim misses when ours / paper is outside [0.8, 1.25] (the report's tolerance). For each
claim that misses in both readings, the cause is the suspect whose switch alone moves the
claim most towards the paper's number, with a verdict:
  "explained": that switch alone brings the claim within ±25% (from at least one base mode);
  "main contributor": it closes at least half of the miss (in log ratio);
  "partly": it closes less than half; "unexplained": no listed suspect moves it closer.
Nothing is recomputed here: the factorial's table is only ranked.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.figures.claim_rows import TOL_HIGH, TOL_LOW  # the report's ±25% band

# Report claim (harness.figures.headline) -> the factorial's claim of the same number.
CLAIM_KEYS: dict[str, str] = {
    "average over the paper's 20 scenarios": "§8 average speed-up (20 pairs x 4 bounds)",
    "maximum (paper: GPT-3 175B, G, tightest bound)": "§8 maximum speed-up",
    "GPT-3 175B, task G, tightest bound": "§8 GPT-3 175B G tightest bound",
    "small/mid models: average": "§8 small/mid average",
    "small/mid models: best": "§8 small/mid best",
    "GPT-3 39B, task S, L = 9.8 s (WAA)": "§8 GPT-3 39B S at the bound nearest 9.8 s",
    "large models: average": "§8 large average",
    "large models: minimum of range": "§8 large minimum",
    "large models: maximum of range": "§8 maximum speed-up",
    "large models at L = Inf: average": "§8 large at Inf average",
    "OPT-13B S FT-derived bound p10": "§7 OPT-13B S bound p10 (s)",
    "OPT-13B S FT-derived bound p30": "§7 OPT-13B S bound p30 (s)",
    "OPT-13B S FT-derived bound p70": "§7 OPT-13B S bound p70 (s)",
    "GPT-3 39B S: FT-derived bound nearest 9.8 s": "§7 GPT-3 39B S bound nearest 9.8 s",
    "up to 6x lower latency at equal throughput (max over scenarios)":
        "§8 GPT-3 39B S: latency ratio FT / ExeGPT at equal throughput",
    "GPT-3 39B S: latency ratio FT / ExeGPT": "§8 GPT-3 39B S: latency ratio FT / ExeGPT at equal throughput",
    "GPT-3 39B S: ExeGPT latency at FT's throughput (s)": "§8 GPT-3 39B S: ExeGPT latency at FT's throughput (s)",
    "GPT-3 39B S: FT latency at its best throughput (s)": "§8 GPT-3 39B S: FT latency at its best throughput (s)",
}


WHO_WINS: dict[str, str] = {
    "small/mid (fig6), tight bounds p10/p30": "who wins: small/mid, tight bounds p10/p30: WAA share",
    "small/mid (fig6), short outputs S/C1": "who wins: small/mid, short outputs S/C1: WAA share",
    "small/mid (fig6), long outputs T": "who wins: small/mid, long outputs T: RRA share",
    "large (fig8), all bounds": "who wins: large, all bounds: RRA share",
}


def attribution_key(claim: str) -> str | None:
    """The factorial's key of a report claim (Table 6 rows by their bound), or None."""
    if claim in CLAIM_KEYS:
        return CLAIM_KEYS[claim]
    if claim.startswith(tuple(WHO_WINS)):
        return WHO_WINS[claim.split(":")[0]]
    if claim.startswith("OPT-13B S, L = "):
        tag = claim.removeprefix("OPT-13B S, L = ").split(":")[0]
        if claim.endswith("the paper's schedule priced by our model, latency"):
            return f"Table 6 L={tag}: paper's schedule, latency in our model (s)"
        if claim.endswith("the paper's schedule priced by our model, throughput"):
            return f"Table 6 L={tag}: paper's schedule, throughput in our model (seq/s)"
        return f"Table 6 L={tag}: ExeGPT throughput (seq/s)"
    return None


def _holds(ratio: float, claim: str = "") -> bool:
    """Within ±25% of the paper; a who-wins share (paper value: the 0.5 threshold) above it."""
    if claim.startswith("who wins"):
        return ratio > 1.0
    return TOL_LOW <= ratio <= TOL_HIGH


def causes(attr: pd.DataFrame) -> pd.DataFrame:
    """One row per factorial claim: base ratio per mode, the best single switch and the verdict."""
    rows = []
    for claim, g in attr.groupby("claim", sort=False):
        base = g[g["suspect"] == "—"].set_index("base_mode")["ratio"]
        row = {"claim": claim, "paper": g["paper"].iloc[0],
               **{f"ours/paper (mode={m})": base.get(m, math.nan) for m in ("ours", "paper")}}
        missed = all(not _holds(r, claim) for r in base if pd.notna(r))
        moves = g[(g["suspect"] != "—") & g["closer_by"].notna()]
        if moves.empty:
            row.update({"best single switch": "—", "from mode": "—", "gives ours/paper": math.nan,
                        "verdict": "no suspect computed"})
        else:
            top = moves.loc[moves["closer_by"].idxmax()]
            gap = abs(math.log(top["base_ratio"])) if top["base_ratio"] > 0 else math.nan
            if top["closer_by"] <= 1e-9:
                verdict = "unexplained by the listed suspects"
                top = top.copy()
                top["suspect"], top["base_mode"], top["ratio"] = "—", "—", math.nan
            elif _holds(top["ratio"], claim):
                verdict = "explained"
            else:
                verdict = "main contributor" if top["closer_by"] >= gap / 2 else "partly"
            row.update({"best single switch": top["suspect"], "from mode": top["base_mode"],
                        "gives ours/paper": top["ratio"], "verdict": verdict})
        row["also explained by"] = _others_within(moves, row.get("best single switch"), claim)
        row["misses in both modes"] = missed
        rows.append(row)
    return pd.DataFrame(rows)


def _others_within(moves: pd.DataFrame, best: str | None, claim: str) -> str:
    """Other switches that alone bring the claim within ±25% (several hypotheses can fit)."""
    fit = moves[moves["ratio"].map(lambda r: _holds(r, claim)) & (moves["suspect"] != best)]
    fit = fit.sort_values("closer_by", ascending=False).drop_duplicates("suspect")
    return "; ".join(f"{r.suspect} (mode={r.base_mode}: {r.ratio:.2f}×)" for r in fit.itertuples(index=False))


def cause_text(c: pd.Series) -> str:
    """One line for the report's cause column."""
    if not c["misses in both modes"]:
        return "holds in one mode"
    if c["best single switch"] == "—" or c["verdict"].startswith("unexplained"):
        return c["verdict"]
    also = c.get("also explained by") or ""
    if str(c["claim"]).startswith("who wins"):       # a share against the 0.5 threshold
        gives = f"a share of {100 * c['gives ours/paper'] * c['paper']:.0f}%"
        also_text = f"; also above half alone: {also}" if also else ""
    else:
        gives = f"{c['gives ours/paper']:.2f}× the paper"
        also_text = f"; also within ±25% alone: {also}" if also else ""
    return f"{c['verdict']}: {c['best single switch']} (from mode={c['from mode']}) gives {gives}{also_text}"


def suspect_table(attr: pd.DataFrame, claim: str) -> pd.DataFrame:
    """Every switch's effect on one claim: ours / paper per base mode, and how much closer."""
    g = attr[attr["claim"] == claim]
    wide = g.pivot_table(index=["kind", "suspect"], columns="base_mode", values=["ratio", "closer_by"],
                         aggfunc="first", sort=False)
    wide.columns = [f"{'ours/paper' if a == 'ratio' else 'closer by (log)'} from mode={b}" for a, b in wide.columns]
    return wide.reset_index()
