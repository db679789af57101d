"""`harness <command> [hydra overrides...]`: the console script.

A `UserError` is printed as one line `harness: error: <message>` on stderr, exit code 2,
without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from harness.config import build_scenario, compose
from harness.errors import UserError, unknown_name
from harness.workload import LengthDistribution

USAGE = "usage: harness <command> [hydra overrides...]   (e.g. harness show model=gpt3-39b task=T)"


def _lengths(d: LengthDistribution) -> dict:
    return {"mean": round(d.mean, 2), "std": round(d.std, 2), "p99": d.p99, "max": d.max}


def show(overrides: list[str]) -> None:
    """Print the resolved scenario (model, cluster, workload, paths) as one JSON object."""
    s = build_scenario(compose(overrides))
    m, c, w = s.model, s.cluster, s.workload
    print(json.dumps({
        "model": {"name": m.name, "family": m.family, "params_b": round(m.num_params() / 1e9, 3),
                  "layers": m.num_layers, "hidden": m.hidden_size, "heads": m.num_heads},
        "cluster": {"name": c.name, "gpu": c.gpu.name, "num_gpus": c.num_gpus, "nodes": c.num_nodes},
        "workload": {"name": w.name, "source": w.source,
                     "input": _lengths(w.input), "output": _lengths(w.output)},
        "cost_model": s.cost_model_name,
        "seed": s.seed,
        "paths": {k: str(getattr(s.paths, k)) for k in type(s.paths).__slots__},
    }, indent=2, ensure_ascii=False))


def calibrate(overrides: list[str]) -> None:
    """Compare the analytic cost model with published FT latencies and Vidur profiles
    (`--fit` first refits its constants and rewrites harness/cost_model/fitted/)."""
    try:
        from harness.cost_model.calibration import run as run_calibration
    except ModuleNotFoundError as e:
        if e.name != "harness.cost_model.calibration":
            raise
        raise UserError("calibrate: harness.cost_model.calibration is not implemented yet") from None
    fit = "--fit" in overrides
    paths = build_scenario(compose([o for o in overrides if o != "--fit"])).paths
    for key, path in (("paths.profiles", paths.profiles), ("paths.ft_calibration", paths.ft_calibration)):
        if not path.exists():
            raise UserError(f"{key}: {path} does not exist (set paths.shared or HARNESS_SHARED_DIR)")
    run_calibration(paths.profiles, paths.ft_calibration, fit=fit)


def estimate(overrides: list[str]) -> None:
    """Evaluate one policy with given knobs (policy=<name> policy.<knob>=<v>); prints JSON."""
    from harness.cli.commands import estimate_json
    cfg = compose(overrides)
    print(json.dumps(estimate_json(build_scenario(cfg), cfg), indent=2))


def bounds(overrides: list[str]) -> None:
    """FT latencies over batch sizes and the p10/p30/p70/Inf latency bounds (ExeGPT §7); JSON."""
    from harness.cli.commands import bounds_json
    print(json.dumps(bounds_json(build_scenario(compose(overrides))), indent=2))


def search(overrides: list[str]) -> None:
    """Best schedule under a latency bound (bound=p10|p30|p70|inf or bound_s=<s>; ExeGPT §5); JSON."""
    from harness.cli.commands import search_json
    cfg = compose(overrides)
    print(json.dumps(search_json(build_scenario(cfg), cfg), indent=2))


def case_study(overrides: list[str]) -> None:
    """Paper Table 6: OPT-13B / S / a40x4 at 3.1, 5.9, 11.5 s, Inf, ours beside the paper's; writes runs/table6/."""
    import pandas as pd

    from harness.cli.commands import context, markdown_table, write_csv_atomic
    from harness.scheduler.bounds import derive_bounds
    from harness.scheduler.case_study import SCENARIO, bound_rows, case_study_rows
    m, c, t = SCENARIO
    # Both readings unless a mode is given (`mode=paper`, `mode.latency=...`).
    modes = [[]] if any(o.startswith("mode") for o in overrides) else [["mode=ours"], ["mode=paper"]]
    rows, brows = [], []
    for mode in modes:
        s = build_scenario(compose([f"model={m}", f"cluster={c}", f"task={t}", *overrides, *mode]))
        ctx = context(s)
        rows.append(pd.DataFrame(case_study_rows(ctx, s.search.resolution)).assign(mode=s.mode.label()))
        brows.append(pd.DataFrame(bound_rows(derive_bounds(ctx))).assign(mode=s.mode.label()))
    rows, brows = pd.concat(rows, ignore_index=True), pd.concat(brows, ignore_index=True)
    out = Path("runs/table6")
    write_csv_atomic(rows, out / "case_study.csv")
    write_csv_atomic(brows, out / "bounds.csv")
    print(markdown_table(rows))
    print()
    print(markdown_table(brows))
    print(f"wrote {out}/case_study.csv, {out}/bounds.csv", file=sys.stderr)


def attribute(overrides: list[str]) -> None:
    """Why claims miss: each suspect (mode options, FT baseline, cost-model constants) switched alone from mode=paper and mode=ours; writes runs/attribution/."""
    from harness.cli.commands import write_csv_atomic
    from harness.specs.mode import PAPER, make_mode
    from harness.studies.attribution import factorial
    s = build_scenario(compose([o for o in overrides if not o.startswith("--")]))
    modes = [s.mode] if any(o.startswith("mode") for o in overrides) else [PAPER, make_mode("ours")]
    fine = any(o.startswith("search.resolution") for o in overrides)     # default: coarse (the docstring of
    table = factorial(modes, s.search.resolution if fine else "coarse", n_jobs=2)   # harness.studies.attribution)
    path = Path("runs/attribution/attribution.csv")
    write_csv_atomic(table, path)
    print(f"wrote {path} ({len(table)} rows: {table['suspect'].nunique()} variants x "
          f"{table['claim'].nunique()} claims)", file=sys.stderr)


def memory(overrides: list[str]) -> None:
    """Fig. 9 as the paper ran it: per-GPU memory of each GPU group (OPT-13B, GPT-3 101B; T, G; no bound), WAA's weight overhead under each definition; writes runs/fig9/."""
    from harness.cli.commands import markdown_table
    from harness.studies.memory_groups import run as run_memory
    tables = run_memory(Path("runs/fig9"), overrides=tuple(overrides))
    print(markdown_table(tables["weight_overhead"].drop(columns=["how"])))


def equal_throughput(overrides: list[str]) -> None:
    """§8 latency at equal throughput: ExeGPT's lowest latency reaching FT's best throughput, per paper scenario, both modes (coarse grid unless search.resolution=fine); writes runs/equal_throughput/."""
    from harness.cli.commands import markdown_table
    from harness.studies.equal_throughput import run as run_equal
    fine = any(o.startswith("search.resolution") for o in overrides)      # default coarse: ~1 min, not ~2.5
    tables = run_equal(Path("runs/equal_throughput"), resolution="fine" if fine else "coarse",
                       overrides=tuple(o for o in overrides if not o.startswith("search.resolution")))
    print(markdown_table(tables["claims"].drop(columns=["how"])))


def sweep(overrides: list[str]) -> None:
    """Run an experiment's sweep (resumable, progress bar) into runs/<experiment>/results.parquet."""
    from harness.cli.sweep import sweep as run_sweep
    run_sweep(overrides)


GOLDEN = Path(__file__).resolve().parents[2] / "benchmarks" / "golden" / "regress.json"


def regress(overrides: list[str]) -> None:
    """Searched throughput vs the committed golden file; fails on a >1% drop, a violated bound or a feasibility change (--update rewrites it)."""
    import pandas as pd

    from harness.cli.commands import markdown_table
    from harness.results.golden import (
        benchmark_json,
        compare,
        golden_document,
        load_golden,
        run_scenarios,
    )
    from harness.results.record import provenance
    from harness.results.store import atomic_write_text
    update = "--update" in overrides
    extra = [o for o in overrides if o != "--update"]
    if extra:
        raise UserError(f"regress: takes no overrides (the scenario set is fixed), got {' '.join(extra)}; use --update")
    golden = load_golden(GOLDEN) if GOLDEN.exists() else None
    if golden is None and not update:
        raise UserError(f"regress: no golden file at {GOLDEN}; create it with `make regress-update`")
    now = run_scenarios({k: v["bound_s"] for k, v in golden.items()} if golden and not update else None)
    out = Path("runs/regress")
    atomic_write_text(out / "benchmark.json", json.dumps(benchmark_json(now), indent=2))
    if golden is not None:
        rows, failures = compare(golden, now)
        print(markdown_table(pd.DataFrame(rows)))
    if update:
        atomic_write_text(GOLDEN, json.dumps(golden_document(now, provenance()["git_commit"]), indent=2) + "\n")
        print(f"wrote {GOLDEN} ({len(now)} scenarios)", file=sys.stderr)
        return
    print(f"wrote {out}/benchmark.json (github-action-benchmark, customBiggerIsBetter)", file=sys.stderr)
    if failures:
        raise UserError(f"regress: {len(failures)} regression(s): " + "; ".join(failures))
    print(f"regress: {len(rows)} scenarios, no regression", file=sys.stderr)


def figures(overrides: list[str]) -> None:
    """Regenerate every figure and runs/REPORT.md from the results tables alone (no recomputation)."""
    from harness.figures.cli import run as write_all
    if overrides:
        raise UserError(f"figures: takes no overrides, got {' '.join(overrides)}")
    write_all(Path("runs"))


def shift(overrides: list[str]) -> None:
    """Fig. 11: a schedule tuned on the nominal distribution under output-length shifts, SLA-(a)/(b), redeploy cost; writes runs/fig11/."""
    from harness.studies.shift import run as run_shift
    run_shift(Path("runs/fig11"), overrides=tuple(overrides))
    print((Path("runs/fig11") / "summary.md").read_text())


def traces(overrides: list[str]) -> None:
    """Fig. 10: real traces (10% estimates, 90% replayed), gains over FT, correlations, online replay; writes runs/fig10/."""
    from harness.studies.traces import run as run_traces
    s = build_scenario(compose(overrides))
    if not s.paths.traces.exists():
        raise UserError(f"paths.traces: {s.paths.traces} does not exist (set paths.shared or HARNESS_SHARED_DIR)")
    run_traces(Path("runs/fig10"), overrides=tuple(overrides))
    print((Path("runs/fig10") / "summary.md").read_text())


def modern(overrides: list[str]) -> None:
    """Baselines beside ExeGPT (experiment=fig7|modern|modern_full): Fig. 7's FT vs DSI/vLLM/ORCA, modern schedulers offline and online; writes runs/<experiment>/."""
    from harness.cli.commands import markdown_table
    from harness.studies.modern import run as run_modern
    tables = run_modern(overrides)
    df = tables["results"]
    cols = ["model", "task", "bound", "policy", "status", "throughput_seq_s", "latency_s", "engine", "knobs"]
    print(markdown_table(df[[c for c in cols if c in df.columns]]))


def reproduce(overrides: list[str]) -> None:
    """Every paper artefact in order (calibration, sweeps, Tables 5/6, figures, REPORT.md); --quick: a handful."""
    from harness.cli.reproduce import reproduce as run_all
    if set(overrides) - {"--quick"}:
        raise UserError(f"reproduce: only --quick is accepted, got {' '.join(overrides)}")
    run_all(overrides)


def monotonicity(overrides: list[str]) -> None:
    """Share of knob steps monotone within 5% (ExeGPT §5, Table 5); writes runs/table5/monotonicity.csv."""
    from harness.cli.commands import markdown_table, monotonicity_study, write_csv_atomic
    from harness.scheduler.monotonicity import PAPER_SHARES, overall_shares
    table = monotonicity_study(overrides)
    path = Path("runs/table5/monotonicity.csv")
    write_csv_atomic(table, path)
    o = overall_shares(table)
    print(markdown_table(table))
    print(f"overall ({o['pairs']} pairs, paper's directions): throughput {o['thr_monotone_share']:.1%} "
          f"(paper {PAPER_SHARES['throughput']:.0%}), latency {o['lat_monotone_share']:.1%} "
          f"(paper {PAPER_SHARES['latency']:.0%}); either direction: throughput "
          f"{o['thr_any_direction_share']:.1%}, latency {o['lat_any_direction_share']:.1%}")
    print(f"wrote {path}", file=sys.stderr)


def profile(overrides: list[str]) -> None:
    """Time one encoder/decoder layer and the collectives on the mini-cluster (ExeGPT §2); JSON."""
    from harness.runner.commands import profile as body
    print(json.dumps(body(overrides), indent=2))


def run(overrides: list[str]) -> None:
    """Execute one schedule for real on the mini-cluster (cluster=cpu-2w cost_model=profiled); JSON."""
    from harness.runner.commands import run as body
    print(json.dumps(body(overrides), indent=2))


def fidelity(overrides: list[str]) -> None:
    """Simulator vs real runner on >= 20 configurations (runner.fidelity.size=full|large|tiny); JSON."""
    from harness.runner.commands import fidelity as body
    print(json.dumps(body(overrides), indent=2, default=str))


COMMANDS: dict[str, Callable[[list[str]], None]] = {"show": show, "calibrate": calibrate, "attribute": attribute,
                                                     "memory": memory, "equal-throughput": equal_throughput,
                                                     "estimate": estimate, "bounds": bounds, "search": search,
                                                     "monotonicity": monotonicity, "case-study": case_study,
                                                     "sweep": sweep, "regress": regress,
                                                     "figures": figures, "reproduce": reproduce,
                                                     "profile": profile, "run": run, "fidelity": fidelity,
                                                     "shift": shift, "traces": traces, "modern": modern}


def _help() -> str:
    width = max(map(len, COMMANDS))
    rows = [f"  {name:<{width}}  {fn.__doc__.splitlines()[0]}" for name, fn in sorted(COMMANDS.items())]
    return "\n".join([USAGE, "", "commands:", *rows,
                      "", "overrides select config groups and keys under conf/ (see README.md)."])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_help(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    name, overrides = args[0], args[1:]
    try:
        if name not in COMMANDS:
            raise unknown_name("command", name, COMMANDS)
        if overrides[:1] in (["-h"], ["--help"]):
            print(f"usage: harness {name} [hydra overrides...]\n\n{COMMANDS[name].__doc__}")
            return 0
        COMMANDS[name](overrides)
    except UserError as e:
        print(f"harness: error: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
