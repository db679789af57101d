"""Bodies of `harness profile`, `harness run` and `harness fidelity` (config -> files + JSON).

All three read the `runner` config group (conf/runner/cpu.yaml) and validate it before a
worker starts; outputs go under runs/ (profiles/, real/, fidelity/).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from harness.cli.commands import finite
from harness.config import Scenario, build_scenario, compose
from harness.engine.pool import MiniCluster
from harness.errors import UserError, check

SIZES = ("tiny", "full", "large")


def mini_cluster(s: Scenario, r: dict) -> MiniCluster:
    return MiniCluster(s.cluster.num_gpus, int(r.get("threads_per_worker", 1)), str(r.get("backend", "gloo")),
                       str(r.get("device", "cpu")), float(r.get("timeout_s", 120)))


def _runner(cfg: DictConfig) -> dict:
    check("runner" in cfg, "runner", "missing; choose one with runner=<name> (conf/runner/)")
    return OmegaConf.to_container(cfg.runner, resolve=True)


def profile(overrides: list[str]) -> dict:
    from harness.cost_model.profiled import profile_path
    from harness.profiler.profile import build_grid, points, run_profile
    cfg = compose(overrides)
    s, r = build_scenario(cfg), _runner(cfg)
    grid = build_grid(dict(r.get("profile") or {}), s.model, s.cluster)    # fails before timing
    mc = mini_cluster(s, r)
    out = profile_path(r["profile"]["out_dir"], s.model, s.cluster)
    t = time.perf_counter()
    df = run_profile(s.model, s.cluster, mc, grid, out, s.seed, progress=bool(r.get("progress", True)))
    return {"profile": str(out), "points": len(points(grid, s.model)), "seconds": round(time.perf_counter() - t, 1),
            "disturbed_share": round(float(df.disturbed.mean()), 3),
            "median_other_cores": round(float(df.other_cores.median()), 3)}


def _context(s: Scenario):
    """The CLI's scenario context (SLA included), refusing the analytic model on the cpu cluster."""
    from harness.cli.commands import context
    if s.cluster.gpu.name == "cpu" and s.cost_model_name != "profiled":
        raise UserError(f"cost_model: '{s.cost_model_name}' has no constants for the cpu cluster; use "
                        "cost_model=profiled (after `harness profile`)")
    return context(s)


def run(overrides: list[str]) -> dict:
    """One policy with its knobs on the mini-cluster; per-request records to runs/real/.
    `runtime_adjustment.enabled=true`: ExeGPT §3 runtime adjustment (rra/waa), targets from the
    scenario's workload; records then go to `<tag>-adjust.parquet`, the decisions into the JSON."""
    from harness.cli.commands import runtime_adjustment
    from harness.engine.pool import WorkerPool, run_job
    from harness.policies import get_policy
    from harness.runner.run import execute
    from harness.simulator.discrete_event import simulate
    from harness.workload.streams import offline
    cfg = compose(overrides)
    s, r = build_scenario(cfg), _runner(cfg)
    adjust = runtime_adjustment(cfg)
    ctx = _context(s)
    pol = get_policy(s.policy_name)
    knobs = pol.validate(ctx, dict(s.policy_knobs))
    plan = pol.plan(ctx, knobs)
    check(plan.feasible, "policy", f"infeasible plan: {plan.reason}")
    dtype = str(r.get("dtype", "float32"))
    check(dtype in ("float32", "float64"), "runner.dtype", f"'{dtype}' not in float32, float64")
    n = int(r.get("num_requests", 48))
    check(n >= 1, "runner.num_requests", "must be >= 1")
    reqs = offline(s.workload, n, s.seed)
    from harness.runner.drift import speed_drift
    from harness.runner.run import plan_job
    plan_job(plan, s.model, reqs, s.seed, dtype, adjust=adjust, workload=s.workload)   # errors before start
    with WorkerPool(mini_cluster(s, r)) as pool:
        run_job(pool, "harness.runner.programs:prepare", (s.model, s.seed, dtype))
        res = execute(pool, plan, s.model, reqs, s.seed, dtype, progress=bool(r.get("progress", True)),
                      adjust=adjust, workload=s.workload)
    out_dir = Path(str(r.get("out_dir", "runs/real")))
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{s.model.name}-{s.workload.name}-{s.policy_name}-" + "-".join(f"{k}{v}" for k, v in sorted(knobs.items()))
    path = out_dir / f"{tag}{'-adjust' if adjust.enabled else ''}.parquet"
    if res.records is not None:
        res.records.to_frame().to_parquet(path, index=False)
    sim = simulate(plan, reqs, adjust, s.workload).metrics
    out = {"inputs": {"model": s.model.name, "cluster": s.cluster.name, "workload": s.workload.name,
                      "policy": s.policy_name, "knobs": knobs, "num_requests": n, "precision": dtype,
                      "cost_model": ctx.cost_model.id},
           "records": str(path) if res.records is not None else None,
           "wall_s": round(res.wall_s, 3), "other_cores": round(res.disturbance.other_cores, 3),
           "disturbed": res.disturbance.disturbed,
           # the run's decode-stack time over the cost model's for the same calls (harness.runner.drift)
           "speed_drift": finite(speed_drift(ctx.cost_model, s.model, res.decode_calls))}
    if adjust.enabled:
        from dataclasses import asdict
        out["inputs"]["runtime_adjustment"] = asdict(adjust)
        out["runtime_adjustment"] = {"encoder_batch_sizes": [a.count for a in res.adjustments],
                                     "observed_decode_batch": [round(a.observed, 3) for a in res.adjustments]}
    if res.error:
        out["error"] = res.error
    if res.metrics:
        out["measured"] = {k: finite(getattr(res.metrics, k)) for k in res.metrics.__dataclass_fields__}
    out["simulated_discrete_event"] = {k: finite(getattr(sim, k)) for k in sim.__dataclass_fields__}
    if res.error:
        print(json.dumps(out, indent=2))
        raise UserError(res.error)
    return out


def _switch(d: dict, key: str, default: bool) -> bool:
    """runner.fidelity.<key>: true / false, or null for the size's default."""
    v = d.get(key)
    check(v is None or isinstance(v, bool), f"runner.fidelity.{key}", f"must be true, false or null, got {v!r}")
    return default if v is None else v


def fidelity(overrides: list[str]) -> dict:
    """Real runner vs simulator on >= 20 configurations (runner.fidelity.size=full) or 3 (tiny).
    Model by model, one warm worker pool: the first round of its (re)profile, then its
    configurations with the other rounds taken between them (this VM's speed drifts over
    minutes: docs/real-execution.md), then the ctranslate2 rows
    (whose torch row is the FT batch-8 configuration's run) and, for opt-20m, the ratio."""
    from harness.cost_model.profiled import profile_path
    from harness.profiler.profile import ProfileSession, build_grid
    from harness.runner import fidelity as F
    from harness.runner.floor import floor
    cfg = compose(["cluster=cpu-2w", "cost_model=profiled", *overrides])
    s, r = build_scenario(cfg), _runner(cfg)
    fr = dict(r.get("fidelity") or {})
    size = str(fr.get("size", "full"))
    check(size in SIZES, "runner.fidelity.size", f"'{size}' not in {', '.join(SIZES)}")
    out_dir = Path(str(fr.get("out_dir", "runs/fidelity")))
    prof_dir = Path(str(r["profile"]["out_dir"]))
    cfgs = F.configs(size)
    specs = {m: build_scenario(compose([f"model={m}", "cluster=cpu-2w"])).model for m in dict.fromkeys(c.model for c in cfgs)}
    grids = {m: build_grid(dict(r["profile"]), spec, s.cluster) for m, spec in specs.items()}   # validate first
    repeats = int(fr.get("repeats", 1))
    check(repeats >= 1, "runner.fidelity.repeats", f"must be an integer >= 1, got {repeats}")
    want_ratio = _switch(fr, "ratio", size == "full") and "opt-20m" in specs
    want_ct2 = _switch(fr, "ct2", size in ("full", "large"))
    mc, progress, t0 = mini_cluster(s, r), bool(r.get("progress", True)), time.perf_counter()
    pools, profiled, tables, run_tables, ct_rows, ratio, seconds = F.Pools(mc), [], [], [], [], None, {}

    @contextlib.contextmanager
    def timed(key: str):
        t = time.perf_counter()
        yield
        seconds[key] = round(time.perf_counter() - t, 1)
    try:
        for m, spec in specs.items():
            session = None
            with timed(f"{m}_configs"):       # (re)profiling: its first round, the rest between runs
                path = profile_path(prof_dir, spec, s.cluster)
                if bool(fr.get("reprofile", False)) or not path.exists():
                    session = ProfileSession(spec, s.cluster, mc, grids[m], lambda spec=spec: pools.get(spec, s.seed),
                                             s.seed, progress)
                    session.take(1)
                    session.write(path)
                    profiled.append(m)
                df, refs, per_run = F.run_configs([c for c in cfgs if c.model == m], specs, s.cluster, pools, prof_dir,
                                         s.seed, progress, repeats, profile=session)
                tables.append(df)
                run_tables.append(per_run)
            if session is not None:
                seconds[f"{m}_profile"] = round(session.seconds, 1)
                seconds[f"{m}_configs"] = round(seconds[f"{m}_configs"] - session.seconds, 1)
            if want_ct2 and m in refs:
                from harness.runner.baseline import compare_ct2
                with timed(f"{m}_ct2"):
                    ct_rows += compare_ct2(spec, *refs[m], out_dir / "ct2", s.seed, threads=mc.num_workers)
            if want_ratio and m == "opt-20m":
                with timed("ratio"):
                    ratio = F.ft_ratio(spec, "T-cpu", s.cluster, pools, prof_dir, s.seed, progress=progress)
    finally:
        pools.close()
    df = pd.concat(tables, ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_dir / f"fidelity-{size}.csv", index=False)
    runs = pd.concat(run_tables, ignore_index=True)
    runs.to_csv(out_dir / f"fidelity-runs-{size}.csv", index=False)
    F.scatter(df, out_dir / f"fidelity-{size}.png")
    result = {"size": size, "repeats": repeats, "profiled_now": profiled,
              "profile_s": round(sum(v for k, v in seconds.items() if k.endswith("_profile")), 1),
              **F.summary(df), **floor(runs), "table": str(out_dir / f"fidelity-{size}.csv"),
              "runs_table": str(out_dir / f"fidelity-runs-{size}.csv"),
              "plot": str(out_dir / f"fidelity-{size}.png")}
    if ratio is not None:
        pd.DataFrame([ratio]).to_csv(out_dir / f"ft-ratio-{size}.csv", index=False)
        result["ft_ratio"] = {k: finite(v) if not isinstance(v, dict) else v for k, v in ratio.items()}
    if ct_rows:
        ct = pd.DataFrame(ct_rows)
        ct.to_csv(out_dir / f"ct2-vs-torch-{size}.csv", index=False)
        result["ct2_vs_torch_ft"] = ct.to_dict(orient="records")
    result["seconds"] = seconds
    result["total_s"] = round(time.perf_counter() - t0, 1)
    (out_dir / f"summary-{size}.json").write_text(json.dumps(result, indent=2, default=str))
    return result
