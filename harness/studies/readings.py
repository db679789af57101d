"""Two readings of §8's "2.9x average over 20 scenarios", from the Fig. 6 ∪ Fig. 8 speed-up
table (`harness.figures.headline.paper_scenarios`: one row per model x cluster x task x bound,
with `speedup`, `ft_ok`, `exegpt_ok`).

(a) "5 tasks x 4 bounds" (the §8 text: twenty scenarios = the five tasks S, T, G, C1, C2 at
    the four bounds p10, p30, p70, Inf): each task x bound cell is the mean speed-up over the
    systems (model x cluster) run on that task at that bound; the claim is the mean over the
    cells. C1 is paired with both the small/mid and the large models (§7), so its cells average
    over more systems; GPT-3 175B on two clusters counts as two systems.
(b) "20 model x task pairs x 4 bounds" (the report's reading until now): the mean over every
    scenario, each model x cluster x task x bound weighing the same.
Both use only scenarios where FT and ExeGPT are feasible and the speed-up is defined (FT NS:
no bound and no baseline; ExeGPT NS under a bound FT meets is counted in `how`, not averaged).
"""

from __future__ import annotations

import math

import pandas as pd

from harness.specs.paper import BOUND_LABELS, PAPER_SYSTEMS, PAPER_TASKS, SPEEDUP_AVERAGE_20


def paper_systems_only(scen: pd.DataFrame, second_175b_cluster: bool = True) -> pd.DataFrame:
    """The rows of the paper's systems (PAPER_SYSTEMS, §7): fig8 also runs GPT-3 101B and 341B on
    a40x32 (a sweep is a product); `second_175b_cluster=False` also drops GPT-3 175B on a40x32."""
    keep = {s for s in PAPER_SYSTEMS if second_175b_cluster or s != ("gpt3-175b", "a40x32")}
    return scen[[(m, c) in keep for m, c in zip(scen["model"], scen["cluster"], strict=True)]]


def _usable(scen: pd.DataFrame) -> pd.DataFrame:
    return scen[scen["ft_ok"].astype(bool) & scen["exegpt_ok"].astype(bool) & scen["speedup"].notna()]


def task_bound_cells(scen: pd.DataFrame) -> pd.DataFrame:
    """Reading (a)'s cells: one row per task x bound (paper order) with the systems averaged,
    their count and the mean speed-up (NaN where no scenario of the cell is usable)."""
    ok = _usable(scen)
    rows = []
    for task in PAPER_TASKS:
        for bound in BOUND_LABELS:
            cell = ok[(ok["task"] == task) & (ok["bound"] == bound)]
            rows.append({"task": task, "bound": bound, "systems": len(cell),
                         "models": ", ".join(sorted(f"{m}@{c}" for m, c in zip(cell["model"], cell["cluster"],
                                                                              strict=True))),
                         "mean_speedup": float(cell["speedup"].mean()) if len(cell) else math.nan})
    return pd.DataFrame(rows)


def readings(scen: pd.DataFrame) -> list[dict]:
    """The two readings (module docstring) as report rows: claim, paper, ours, how."""
    paper = SPEEDUP_AVERAGE_20.value
    ok = _usable(scen)
    lost = int((scen["ft_ok"].astype(bool) & ~scen["exegpt_ok"].astype(bool)).sum())
    ft_ns = int((~scen["ft_ok"].astype(bool)).sum())
    note = f"{ft_ns} scenario(s) with FT NS and {lost} with ExeGPT NS under a bound FT meets are left out"
    cells = task_bound_cells(scen)
    filled = cells[cells["systems"] > 0]
    pairs = ok[["model", "cluster", "task"]].drop_duplicates().shape[0]
    return [
        {"claim": "average speed-up, reading (a): 5 tasks x 4 bounds", "paper": paper,
         "ours": float(filled["mean_speedup"].mean()) if len(filled) else math.nan,
         "how": (f"mean over {len(filled)} of the {len(cells)} task x bound cells of the cell's mean over "
                 f"its systems (model x cluster; {int(filled['systems'].min()) if len(filled) else 0} to "
                 f"{int(filled['systems'].max()) if len(filled) else 0} per cell); {note}")},
        {"claim": "average speed-up, reading (b): model x task pairs x 4 bounds", "paper": paper,
         "ours": float(ok["speedup"].mean()) if len(ok) else math.nan,
         "how": (f"mean over {len(ok)} scenarios ({pairs} model x cluster x task pairs with a usable "
                 f"bound) of {len(scen)}; {note}")},
    ]
