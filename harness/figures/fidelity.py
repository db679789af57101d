"""The fidelity study's scatter plot (`harness fidelity`, harness/studies/fidelity.py).

`scatter(table)`: predicted (discrete-event, profiled) vs measured throughput and p99-length
latency, one point per configuration coloured by policy; hollow: the same predictions scaled
by each run's speed drift (harness/runner/drift.py). The CLI saves it as fidelity-<size>.png.
`fidelity_section(runs_dir)`: REPORT.md's section from the study's summary JSON, every error
against single runs beside the repeatability floor of the same run with its verdict
(harness/studies/floor.py `vs_floor`), or the line saying the floor was not measured.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from harness.results.markdown import markdown_table

PANELS = (("real_throughput_seq_s", "sim_throughput_seq_s", "throughput (seq/s)"),
          ("real_latency_p99len_s", "sim_latency_p99len_s", "p99-length latency (s)"))


def _panel(ax, ok: pd.DataFrame, real: str, sim: str, title: str) -> None:
    for pol, g in ok.groupby("policy"):
        ax.scatter(g[real], g[sim], label=pol, s=22)
    if "speed_drift" in ok:      # the same predictions at each run's measured speed (drift.py)
        scale = 1 / ok.speed_drift if real.startswith("real_throughput") else ok.speed_drift
        ax.scatter(ok[real], ok[sim] * scale, s=22, facecolors="none", edgecolors="grey", lw=0.7,
                   label="x run's speed drift")
    lo, hi = np.nanmin(ok[[real, sim]].to_numpy()) * 0.8, np.nanmax(ok[[real, sim]].to_numpy()) * 1.25
    xs = np.geomspace(lo, hi, 50)
    ax.plot(xs, xs, "k-", lw=0.8)
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="grey", alpha=0.2, label="±10%")
    ax.set(xscale="log", yscale="log", xlabel=f"measured {title}", ylabel=f"simulated {title}", title=title)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())
        axis.set_major_formatter(ScalarFormatter())
    ax.legend(fontsize=7)


def scatter(df: pd.DataFrame) -> Figure:
    """The fidelity table's successful configurations, predicted vs measured (module docstring)."""
    ok = df[df.status == "ok"]
    fig = Figure(figsize=(10, 4.5))
    axes = fig.subplots(1, 2)
    for ax, (real, sim, title) in zip(axes, PANELS, strict=True):
        _panel(ax, ok, real, sim, title)
    fig.suptitle("XSimulator (discrete-event, profiled cost model) vs real runner, cpu-2w")
    fig.tight_layout()
    return fig


# ---- REPORT.md's section (harness/figures/report.py) ---------------------------------------------
PREDICTOR_LABELS = {"discrete-event": "discrete-event (same requests)",
                    "discrete-event, pipeline points": "discrete-event, pipeline stage priced from the pipeline points",
                    "expected-value": "expected-value (steady state)",
                    "drift-scaled": "discrete-event x the run's speed drift (diagnostic)"}


def _pct(v) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, int | float) and not math.isnan(v) else "n/a"


def _floor_rows(s: dict) -> list[dict]:
    """The summary's `vs_floor` rows; for a summary written before them, the discrete-event rows
    rebuilt from its floor keys (harness.studies.floor.floor); none without a floor or rows."""
    from harness.studies.floor import verdict
    if s.get("vs_floor"):
        return s["vs_floor"]["rows"]
    if "floor_median_abs_err_throughput" not in s:
        return []
    return [{"scope": "all", "predictor": "discrete-event", "metric": m, "configs": s.get("floor_configs"),
             **{f"{k}{st}_abs_err": s.get(f"{pre}{st}_abs_err_{m}")
                for k, pre in (("", "sim_per_run_"), ("floor_", "floor_"), ("hindsight_", "hindsight_"))
                for st in ("median", "max")},
             **{f"{st}_verdict": verdict(s.get(f"sim_per_run_{st}_abs_err_{m}"), s.get(f"floor_{st}_abs_err_{m}"))
                for st in ("median", "max")}}
            for m in ("throughput", "latency")]


def _drift_table(s: dict) -> list[str]:
    """Per kind of run, the median speed drift against the profile's whole-stack pricing and with a
    pipeline stage priced from the pipeline points (studies/fidelity.py `drift_by_kind`)."""
    rows = s.get("drift_by_kind") or []
    if not rows or "drift_whole_stack" not in rows[0]:
        return []
    d = pd.DataFrame(rows)
    show = pd.DataFrame({"policy": d.policy.str.upper(), "decode layout": d.decode_layout, "runs": d.runs,
                         "median drift, whole-stack points (default)": d.drift_whole_stack.map("{:.3f}".format),
                         "within +-5% of 1": d.within_band.map({True: "yes", False: "no"}),
                         "median drift, pipeline points": d.drift_pipeline_points.map("{:.3f}".format),
                         "within +-5% of 1 (pipeline points)": d.within_band_pipeline_points.map({True: "yes", False: "no"})})
    return ["Speed drift by kind of run (measured / profiled time of the run's own decode calls, "
            "harness/runner/drift.py; 1 = the run's decode ran at the profile's speed): the same runs priced by "
            "the profile's whole-stack points (the default) and with a pipeline stage priced from points timed "
            "inside a 2-stage pipeline (`decode_pipe`, `ProfiledCostModel(contention_aware=True)`):", "",
            markdown_table(show), ""]


def _beside(err, verdict: str) -> str:
    """An error number with its verdict (none where no floor was measured)."""
    return _pct(err) if verdict == "floor not measured" else f"{_pct(err)}: {verdict}"


def _overall_table(rows: list[dict]) -> pd.DataFrame:
    """Per metric and statistic: the floor, the hindsight bound and every predictor beside them."""
    out = []
    for m in ("throughput", "latency"):
        for st in ("median", "max"):
            here = [r for r in rows if r["scope"] == "all" and r["metric"] == m]
            if not here:
                continue
            floor, hind = here[0][f"floor_{st}_abs_err"], here[0][f"hindsight_{st}_abs_err"]
            line = {"against single runs, \\|error\\|": f"{m} {st}",
                    "floor: a perfect predictor": _pct(floor) if floor is not None else "not measured",
                    "hindsight: the best single number": _pct(hind) if hind is not None else "not measured"}
            out.append(line | {PREDICTOR_LABELS.get(r["predictor"], r["predictor"]):
                               _beside(r[f"{st}_abs_err"], r[f"{st}_verdict"]) for r in here})
    return pd.DataFrame(out)


def _policy_table(rows: list[dict]) -> pd.DataFrame:
    """Per policy and metric: the median |error| of every predictor beside that policy's floor."""
    from harness.figures.frame import POLICY_LABELS
    out = {}
    for r in (r for r in rows if r["scope"] != "all"):
        key = (r["scope"], r["metric"])
        fl = r["floor_median_abs_err"]
        out.setdefault(key, {"policy": POLICY_LABELS.get(r["scope"], r["scope"]), "metric": r["metric"],
                             "configs": str(r["configs"]),
                             "floor (median)": _pct(fl) if fl is not None else "not measured"})
        out[key][PREDICTOR_LABELS.get(r["predictor"], r["predictor"])] = _beside(r["median_abs_err"],
                                                                                 r["median_verdict"])
    return pd.DataFrame(list(out.values()))


def _target_lines(s: dict, rows: list[dict]) -> list[str]:
    """The two targets, and the missing floor said plainly."""
    from harness.studies.floor import (
        FLOOR_MARGIN,
        NO_FLOOR,
        TARGET_MAX_ABS_ERR,
        TARGET_MEDIAN_ABS_ERR,
    )
    out = [f"**Target here: at the floor**: a predictor's |error| against single runs at most "
           f"{100 * FLOOR_MARGIN:.0f} points above the repeatability floor measured in the same run (median against "
           "the floor's median, max against the floor's max; harness/studies/floor.py). The absolute target, "
           f"median <= {100 * TARGET_MEDIAN_ABS_ERR:.0f}% and max <= {100 * TARGET_MAX_ABS_ERR:.0f}%, is the target "
           "on a quiet machine (a lent GPU or a dedicated host).", ""]
    if not any(r["floor_median_abs_err"] is not None for r in rows if r["scope"] == "all"):
        out += [f"**{NO_FLOOR}** (`make fidelity` runs 3; `make reproduce` runs each configuration once to stay "
                f"in its time budget): this run of {s.get('repeats', 1)} per configuration cannot tell the "
                "simulator's error from this machine's run-to-run noise.", ""]
    return out


def _kept_table(s: dict) -> list[str]:
    """The study's table: against each configuration's kept run (the median-throughput one)."""
    out = [f"The study's table (each configuration's median-throughput run of {s.get('repeats', 1)} kept; the "
           "scatter plot's points):", "",
           "| predictor | throughput median | max | p99-length latency median | max |", "|---|---:|---:|---:|---:|"]
    for label, pre in (("discrete-event (same requests)", ""), ("expected-value (steady state)", "ev_"),
                       ("discrete-event x the run's speed drift (diagnostic, harness/runner/drift.py)", "drift")):
        cols = [f"{st}_abs_{'' if pre == 'drift' else pre}err_{m}{'_drift' if pre == 'drift' else ''}"
                for m in ("throughput", "latency") for st in ("median", "max")]
        if cols[0] in s:
            out.append(f"| {label} | " + " | ".join(_pct(s.get(c)) for c in cols) + " |")
    return [*out, ""]


def _ratio_line(r: dict) -> list[str]:
    return [f"Searched {r['searched_policy']} {r['searched_knobs']} vs FT batch {r['ft_batch']} under "
            f"{r['bound_s']:.2f} s ({r['model']}, {r['task']}): measured throughput ratio "
            f"{r['ratio_real']:.2f}x, predicted {r['ratio_sim']:.2f}x (discrete-event), "
            f"{r['ratio_ev']:.2f}x (expected-value)"
            + (f", {r['ratio_sim_drift']:.2f}x (discrete-event x each run's speed drift)" if "ratio_sim_drift" in r else "")
            + ".", ""]


def fidelity_section(runs_dir) -> list[str]:
    """Real execution vs the simulators (not in the paper; `harness fidelity`, issues 7 and 20),
    from the largest study's summary JSON under runs/fidelity/; nothing when none was run. Every
    error against single runs is printed beside the floor of the same run, with its verdict."""
    import json
    from pathlib import Path

    from harness.studies.floor import TARGET_MAX_ABS_ERR
    runs_dir = Path(runs_dir)
    path = next((p for size in ("full", "large", "tiny")
                 if (p := runs_dir / "fidelity" / f"summary-{size}.json").exists()), None)
    if path is None:
        return []
    size, s = path.stem.removeprefix("summary-"), json.loads(path.read_text())
    rows = _floor_rows(s)
    out = ["## Real execution vs the simulators (CPU mini-cluster; not in the paper)", "",
           f"`harness fidelity` ({size}: {s.get('ok')} of {s.get('configs')} configurations ran, "
           f"{s.get('disturbed')} disturbed, {s.get('repeats', 1)} run(s) each; docs/real-execution.md). "
           "|error| of predicted vs measured.", "", *_target_lines(s, rows)]
    if rows:
        out += ["Against single runs (per pass, then the median over passes), beside the floor of the same runs:", "",
                markdown_table(_overall_table(rows)), ""]
        by_policy = _policy_table(rows)
        if len(by_policy):
            out += ["By policy (median |error| against single runs; each policy's floor from its own "
                    "configurations):", "", markdown_table(by_policy), ""]
    if "hindsight_over_target_throughput" in s:
        out += [f"{s.get('hindsight_over_target_throughput')} (throughput) and {s.get('hindsight_over_target_latency')} "
                f"(latency) of {s.get('floor_configs')} configurations ran so unevenly that no prediction is within "
                f"{100 * TARGET_MAX_ABS_ERR:.0f}% of all their runs: the absolute target is not reachable here.", ""]
    out += _kept_table(s) + _drift_table(s)
    if (runs_dir / "fidelity" / f"fidelity-{size}.png").exists():
        out += [f"![fidelity](fidelity/fidelity-{size}.png)", ""]
    return out + (_ratio_line(s["ft_ratio"]) if s.get("ft_ratio") else [])
