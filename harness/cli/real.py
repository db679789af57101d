"""Bodies of `harness profile`, `harness run` and `harness fidelity` (config -> files + JSON).

All three read the `runner` config group (harness/conf/runner/cpu.yaml) and validate it before a
worker starts; outputs go under runs/ (profiles/, real/, fidelity/), written atomically
(harness.atomic). `harness fidelity` takes its configurations from
harness/conf/experiment/fidelity_<size>.yaml (`runner.fidelity.size` picks the file, or name it with
`experiment=fidelity_<size>`); the study (harness/studies/fidelity.py) returns the tables and
the summary, the scatter plot is harness/figures/fidelity.py, and this module writes them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from harness.atomic import save_figure, write_frame, write_text
from harness.cli.commands import runtime_adjustment
from harness.config import Scenario, build_runner, build_scenario, compose
from harness.engine.pool import MiniCluster
from harness.errors import UserError, check, unknown_name
from harness.policies import Context
from harness.results.record import finite
from harness.scenario import RunnerSettings
from harness.schema.checks import FIDELITY_SIZES


def mini_cluster(s: Scenario, r: RunnerSettings) -> MiniCluster:
    return MiniCluster(s.cluster.num_gpus, r.threads_per_worker, r.backend, r.device, r.timeout_s)


# ---- harness profile -----------------------------------------------------------------------
def profile(overrides: list[str]) -> dict:
    from harness.cost_model.profiled import profile_path
    from harness.profiler.profile import build_grid, points, run_profile
    cfg = compose(overrides)
    s, r = build_scenario(cfg), build_runner(cfg)
    grid = build_grid(dict(r.profile), s.model, s.cluster)    # fails before timing
    mc = mini_cluster(s, r)
    out = profile_path(r.profile["out_dir"], s.model, s.cluster)
    t = time.perf_counter()
    df = run_profile(s.model, s.cluster, mc, grid, out, s.seed, progress=r.progress)
    return {"profile": str(out), "points": len(points(grid, s.model)), "seconds": round(time.perf_counter() - t, 1),
            "disturbed_share": round(float(df.disturbed.mean()), 3),
            "median_other_cores": round(float(df.other_cores.median()), 3)}


# ---- harness run ---------------------------------------------------------------------------
def _context(s: Scenario):
    """The CLI's scenario context (SLA included), refusing the analytic model on the cpu cluster."""
    if s.cluster.gpu.name == "cpu" and s.cost_model_name != "profiled":
        raise UserError(f"cost_model: '{s.cost_model_name}' has no constants for the cpu cluster; use "
                        "cost_model=profiled (after `harness profile`)")
    return Context.of(s)


def _run_json(s: Scenario, ctx, knobs: dict, n: int, dtype: str, adjust, res, sim, path: Path) -> dict:
    """`harness run`'s JSON: inputs, where the records went, the run's measured metrics beside
    the discrete-event simulator's on the same requests."""
    from harness.runner.drift import speed_drift
    out = {"inputs": {"model": s.model.name, "cluster": s.cluster.name, "workload": s.workload.name,
                      "policy": s.policy_name, "knobs": knobs, "num_requests": n, "precision": dtype,
                      "cost_model": ctx.cost_model.id},
           "records": str(path) if res.records is not None else None,
           "wall_s": round(res.wall_s, 3), "other_cores": round(res.disturbance.other_cores, 3),
           "disturbed": res.disturbance.disturbed,
           # the run's decode-stack time over the cost model's for the same calls (harness.runner.drift)
           "speed_drift": finite(speed_drift(ctx.cost_model, s.model, res.decode_calls))}
    if adjust.enabled:
        out["inputs"]["runtime_adjustment"] = asdict(adjust)
        out["runtime_adjustment"] = {"encoder_batch_sizes": [a.count for a in res.adjustments],
                                     "observed_decode_batch": [round(a.observed, 3) for a in res.adjustments]}
    if res.error:
        out["error"] = res.error
    if res.metrics:
        out["measured"] = {k: finite(getattr(res.metrics, k)) for k in res.metrics.__dataclass_fields__}
    out["simulated_discrete_event"] = {k: finite(getattr(sim, k)) for k in sim.__dataclass_fields__}
    return out


def run(overrides: list[str]) -> dict:
    """One policy with its knobs on the mini-cluster; per-request records to runs/real/.
    `runtime_adjustment.enabled=true`: ExeGPT §3 runtime adjustment (rra/waa), targets from the
    scenario's workload; records then go to `<tag>-adjust.parquet`, the decisions into the JSON."""
    from harness.engine.pool import WorkerPool, run_job
    from harness.policies import get_policy
    from harness.runner.run import execute, plan_job
    from harness.simulator.discrete_event import simulate
    from harness.workload.streams import offline
    cfg = compose(overrides)
    s, r = build_scenario(cfg), build_runner(cfg)
    adjust = runtime_adjustment(cfg)
    ctx = _context(s)
    pol = get_policy(s.policy_name)
    knobs = pol.validate(ctx, dict(s.policy_knobs))
    plan = pol.plan(ctx, knobs)
    check(plan.feasible, "policy", f"infeasible plan: {plan.reason}")
    dtype, n = r.dtype, r.num_requests
    reqs = offline(s.workload, n, s.seed)
    plan_job(plan, s.model, reqs, s.seed, dtype, adjust=adjust, workload=s.workload)   # errors before start
    with WorkerPool(mini_cluster(s, r)) as pool:
        run_job(pool, "harness.runner.programs:prepare", (s.model, s.seed, dtype))
        res = execute(pool, plan, s.model, reqs, s.seed, dtype, progress=r.progress,
                      adjust=adjust, workload=s.workload)
    tag = f"{s.model.name}-{s.workload.name}-{s.policy_name}-" + "-".join(f"{k}{v}" for k, v in sorted(knobs.items()))
    path = Path(r.out_dir) / f"{tag}{'-adjust' if adjust.enabled else ''}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    if res.records is not None:
        write_frame(res.records.to_frame(), path)
    sim = simulate(plan, reqs, adjust, s.workload).metrics
    out = _run_json(s, ctx, knobs, n, dtype, adjust, res, sim, path)
    if res.error:
        print(json.dumps(out, indent=2))
        raise UserError(res.error)
    return out


# ---- harness fidelity ----------------------------------------------------------------------
FIDELITY_BASE = ("cluster=cpu-2w", "cost_model=profiled")
GRID_PREFIX = "fidelity_"        # harness/conf/experiment/fidelity_<size>.yaml: runner.fidelity.{size,configs}


def _size(cfg: DictConfig) -> str:
    """runner.fidelity.size, checked before it names an experiment file."""
    size = str(OmegaConf.select(cfg, "runner.fidelity.size", default="full"))
    if size not in FIDELITY_SIZES:
        raise unknown_name("runner.fidelity.size", size, FIDELITY_SIZES)
    return size


def fidelity_config(overrides: list[str]) -> DictConfig:
    """`harness fidelity`'s config: cluster=cpu-2w cost_model=profiled, the overrides, and the
    grid of `runner.fidelity.size` (experiment=fidelity_<size>) unless an experiment is named."""
    cfg = compose([*FIDELITY_BASE, *overrides])
    if not any(o.split("=", 1)[0].lstrip("+~") == "experiment" for o in overrides):
        return compose([*FIDELITY_BASE, f"experiment={GRID_PREFIX}{_size(cfg)}", *overrides])
    grid, size = str(cfg.get("experiment_name", "")), _size(cfg)
    if grid.startswith(GRID_PREFIX):
        check(grid == f"{GRID_PREFIX}{size}", "runner.fidelity.size",
              f"'{size}', but experiment={grid} holds the {grid.removeprefix(GRID_PREFIX)} grid")
    return cfg


def fidelity_settings(s: Scenario, r: RunnerSettings, out_dir: Path):
    """`runner.fidelity.*` into the study's Settings (before any work); ct2 / ratio null: on for
    the sizes that have them (ct2: full, large; ratio: full)."""
    from harness.studies.fidelity import Settings, configs_from
    f = r.fidelity
    entries = [{"model": e.model, "task": e.task, "policy": e.policy, "num_requests": e.num_requests,
                "knobs": dict(e.knobs)} for e in f.configs]
    return Settings(f.size, tuple(configs_from(entries)), Path(r.profile["out_dir"]), out_dir / "ct2",
                    repeats=f.repeats, reprofile=f.reprofile,
                    ct2=f.size in ("full", "large") if f.ct2 is None else f.ct2,
                    ratio=f.size == "full" if f.ratio is None else f.ratio, seed=s.seed, progress=r.progress)


def _write_fidelity(res, out_dir: Path, size: str, t0: float) -> dict:
    """The study's tables, plot and summary JSON under `out_dir`; the summary (with their paths)."""
    from harness.figures.fidelity import scatter
    table = write_frame(res.table, out_dir / f"fidelity-{size}.csv")
    runs = write_frame(res.runs, out_dir / f"fidelity-runs-{size}.csv")
    save_figure(scatter(res.table), out_dir / f"fidelity-{size}.png", dpi=120)
    result = {**res.summary, "table": str(table), "runs_table": str(runs),
              "plot": str(out_dir / f"fidelity-{size}.png")}
    if res.ratio is not None:
        write_frame(pd.DataFrame([res.ratio]), out_dir / f"ft-ratio-{size}.csv")
        result["ft_ratio"] = {k: finite(v) if not isinstance(v, dict) else v for k, v in res.ratio.items()}
    if res.ct2_rows:
        ct = pd.DataFrame(res.ct2_rows)
        write_frame(ct, out_dir / f"ct2-vs-torch-{size}.csv")
        result["ct2_vs_torch_ft"] = ct.to_dict(orient="records")
    result["seconds"] = res.seconds
    result["total_s"] = round(time.perf_counter() - t0, 1)
    write_text(out_dir / f"summary-{size}.json", json.dumps(result, indent=2, default=str))
    return result


def fidelity(overrides: list[str]) -> dict:
    """Real runner vs simulator on the configurations of runner.fidelity.size (full: 27, large:
    6, tiny: 3; harness/studies/fidelity.py); tables, plot and summary to runner.fidelity.out_dir."""
    from harness.profiler.profile import build_grid
    from harness.studies import fidelity as F
    cfg = fidelity_config(overrides)
    s, r = build_scenario(cfg), build_runner(cfg)
    out_dir = Path(r.fidelity.out_dir)
    st = fidelity_settings(s, r, out_dir)
    specs = {m: build_scenario(compose([f"model={m}", "cluster=cpu-2w"])).model
             for m in dict.fromkeys(c.model for c in st.configs)}
    grids = {m: build_grid(dict(r.profile), spec, s.cluster) for m, spec in specs.items()}   # validate first
    t0 = time.perf_counter()
    res = F.run(st, specs, grids, s.cluster, mini_cluster(s, r))
    return _write_fidelity(res, out_dir, st.size, t0)


# ---- harness decide ------------------------------------------------------------------------
def decide_settings(cfg: DictConfig, s: Scenario, r: RunnerSettings):
    """The experiment's `study` section (harness/conf/experiment/decide*.yaml) as Settings."""
    from harness.studies.decide import Settings
    st = OmegaConf.to_container(cfg.get("study") or {}, resolve=True)
    check(isinstance(st, dict) and st.get("scenarios"), "study.scenarios",
          "missing; run with experiment=decide or decide_tiny (harness/conf/experiment/)")
    for i, sc in enumerate(st["scenarios"]):
        check(isinstance(sc, list | tuple) and len(sc) == 2, f"study.scenarios[{i}]", f"must be [model, task], got {sc!r}")
    return Settings(tuple(tuple(sc) for sc in st["scenarios"]), tuple(st.get("bounds", ("p30", "p70"))),
                    tuple(st.get("policies", ("rra", "waa-c", "waa-m", "vllm", "sarathi"))),
                    int(st.get("passes", 3)), int(st.get("num_requests", 64)), int(st.get("batches_per_run", 4)),
                    s.seed, r.progress, float(st.get("latency_margin", 0.0)))


def decide(overrides: list[str]) -> dict:
    """Decision fidelity (harness/studies/decide.py): the search's candidates run for real,
    regret / tau / bound attainment per scenario; tables, plot, summary to runs/<experiment>/."""
    from harness.cost_model.profiled import profile_path
    from harness.figures.decide import ranking
    from harness.profiler.profile import build_grid, run_profile
    from harness.studies import decide as D
    from harness.studies.fidelity import Pools
    has_exp = any(o.split("=", 1)[0].lstrip("+~") == "experiment" for o in overrides)
    cfg = compose([*FIDELITY_BASE, *([] if has_exp else ["experiment=decide"]), *overrides])
    s, r = build_scenario(cfg), build_runner(cfg)
    st = decide_settings(cfg, s, r)
    specs = {m: build_scenario(compose([f"model={m}", "cluster=cpu-2w"])).model for m, _ in st.scenarios}
    grids = {m: build_grid(dict(r.profile), spec, s.cluster) for m, spec in specs.items()}  # validate first
    for task in {t for _, t in st.scenarios}:
        compose([f"task={task}"])
    t0, mc = time.perf_counter(), mini_cluster(s, r)
    profile_dir = Path(r.profile["out_dir"])
    for m, spec in specs.items():                    # a profile per model, taken if missing
        path = profile_path(profile_dir, spec, s.cluster)
        if not path.exists():
            run_profile(spec, s.cluster, mc, grids[m], path, s.seed, progress=r.progress)
    cands, runs, scores, notes, summ = D.run(st, specs, s.cluster, Pools(mc), profile_dir)
    out = Path(str(cfg.runs_dir)) / str(cfg.experiment_name)
    files = {name: str(write_frame(df, out / f"{name}.csv"))
             for name, df in (("candidates", cands), ("runs", runs), ("scores", scores), ("notes", notes))}
    save_figure(ranking(cands, runs, scores), out / "decide.png", dpi=120)
    result = {**summ, **files, "plot": str(out / "decide.png"), "total_s": round(time.perf_counter() - t0, 1)}
    write_text(out / "summary.json", json.dumps(result, indent=2, default=str))
    return result


# ---- harness engines -----------------------------------------------------------------------
def engines(overrides: list[str]) -> dict:
    """Our engine vs ctranslate2 at the same batch, precision and cores (harness/studies/engines.py);
    tables and summary to runs/<experiment>/."""
    from harness.studies import engines as E
    has_exp = any(o.split("=", 1)[0].lstrip("+~") == "experiment" for o in overrides)
    cfg = compose(["cluster=cpu-2w", *([] if has_exp else ["experiment=engines"]), *overrides])
    s, r = build_scenario(cfg), build_runner(cfg)
    out = Path(str(cfg.runs_dir)) / str(cfg.experiment_name)
    settings = E.Settings.from_study(OmegaConf.to_container(cfg.get("study") or {}, resolve=True), s.seed,
                                     r.progress, out / "ct2")
    specs = {m: build_scenario(compose([f"model={m}", "cluster=cpu-2w"])).model for m in settings.models}
    compose([f"task={settings.task}"])                             # an unknown task fails here
    t0 = time.perf_counter()
    runs, div, steps, summ = E.run(settings, specs)
    files = {f"{name}_csv": str(write_frame(df, out / f"{name}.csv"))
             for name, df in (("runs", runs), ("divergences", div), ("steps", steps))}
    result = {**summ, **files, "total_s": round(time.perf_counter() - t0, 1)}
    write_text(out / "summary.json", json.dumps(result, indent=2, default=str))
    return result
