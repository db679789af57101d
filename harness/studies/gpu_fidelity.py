"""The GPU fidelity study (issue 20, point 5): the chain of `harness fidelity`, on ONE device.

Per model (seeded random weights; harness/conf/model/opt-{125m,350m,1.3b}.yaml on a GPU in
FP16, the ~20M models on the CPU path in float32), on a one-worker mini-cluster (one GPU, or
one CPU process):
1. profile: the runner's own layers on `Settings.grid` at TP 1 (harness.profiler; one worker
   has no collectives to time, and a one-GPU plan has no TP, pipeline or KV hand-over);
2. search: XScheduler (ExeGPT §5) over `Settings.policies` under each latency bound (p70 of
   FT's latencies, §7), with the profiled cost model of step 1; the candidates are those of
   `harness decide` (each policy's best, FT tuned under the bound, the chosen policy's
   runner-up; harness.studies.decide.plan_scenario), batches capped at num_requests /
   batches_per_run so a finite run reaches the steady state the search prices;
3. run: every candidate the runner can execute with one worker is executed for real on the
   same offline requests (ones that need more workers, or that the runner cannot run,
   `Policy.runner_support`, are notes with the reason);
4. compare: measured throughput and p99-length latency (ExeGPT §5) against the
   discrete-event simulator on the very requests and the search's expected-value estimate;
   the searched schedule against FT under the same bound (measured and predicted ratio).
The command (benchmarks/gpu_fidelity.py) writes the tables; nothing here writes outside the
profile directory it is given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from harness.cost_model.profiled import ProfiledCostModel, profile_path
from harness.engine.pool import DEVICES, MiniCluster, WorkerFailure, run_job
from harness.engine.weights import check_dtype
from harness.errors import UserError, check
from harness.profiler.profile import ProfileSession, build_grid
from harness.runner.drift import speed_drift
from harness.runner.run import plan_job, workers_needed
from harness.simulator.discrete_event import simulate
from harness.specs.hardware import GPUS, ClusterSpec, make_cluster
from harness.specs.models import ModelSpec, with_overrides
from harness.studies import decide as D
from harness.studies.fidelity import Pools, _measure
from harness.workload import get_task
from harness.workload.streams import offline

SEARCHED_POLICIES = ("rra", "waa-c", "waa-m", "vllm", "sarathi", "orca")   # waa-*: NS on one GPU
DTYPE_BYTES = {"float16": 2, "float32": 4, "float64": 8}
REPORT = "harness.runner.programs:device_report"


@dataclass(frozen=True, slots=True)
class Settings:
    """One study: where it runs and what it runs (benchmarks/gpu_fidelity.py's presets)."""

    device: str                                   # cuda | cpu (runner.device)
    models: tuple[str, ...]
    task: str
    dtype: str                                    # float16 (cuda) | float32
    grid: dict                                    # runner.profile.* (harness.profiler.profile.build_grid)
    num_requests: int                             # requests per run (offline stream, ExeGPT §5)
    bounds: tuple[str, ...] = ("p70",)
    policies: tuple[str, ...] = SEARCHED_POLICIES
    batches_per_run: int = 4                      # search batch cap = num_requests // this (harness decide)
    threads_per_worker: int = 1
    timeout_s: float = 300.0                      # a worker silent this long ends the job
    attempts: int = 1                             # runs of a disturbed run / profile round at most
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        check(self.device in DEVICES, "--device", f"'{self.device}' not in {', '.join(DEVICES)}")
        check_dtype(self.dtype, self.device)
        check(len(self.models) > 0, "--models", "empty")
        check(self.num_requests >= 1, "--num-requests", f"must be >= 1, got {self.num_requests}")
        check(self.attempts >= 1, "attempts", f"must be >= 1, got {self.attempts}")
        get_task(self.task)

    @property
    def backend(self) -> str:
        return "nccl" if self.device == "cuda" else "gloo"

    @property
    def mini_cluster(self) -> MiniCluster:
        return MiniCluster(1, self.threads_per_worker, self.backend, self.device, self.timeout_s)

    def decide_settings(self, model: str) -> D.Settings:
        return D.Settings(((model, self.task),), self.bounds, self.policies, 1, self.num_requests,
                          self.batches_per_run, self.seed, self.progress)


def device_cluster(report: dict, device: str) -> ClusterSpec:
    """The one-device cluster the search plans for: on CUDA the spec of the GPU the worker
    reports (its own memory; the other constants of the nearest spec are unused by the
    profiled cost model), else one CPU worker (harness/specs/hardware.py, nominal)."""
    if device == "cpu":
        return make_cluster("cpu", 1, 1, name="cpu-1w")
    name = str(report.get("name") or "cuda")
    key = next((k for k in ("h100", "a100", "a40") if k in name.lower()), None)
    slug = key or "".join(c for c in name.lower().replace("nvidia", "") if c.isalnum())[:16] or "cuda"
    gpu = replace(GPUS[key or "h100"], name=slug, memory_bytes=int(report["memory_bytes"]),
                  source=f"{name} as torch reports it (memory); other fields: {key or 'h100'}, unused here")
    return ClusterSpec(f"{slug}-1w", gpu, 1, 1, 0.0)


def precision_spec(spec: ModelSpec, dtype: str) -> ModelSpec:
    """The model at the run's precision: its KV and weight bytes follow the dtype."""
    return with_overrides(spec, dtype_bytes=DTYPE_BYTES[dtype])


@dataclass(frozen=True, slots=True)
class ModelResult:
    model: str
    params: int
    table: pd.DataFrame                   # one row per candidate x bound (real, simulated, estimated)
    notes: list[dict]                     # not searched / not run, with the reason
    ratios: list[dict]                    # searched vs FT per bound
    seconds: dict                         # build_s, profile_s, search_s, runs_s
    profile: str                          # the profile table's path
    profile_points: int


@dataclass(slots=True)
class Result:
    device: dict                          # the worker's device_report (name, memory, torch, CUDA)
    cluster: ClusterSpec | None = None
    models: list[ModelResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)     # not started: the time budget was spent
    failed: dict[str, str] = field(default_factory=dict)  # model -> why it stopped (the others go on)

    @property
    def table(self) -> pd.DataFrame:
        return pd.concat([m.table for m in self.models], ignore_index=True) if self.models else pd.DataFrame()


def _run_one(pools: Pools, spec: ModelSpec, cand, plan, reqs, cost, st: Settings) -> dict:
    """One candidate executed on the worker, simulated on the same requests."""
    pool = pools.get(spec, st.seed)
    if st.device == "cuda":
        run_job(pool, REPORT, True)                       # a new peak for this run
    row = {"candidate": cand.label, "memory_planned_bytes": plan.memory_per_gpu_bytes}
    try:
        res, again = _measure(pool, plan, spec, reqs, st.seed, st.progress, f"{spec.name} {cand.label}",
                              attempts=st.attempts, dtype=st.dtype)
    except WorkerFailure as e:
        pools.close()
        return row | {"status": "failed", "error": str(e)}
    peak = None
    if res.error:
        pools.close()
    elif st.device == "cuda":
        peak = run_job(pool, REPORT, False)[0]["peak_allocated_bytes"]
    sim, m = simulate(plan, reqs).metrics, res.metrics
    row |= {"status": "failed" if res.error else "ok", "error": res.error, "wall_s": res.wall_s,
            "other_cores": res.disturbance.other_cores, "remeasured": again, "peak_allocated_bytes": peak,
            "sim_throughput_seq_s": sim.throughput_seq_s, "sim_latency_p99len_s": sim.latency_p99len_s}
    if m is not None:
        row |= {"real_throughput_seq_s": m.throughput_seq_s, "real_latency_p99len_s": m.latency_p99len_s,
                "real_decode_batch_mean": m.decode_batch_mean, "sim_decode_batch_mean": sim.decode_batch_mean,
                "speed_drift": speed_drift(cost, spec, res.decode_calls)}
    return row


def _runs(spec: ModelSpec, plans: dict, pools: Pools, mc: MiniCluster, cluster: ClusterSpec,
          profile_dir: Path, st: Settings, notes: list) -> pd.DataFrame:
    """Every candidate the one-worker runner can execute, once, on the same requests."""
    reqs = offline(get_task(st.task), st.num_requests, st.seed)
    cost = ProfiledCostModel(cluster, profile_dir)
    rows = []
    for cand, plan in plans.items():
        try:
            need = workers_needed(plan_job(plan, spec, reqs, st.seed, st.dtype))
        except UserError as e:                             # e.g. a T5 plan that preempts
            notes.append({"model": spec.name, "policy": cand.policy, "reason": f"not run ({cand.label}): {e}"})
            continue
        if need > mc.num_workers:
            notes.append({"model": spec.name, "policy": cand.policy,
                          "reason": f"not run ({cand.label}): needs {need} workers, the mini-cluster has {mc.num_workers}"})
            continue
        rows.append(_run_one(pools, spec, cand, plan, reqs, cost, st))
    return pd.DataFrame(rows)


def _table(cands: pd.DataFrame, runs: pd.DataFrame, cluster: ClusterSpec, st: Settings) -> pd.DataFrame:
    """Candidates x bounds joined with their runs, with the errors and the limits checked."""
    df = cands.assign(knobs=cands.knobs.map(lambda k: str(dict(k))))
    df = df.merge(runs, on="candidate", how="left") if len(runs) else df.assign(status="not run")
    df["status"] = df["status"].fillna("not run")
    for col in ("real_throughput_seq_s", "real_latency_p99len_s", "sim_throughput_seq_s", "sim_latency_p99len_s",
                "memory_planned_bytes"):
        if col not in df:
            df[col] = math.nan
    df["err_throughput"] = df.sim_throughput_seq_s / df.real_throughput_seq_s - 1
    df["err_latency"] = df.sim_latency_p99len_s / df.real_latency_p99len_s - 1
    df["est_err_throughput"] = df.est_throughput_seq_s / df.real_throughput_seq_s - 1
    df["est_err_latency"] = df.est_latency_s / df.real_latency_p99len_s - 1
    df["real_meets_bound"] = df.real_latency_p99len_s < df.bound_s
    df["memory_limit_bytes"] = cluster.gpu.memory_bytes
    df["memory_ok"] = df.memory_planned_bytes <= cluster.gpu.memory_bytes
    return df.assign(cluster=cluster.name, device=st.device, dtype=st.dtype, num_requests=st.num_requests)


def ratios(table: pd.DataFrame) -> list[dict]:
    """Per model and bound: the chosen (searched) schedule over FT tuned under the bound."""
    out = []
    for (model, bound), g in table.groupby(["model", "bound"], sort=False):
        chosen, ft = g[g.chosen], g[g.policy == "ft"]
        if chosen.empty or ft.empty:
            out.append({"model": model, "bound": bound, "status": "no chosen schedule or no FT under the bound"})
            continue
        c, f = chosen.iloc[0], ft.iloc[0]
        out.append({"model": model, "bound": bound, "bound_s": float(c.bound_s), "searched": c.candidate,
                    "ft": f.candidate, "status": "ok" if c.status == f.status == "ok" else "not run",
                    "ratio_real": c.real_throughput_seq_s / f.real_throughput_seq_s,
                    "ratio_sim": c.sim_throughput_seq_s / f.sim_throughput_seq_s,
                    "ratio_est": c.est_throughput_seq_s / f.est_throughput_seq_s,
                    "searched_meets_bound": bool(c.real_meets_bound), "searched_memory_ok": bool(c.memory_ok)})
    return out


def run_model(name: str, spec: ModelSpec, st: Settings, pools: Pools, result: Result, profile_dir: Path,
              log: Callable[[str], None]) -> ModelResult:
    """Profile, search, run, compare one model (module docstring)."""
    spec, secs, t = precision_spec(spec, st.dtype), {}, time.perf_counter()
    log(f"{name}: {spec.num_params() / 1e6:.0f}M parameters, building the {st.dtype} weights on {st.device}")
    pool = pools.get(spec, st.seed)
    if result.cluster is None:
        result.device = run_job(pool, REPORT, False)[0]
        result.cluster = device_cluster(result.device, st.device)
    cluster, secs["build_s"] = result.cluster, round(time.perf_counter() - t, 1)
    grid = build_grid(dict(st.grid), spec, cluster)
    session = ProfileSession(spec, cluster, st.mini_cluster, grid, lambda: pools.get(spec, st.seed), st.seed,
                             st.progress, dtype=st.dtype, attempts=st.attempts)
    log(f"{name}: profiling {len(session.points)} points x {grid.repeats} rounds")
    t = time.perf_counter()
    session.take(grid.repeats)
    path = profile_path(profile_dir, spec, cluster)
    session.write(path)
    secs["profile_s"] = round(time.perf_counter() - t, 1)
    log(f"{name}: searching {', '.join(st.policies)} under {', '.join(st.bounds)} (task {st.task})")
    t = time.perf_counter()
    cands, plans, notes = D.plan_scenario(spec, st.task, cluster, profile_dir, st.decide_settings(spec.name))
    secs["search_s"] = round(time.perf_counter() - t, 1)
    log(f"{name}: running {len(plans)} candidates on {st.num_requests} requests")
    t = time.perf_counter()
    runs = _runs(spec, plans, pools, st.mini_cluster, cluster, profile_dir, st, notes)
    secs["runs_s"] = round(time.perf_counter() - t, 1)
    table = _table(cands, runs, cluster, st)
    return ModelResult(name, spec.num_params(), table, notes, ratios(table), secs, str(path), len(session.points))


def summary(table: pd.DataFrame, models: list[ModelResult]) -> dict:
    """Errors over the distinct runs (a candidate of several bounds counts once)."""
    ok = table[table.status == "ok"].drop_duplicates(["model", "candidate"]) if len(table) else table
    out = {"runs": int(len(ok)), "runs_failed": int((table.drop_duplicates(["model", "candidate"]).status == "failed").sum())
           if len(table) else 0}
    for col in ("err_throughput", "err_latency", "est_err_throughput", "est_err_latency"):
        a = ok[col].abs().to_numpy(float) if len(ok) else np.array([])
        out[f"median_abs_{col}"] = float(np.median(a)) if len(a) else math.nan
        out[f"max_abs_{col}"] = float(a.max()) if len(a) else math.nan
    chosen = table[table.chosen] if len(table) else table
    out["chosen_meets_bound_share"] = float(chosen.real_meets_bound.mean()) if len(chosen) else math.nan
    out["chosen_memory_ok"] = bool(chosen.memory_ok.all()) if len(chosen) else False
    out["ratios"] = [r for m in models for r in m.ratios]
    return out


def run(st: Settings, specs: dict[str, ModelSpec], profile_dir: Path, log: Callable[[str], None] = lambda s: None,
        on_model: Callable[[Result], None] | None = None, budget_s: float = math.inf) -> Result:
    """Every model of `st.models` in turn, one warm worker per model (`specs`: their ModelSpecs);
    `on_model` sees the result after each model (the command writes its files then); no model
    starts once `budget_s` seconds have passed (they are `Result.skipped`); a model whose worker
    fails is `Result.failed` and the study goes on."""
    pools, result, t0 = Pools(st.mini_cluster, st.dtype), Result({}), time.perf_counter()
    try:
        for name in st.models:
            if time.perf_counter() - t0 > budget_s:
                result.skipped.append(name)
                log(f"{name}: skipped, the {budget_s:.0f} s budget is spent")
                continue
            try:
                result.models.append(run_model(name, specs[name], st, pools, result, profile_dir, log))
            except UserError as e:                # a worker died (out of memory, ...): the next model
                pools.close()
                result.failed[name] = str(e)
                log(f"{name}: failed: {e}")
                continue
            log(f"{name}: done, {result.models[-1].seconds}")
            if on_model is not None:
                on_model(result)
    finally:
        pools.close()
    return result
