"""`harness <command> [hydra overrides...]`: the console script.

A `UserError` is printed as one line `harness: error: <message>` on stderr, exit code 2,
without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from harness.cli.studies import (
    attribute,
    case_study,
    equal_throughput,
    memory,
    modern,
    monotonicity,
    regress,
    shift,
    traces,
)
from harness.config import build_scenario, compose
from harness.data.manifest import missing_data
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
    for key, path, dataset in (("paths.profiles", paths.profiles, "vidur-profiles"),
                               ("paths.ft_calibration", paths.ft_calibration, "ft-reference")):
        if not path.exists():
            raise missing_data(key, path, dataset)
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


def sweep(overrides: list[str]) -> None:
    """Run an experiment's sweep (resumable, progress bar) into runs/<experiment>/results.parquet."""
    from harness.cli.sweep import sweep as run_sweep
    run_sweep(overrides)


def figures(overrides: list[str]) -> None:
    """Regenerate every figure and runs/REPORT.md from the results tables alone (no recomputation)."""
    from harness.cli.figures import run as write_all
    if overrides:
        raise UserError(f"figures: takes no overrides, got {' '.join(overrides)}")
    write_all(Path("runs"))


def reproduce(overrides: list[str]) -> None:
    """Every paper artefact in order (calibration, sweeps, Tables 5/6, figures, REPORT.md); --quick: a handful."""
    from harness.cli.reproduce import reproduce as run_all
    if set(overrides) - {"--quick"}:
        raise UserError(f"reproduce: only --quick is accepted, got {' '.join(overrides)}")
    run_all(overrides, COMMANDS)


def profile(overrides: list[str]) -> None:
    """Time one encoder/decoder layer and the collectives on the mini-cluster (ExeGPT §2); JSON."""
    from harness.cli.real import profile as body
    print(json.dumps(body(overrides), indent=2))


def run(overrides: list[str]) -> None:
    """Execute one schedule for real on the mini-cluster (cluster=cpu-2w cost_model=profiled); JSON."""
    from harness.cli.real import run as body
    print(json.dumps(body(overrides), indent=2))


def fidelity(overrides: list[str]) -> None:
    """Simulator vs real runner on >= 20 configurations (runner.fidelity.size=full|large|tiny); JSON."""
    from harness.cli.real import fidelity as body
    print(json.dumps(body(overrides), indent=2, default=str))


def data(overrides: list[str]) -> None:
    """Measured data under paths.shared: `data status`, or `data fetch [dataset...] [--mirror URL]` (sha256-checked)."""
    from harness.cli.data import data as body
    body(overrides)


def engines(overrides: list[str]) -> None:
    """Our engine vs ctranslate2 at the same batch, precision and cores; where a step's time goes; token differences; JSON."""
    from harness.cli.real import engines as body
    print(json.dumps(body(overrides), indent=2, default=str))


def decide(overrides: list[str]) -> None:
    """Decision fidelity: does the simulator's chosen schedule win for real? (regret, Kendall tau, bound attainment); JSON."""
    from harness.cli.real import decide as body
    print(json.dumps(body(overrides), indent=2, default=str))


COMMANDS: dict[str, Callable[[list[str]], None]] = {"data": data, "decide": decide, "engines": engines, "show": show, "calibrate": calibrate, "attribute": attribute,
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
                      "", "overrides select config groups and keys under harness/conf/ (see README.md)."])


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
