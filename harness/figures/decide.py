"""Decision fidelity's figure: per scenario x bound, each candidate's measured throughput
against the search's estimate (the chosen one marked, the bound's misses hollow); and
REPORT.md's section, the per-pass regret and tau beside the noise floor of the same run."""

from __future__ import annotations

import math

import pandas as pd


def ranking(cands: pd.DataFrame, runs: pd.DataFrame, scores: pd.DataFrame):
    import matplotlib.pyplot as plt
    keys = list(scores[["model", "task", "bound"]].itertuples(index=False, name=None)) if len(scores) else []
    cols = max(1, min(4, len(keys)))
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    real = runs.groupby(["model", "task", "candidate"]).agg(thr=("real_throughput_seq_s", "mean"),
                                                              lat=("real_latency_s", "mean")).reset_index()
    for ax, (model, task, bound) in zip(axes.flat, keys, strict=False):
        c = cands[(cands.model == model) & (cands.task == task) & (cands.bound == bound) & cands.runnable]
        c = c.drop_duplicates("candidate").merge(real, on=["model", "task", "candidate"], how="left")
        meets = c.lat < c.bound_s
        ax.scatter(c.est_throughput_seq_s[meets], c.thr[meets], s=30, c="tab:blue")
        ax.scatter(c.est_throughput_seq_s[~meets], c.thr[~meets], s=30, facecolors="none", edgecolors="tab:blue")
        ch = c[c.chosen]
        ax.scatter(ch.est_throughput_seq_s, ch.thr, s=120, marker="*", c="tab:red", zorder=3)
        for _, r in c.iterrows():
            ax.annotate(r.policy, (r.est_throughput_seq_s, r.thr), fontsize=6, xytext=(2, 2), textcoords="offset points")
        sc = scores[(scores.model == model) & (scores.task == task) & (scores.bound == bound)].iloc[0]
        ax.set_title(f"{model} {task} {bound}: regret {sc.get('regret', math.nan):.1%}, τ {sc.get('tau', math.nan):.2f}",
                     fontsize=7)
        ax.set_xlabel("search estimate (seq/s)", fontsize=7)
        ax.set_ylabel("measured (seq/s)", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle("Decision fidelity (★ chosen; hollow: misses the bound for real)", fontsize=8)
    fig.tight_layout()
    return fig


def _beside_floor(sc: pd.DataFrame, pct) -> dict:
    """The table's per-pass columns, each with the noise floor beside it (studies/decide.py
    `noise_floor`); none for scores written before them."""
    if "regret_floor" not in sc:
        return {}
    num = lambda v: f"{v:.2f}" if isinstance(v, int | float) and not math.isnan(v) else "n/a"  # noqa: E731
    return {"regret per pass (noise floor)": [f"{pct(r)} (floor {pct(f)})" for r, f in zip(sc.regret_per_pass,
                                                                                           sc.regret_floor, strict=True)],
            "tau per pass (noise floor)": [f"{num(r)} (floor {num(f)})" for r, f in zip(sc.tau_per_pass, sc.tau_floor,
                                                                                        strict=True)]}


def _floor_lines(s: dict, pct) -> list[str]:
    """The summary's per-pass numbers beside the noise floor measured in the same run, or why none."""
    if "median_regret_floor" not in s:
        return []
    floor = s.get("median_regret_floor")
    missing = [not isinstance(v, int | float) or math.isnan(v) for v in (floor, s.get("median_tau_floor"))]
    if all(missing):
        return ["**Noise floor not measured: run with study.passes>=2** (one pass is its own mean).", ""]
    return [f"Against single passes (what a one-pass study measures), beside the noise floor of the same run "
            f"(a perfect chooser: the candidate with the best mean over the passes; a perfect ranker: the "
            f"mean-over-passes ranking): median regret {pct(s.get('median_regret_per_pass'))} (floor {pct(floor)}), "
            f"max {pct(s.get('max_regret_per_pass'))} (floor {pct(s.get('max_regret_floor'))}); median tau "
            f"{s.get('median_tau_per_pass', math.nan):.2f} (floor {s.get('median_tau_floor', math.nan):.2f}).", ""]


def _margin_lines(s: dict, pct) -> list[str]:
    """The second chooser (studies/decide.py `margin_choice`), scored on the same runs."""
    if "median_regret_margin" not in s:
        return []
    return [f"With a latency margin of {pct(s.get('latency_margin'))} (a second chooser on the same runs: the best "
            f"estimate under (1 - margin) x the bound; `study.latency_margin`): median regret "
            f"{pct(s.get('median_regret_margin'))}, max {pct(s.get('max_regret_margin'))}; the chosen schedule met its "
            f"bound in {pct(s.get('bound_met_share_margin'))} of runs (the paper's chooser, margin 0: columns chosen, "
            "regret, bound_met).", ""]


def decide_section(runs_dir) -> list[str]:
    """REPORT.md's decision-fidelity section from runs/decide/ (`harness decide`); nothing when
    it was not run."""
    import json
    from pathlib import Path

    from harness.results.markdown import markdown_table
    d = Path(runs_dir) / "decide"
    if not (d / "summary.json").exists() or not (d / "scores.csv").exists():
        return []
    s, sc = json.loads((d / "summary.json").read_text()), pd.read_csv(d / "scores.csv")
    pct = lambda v: f"{100 * v:.1f}%" if isinstance(v, int | float) and not math.isnan(v) else "n/a"  # noqa: E731
    t = s.get("targets", {})
    show = sc.assign(regret=[f"{pct(r)} [{pct(lo)}, {pct(hi)}]" for r, lo, hi in zip(sc.regret, sc.regret_lo, sc.regret_hi,
                                                                                    strict=True)],
                     tau=[f"{v:.2f} [{lo:.2f}, {hi:.2f}]" for v, lo, hi in zip(sc.tau, sc.tau_lo, sc.tau_hi, strict=True)],
                     bound_met=sc.bound_met_share.map(pct), **_beside_floor(sc, pct))
    if "regret_margin" in sc:
        show = show.assign(regret_margin=sc.regret_margin.map(pct), bound_met_margin=sc.bound_met_share_margin.map(pct))
    cols = ["model", "task", "bound", "candidates", "passes", "chosen", "real_best", "regret",
            "regret per pass (noise floor)", "tau", "tau per pass (noise floor)", "tau_des", "bound_met",
            "chosen_margin", "regret_margin", "bound_met_margin"]
    out = ["## Decision fidelity: does the simulator's choice win for real? (CPU mini-cluster; not in the paper)", "",
           f"`harness decide` ({s.get('scored')} of {s.get('scenarios')} scenarios scored): the search's candidates "
           "(each policy's best under the bound, FT tuned under it, the chosen policy's runner-up) run on the "
           "2-worker mini-cluster, pass by pass; regret = real best meeting the bound / real chosen - 1; tau = "
           "Kendall tau of the search's estimates vs the measurements (tau_des: the discrete-event simulator on "
           "the run's requests); intervals: bootstrap over passes.", "",
           f"Median regret {pct(s.get('median_regret'))} (target <= {pct(t.get('median_regret'))}), max "
           f"{pct(s.get('max_regret'))} (<= {pct(t.get('max_regret'))}); median tau {s.get('median_tau', math.nan):.2f} "
           f"(>= {t.get('tau')}), tau_des {s.get('median_tau_des', math.nan):.2f}; the chosen schedule met its bound "
           f"in {pct(s.get('bound_met_share'))} of runs (>= {pct(t.get('bound_met_share'))}).", "",
           *_floor_lines(s, pct), *_margin_lines(s, pct), markdown_table(show[[c for c in cols if c in show]]), ""]
    if (d / "decide.png").exists():
        out += ["![decision fidelity](decide/decide.png)", ""]
    return out
