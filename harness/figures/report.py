"""Regenerate every figure from the results tables, and write runs/REPORT.md.

`outputs(runs_dir)` draws, for every runs/<experiment>/results.parquet, the throughput
bars, latency-throughput curves and speed-up heat-map (and per-GPU memory where the table has
one scenario per model, i.e. fig9) into runs/<experiment>/figures/<name>.{png,pdf}, plus the
Table 5 / Table 6 markdown (and Table 5 heat-map) from the CSVs under runs/table5, runs/table6.
`report_markdown(runs_dir)` is runs/REPORT.md: provenance, the paper-vs-ours table, who wins
where, and every figure embedded by relative path. Both read tables only; `harness figures`
(harness.cli.figures) writes what they return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from harness.figures.attribution import causes
from harness.figures.curves import latency_throughput
from harness.figures.decide import decide_section
from harness.figures.engines import engines_section
from harness.figures.fidelity import fidelity_section
from harness.figures.frame import (
    POLICY_LABELS,
    Output,
    figure_output,
    load_results,
    policies_in,
    read_table,
)
from harness.figures.headline import paper_scenarios, winners
from harness.figures.heatmap import speedup_heatmap
from harness.figures.memory import memory_bars, one_scenario_per_model
from harness.figures.modern import STUDY_EXPERIMENTS, draw
from harness.figures.modern import sections as modern_sections
from harness.figures.paper_sections import (
    claims_section,
    equal_throughput_section,
    fig9_groups_section,
    paper_table5,
    search_section,
    table5_by_model,
)
from harness.figures.tables import monotonicity_heatmap, table5_markdown, table6_markdown
from harness.figures.throughput import throughput_bars
from harness.figures.verdicts import MODES, headline_by_mode, mode_of
from harness.results.markdown import markdown_table

EXPERIMENT_ORDER = ("fig6", "fig8", "full", "fig9")
FIGURES: dict[str, tuple[str, Callable]] = {          # file stem -> (caption, DataFrame -> Figure)
    "throughput": ("Throughput of FT, RRA, WAA-C, WAA-M and ExeGPT at the four bounds "
                   "(paper Fig. 6/8 style; NS = no feasible schedule)", throughput_bars),
    "speedup_heatmap": ("ExeGPT speed-up over FT per scenario", speedup_heatmap),
    "latency_throughput": ("Latency vs throughput, one point per bound", latency_throughput),
    "memory": ("Per-GPU memory: weights vs the rest (paper Fig. 9)", memory_bars),
}


def experiments(runs_dir: Path) -> list[str]:
    """Experiments with a results.parquet, paper artefacts first."""
    found = sorted(p.parent.name for p in Path(runs_dir).glob("*/results.parquet"))
    return [e for e in EXPERIMENT_ORDER if e in found] + [e for e in found if e not in EXPERIMENT_ORDER]


def _figures_for(df: pd.DataFrame) -> list[str]:
    names = ["throughput", "speedup_heatmap", "latency_throughput"]
    return names + (["memory"] if one_scenario_per_model(df) else [])


def outputs(runs_dir: Path) -> Iterator[Output]:
    """Every figure and table file whose inputs exist, one at a time (`harness.cli.figures`
    writes each). A figure that cannot be drawn is named in
    runs/<experiment>/figures/PROBLEMS.txt, never silently skipped."""
    runs_dir = Path(runs_dir)
    for exp, mode in ((e, m) for e in experiments(runs_dir) for m in MODES):
        if exp in STUDY_EXPERIMENTS:             # their own figures (harness/figures/modern.py)
            yield from draw(runs_dir, exp) if mode == "ours" else ()
            continue
        df = load_results(runs_dir / exp / "results.parquet")
        df = df[mode_of(df) == mode]
        if df.empty:
            continue
        out = runs_dir / exp / ("figures" if mode == "ours" else f"figures/mode-{mode}")
        problems = []
        for name in _figures_for(df):
            try:
                fig = FIGURES[name][1](df)
            except Exception as e:  # noqa: BLE001 - one bad figure must not hide the others
                problems.append(f"{name}: {type(e).__name__}: {e}")
                continue
            yield figure_output(fig, out / name, pdf=mode == "ours")   # paper mode: PNG only
        yield Output(out / "PROBLEMS.txt", "\n".join(problems) + "\n" if problems else None)
    mono = paper_table5(read_table(runs_dir / "table5" / "monotonicity.csv"))
    if mono is not None:
        yield Output(runs_dir / "table5" / "table5.md", table5_markdown(mono) + "\n")
        yield figure_output(monotonicity_heatmap(mono), runs_dir / "table5" / "figures" / "monotonicity")
    case = read_table(runs_dir / "table6" / "case_study.csv")
    if case is not None:
        md = table6_markdown(case, read_table(runs_dir / "table6" / "bounds.csv"))
        yield Output(runs_dir / "table6" / "table6.md", md + "\n")


def load_all(runs_dir: Path) -> pd.DataFrame:
    """Every experiment's results.parquet, concatenated (column `experiment` tells them apart)."""
    frames = []
    for exp in experiments(runs_dir):
        df = load_results(Path(runs_dir) / exp / "results.parquet")
        df["experiment"] = exp
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["experiment", "model", "cluster", "task", "bound", "policy", "status"])


def _join(values) -> str:
    vals = sorted({str(v) for v in values if v is not None and not pd.isna(v)})
    return ", ".join(vals) if vals else "—"


def _row_keys(df: pd.DataFrame) -> list[str]:
    """What identifies a row: scenario x mode (where recorded) x policy."""
    return ["model", "cluster", "task", "bound", *(["mode"] if "mode" in df.columns else []), "policy"]


def provenance_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per experiment: size, ExeGPT feasibility, git commit(s) + dirty flag, machine, cost model."""
    rows = []
    for exp, g in results.groupby("experiment", sort=False):
        ex = g[g["policy"] == "exegpt"]["status"].value_counts()
        rows.append({
            "experiment": exp, "rows": len(g),
            "scenarios": g[["model", "cluster", "task", "bound"]].drop_duplicates().shape[0],
            "ExeGPT ok / NS / failed": f"{ex.get('ok', 0)} / {ex.get('NS', 0)} / {ex.get('failed', 0)}",
            "duplicate rows": int(g.duplicated(_row_keys(g)).sum()),
            "git commit(s)": _join(str(c)[:10] for c in g.get("git_commit", pd.Series([], dtype=object)).dropna()),
            "dirty": _join(g.get("git_dirty", pd.Series([], dtype=object)).dropna()),
            "machine": _join(g.get("machine", pd.Series([], dtype=object))),
            "cost model": _join(g.get("cost_model", pd.Series([], dtype=object))),
            "search": _join(g.get("search_method", pd.Series([], dtype=object)).astype(str) + "/"
                            + g.get("search_resolution", pd.Series([], dtype=object)).astype(str)),
            "seed": _join(g.get("seed", pd.Series([], dtype=object))),
            "modes": _join(mode_of(g)),
        })
    return pd.DataFrame(rows)


def policy_summary(df: pd.DataFrame) -> str:
    """One line: every policy of an experiment, with how many of its scenarios it served."""
    parts = []
    for p in policies_in(df):
        rows = df[df["policy"] == p]
        ok = int((rows["status"] == "ok").sum())
        parts.append(f"{POLICY_LABELS.get(p, p)} (`{p}`) {ok}/{len(rows)}")
    return "Policies (scenarios with a schedule / scenarios): " + ", ".join(parts) + "."


def _figure_section(runs_dir: Path, exp: str, results: pd.DataFrame) -> list[str]:
    lines = [f"### {exp}", ""]
    rows = results[results["experiment"] == exp] if len(results) else results
    if len(rows):
        lines += [policy_summary(rows), ""]
    for name, (caption, _) in FIGURES.items():
        png = Path(exp) / "figures" / f"{name}.png"
        if (runs_dir / png).exists():
            lines += [f"**{caption}** ([PDF]({png.with_suffix('.pdf').as_posix()}))", "",
                      f"![{exp} {name}]({png.as_posix()})", ""]
    prob = runs_dir / exp / "figures" / "PROBLEMS.txt"
    if prob.exists():
        lines += ["Figures that could not be drawn:", "", "```", prob.read_text().strip(), "```", ""]
    return lines


def report_markdown(runs_dir: Path) -> str:
    runs_dir = Path(runs_dir)
    results = load_all(runs_dir)
    case = read_table(runs_dir / "table6" / "case_study.csv")
    bounds = read_table(runs_dir / "table6" / "bounds.csv")
    mono_all = read_table(runs_dir / "table5" / "monotonicity.csv")
    mono = paper_table5(mono_all)
    attr = read_table(runs_dir / "attribution" / "attribution.csv")
    why = causes(attr) if attr is not None else None
    studies = {k: v for k, v in (("equal_throughput", read_table(runs_dir / "equal_throughput" / "claims.csv")),
                                 ("weight_overhead", read_table(runs_dir / "fig9" / "weight_overhead.csv")))
               if v is not None}
    claims = headline_by_mode(results, case, bounds, mono_all, why, studies) if len(results) else None
    lines = ["# ExeGPT reproduction: paper vs ours", "",
             "Generated by `harness figures` (`harness.cli.figures:run`) from "
             "`runs/<experiment>/results.parquet`, `runs/table5/monotonicity.csv` and "
             "`runs/table6/{case_study,bounds}.csv` only: every number is read from those tables, "
             "nothing is recomputed. Paper numbers: spec §5 and §8 (ExeGPT, ASPLOS 2024).", "",
             "## Provenance", ""]
    lines += [markdown_table(provenance_table(results)) if len(results) else "No results.parquet yet.", ""]
    if len(results):
        commits = sorted(results["git_commit"].dropna().astype(str).str[:10].unique())
        dirty = sorted(results.loc[results["git_dirty"].fillna(True).astype(bool), "experiment"].unique())
        dup = results.duplicated(["experiment", *_row_keys(results)])
        dup_exps = sorted(results.loc[dup, "experiment"].unique())
        if len(commits) > 1 or dirty or dup_exps:
            lines += [f"**Caution:** the tables come from {len(commits)} commit(s) ({', '.join(commits)})"
                      + (f"; rows of {', '.join(dirty)} were produced from a dirty tree" if dirty else "")
                      + (f"; {', '.join(dup_exps)} hold several rows of one scenario × policy (jobs of "
                         "an older config hash; the first in table order is used)" if dup_exps else "")
                      + ". Rerun the sweeps from one clean commit before quoting these numbers.", ""]
    if claims is not None:
        lines += claims_section(claims, why, attr)
        for m in MODES:
            in_mode = results[mode_of(results) == m]
            if len(in_mode):
                lines += [f"## Who wins where (policy ExeGPT chose, mode={m})", "",
                          markdown_table(winners(in_mode)), ""]
        s = paper_scenarios(results[mode_of(results) == "ours"])
        if len(s):
            cols = ["model", "cluster", "task", "bound", "bound_s", "ft_status", "exegpt_status",
                    "chosen_policy", "speedup", "small_mid", "large"]
            lines += ["<details><summary>Per-scenario speed-ups of the paper's scenarios "
                      f"(fig6 ∪ fig8, {len(s)} rows)</summary>", "",
                      markdown_table(s[cols]), "", "</details>", ""]
    lines += ["## Figures", ""]
    for exp in (e for e in experiments(runs_dir) if e not in STUDY_EXPERIMENTS):
        lines += _figure_section(runs_dir, exp, results)
    if mono is not None:
        lines += ["## Table 5: monotonicity (GPT-3 39B, mode=ours)", "",
                  "![Table 5 heat-map](table5/figures/monotonicity.png)", "", table5_markdown(mono), ""]
        lines += table5_by_model(mono_all)
    lines += search_section(runs_dir)
    lines += fig9_groups_section(runs_dir, studies.get("weight_overhead"))
    lines += equal_throughput_section(runs_dir)
    if case is not None:
        lines += ["## Table 6: OPT-13B task S case study", "", table6_markdown(case, bounds), ""]
    lines += _study_sections(Path(runs_dir)) + modern_sections(Path(runs_dir)) + fidelity_section(Path(runs_dir))
    lines += decide_section(Path(runs_dir)) + engines_section(Path(runs_dir))
    return "\n".join(lines)


STUDIES = (("fig11", "Fig. 11: distribution shift, SLA variants, redeploy cost (harness shift)"),
           ("fig10", "Fig. 10: real traces (harness traces)"))


def _study_sections(runs_dir: Path) -> list[str]:
    """The studies' own summaries (written by harness.studies from their tables), with their
    figure, headings demoted one level to sit under this report's sections."""
    out = []
    for name, title in STUDIES:
        summary = runs_dir / name / "summary.md"
        if not summary.exists():
            continue
        body = [("#" + ln) if ln.startswith("#") else ln for ln in summary.read_text().splitlines()]
        out += [f"## {title}", ""]
        if (runs_dir / name / f"{name}.png").exists():
            out += [f"![{name}]({name}/{name}.png)", ""]
        out += [*body, ""]
    return out
