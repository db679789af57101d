"""`harness fidelity`: the simulator's measured error (the paper reports none, ExeGPT §6, §9).

Every configuration (model x task x policy x knobs) is planned with the `profiled` cost
model of this machine, then (1) executed by the real runner on the mini-cluster and (2)
played by the discrete-event simulator on the *same* requests, with the profile whose
rounds were taken between those runs (`run_configs`) (and scored by the
expected-value model on the task's distributions). Errors are (predicted - measured) /
measured of the steady-state throughput and of the p99-length latency (ExeGPT §5), both read
by `compute_metrics` from records of one schema. A run that other processes disturbed
(harness.profiler.disturbance) is repeated up to twice after a pause; the least disturbed
run is kept and flagged if it still is. Every row also has the run's speed drift
(harness.runner.drift: its decode-stack calls against the profile) and the simulator's
errors at that speed (`err_*_drift`), a diagnostic beside the plain errors. With repeats,
every run is kept in a per-run table, from which harness.studies.floor measures what a
perfect predictor would score against single runs of this machine, and puts every predictor's
error beside that floor with a verdict (`vs_floor`; "floor not measured" with one run each).
Plus, under one latency bound (the p70 of FT latencies over batches 1-16, §7): the searched RRA/WAA schedule
and the best FT batch, both executed; measured throughput ratio beside the predicted one.

The configurations come from the config (`runner.fidelity.configs`, one grid per size in
harness/conf/experiment/fidelity_<size>.yaml). `run` returns the tables and the summary; the CLI
(harness/cli/real.py) writes them and harness/figures/fidelity.py draws the scatter plot.
The files written on the way are inputs, not outputs: a (re)profile, by the profiler, where
the profiled cost model reads it, and the ctranslate2 conversions of the models.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.cost_model.profiled import ProfiledCostModel, profile_path
from harness.engine.pool import MiniCluster, WorkerFailure, WorkerPool, run_job
from harness.errors import UserError, check
from harness.policies import EXEGPT_POLICIES, Context, get_policy
from harness.profiler.disturbance import DISTURBED_CORES
from harness.profiler.profile import Grid, ProfileSession
from harness.runner.baseline import BATCH, TASK, compare_ct2
from harness.runner.drift import decode_layout, speed_drift
from harness.runner.run import RunResult, execute, plan_job
from harness.schema.checks import (
    FIDELITY_SIZES,  # the grids of harness/conf/experiment/fidelity_<size>.yaml
)
from harness.simulator.discrete_event import simulate
from harness.simulator.expected import evaluate
from harness.specs.hardware import ClusterSpec
from harness.specs.models import ModelSpec
from harness.studies.floor import floor, vs_floor
from harness.workload import get_task
from harness.workload.streams import offline


@dataclass(frozen=True, slots=True)
class Config:
    model: str
    task: str
    policy: str
    knobs: tuple[tuple[str, int], ...]
    num_requests: int = 48

    @property
    def label(self) -> str:
        return f"{self.model}/{self.task}/{self.policy} " + ",".join(f"{k}={v}" for k, v in self.knobs)


CONFIG_KEYS = ("model", "task", "policy", "num_requests", "knobs")   # runner.fidelity.configs[*]


def _config(entry, i: int) -> Config:
    """One entry of `runner.fidelity.configs` (a mapping of exactly CONFIG_KEYS)."""
    key = f"runner.fidelity.configs[{i}]"
    check(isinstance(entry, dict) and set(entry) == set(CONFIG_KEYS), key,
          f"must be a mapping with exactly the keys {', '.join(CONFIG_KEYS)}, got {entry!r}")
    for k in ("model", "task", "policy"):
        check(isinstance(entry[k], str) and entry[k], f"{key}.{k}", f"must be a name, got {entry[k]!r}")
    n, knobs = entry["num_requests"], entry["knobs"]
    check(isinstance(n, int) and not isinstance(n, bool) and n >= 1, f"{key}.num_requests",
          f"must be an integer >= 1, got {n!r}")
    check(isinstance(knobs, dict) and all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                                          for k, v in knobs.items()),
          f"{key}.knobs", f"must map knob names to integers, got {knobs!r}")
    return Config(entry["model"], entry["task"], entry["policy"], tuple(sorted(knobs.items())), n)


def configs_from(entries) -> list[Config]:
    """The configurations of `runner.fidelity.configs`, in order (harness/conf/experiment/fidelity_<size>.yaml:
    `full` 27 on the three ~20M models varying batch, N_D, TP (RRA at TP 1 = 2-stage pipeline,
    TP 2 = one TP stage; FT at TP 2) and the WAA micro-batches; `large` 6 on the ~100M
    models; `tiny` 3 short ones for CI)."""
    check(isinstance(entries, list | tuple) and len(entries) > 0, "runner.fidelity.configs",
          "empty; choose a grid with runner.fidelity.size=tiny|full|large (harness/conf/experiment/fidelity_<size>.yaml)")
    return [_config(e, i) for i, e in enumerate(entries)]


def _measure(pool: WorkerPool, plan, spec: ModelSpec, reqs, seed: int, progress: bool, label: str,
             attempts: int = 3, pause_s: float = 3.0, record_tokens: bool = False, dtype: str = "float32"):
    """A real run, repeated (after a pause) while other processes disturbed it, up to
    `attempts` runs; the least disturbed one is kept. Returns (result, repeated?)."""
    best = execute(pool, plan, spec, reqs, seed, dtype, progress=progress, desc=label, record_tokens=record_tokens)
    tries = 1
    while (not best.error and best.disturbance.other_cores > DISTURBED_CORES and tries < attempts):
        time.sleep(pause_s)
        again = execute(pool, plan, spec, reqs, seed, dtype, progress=progress, desc=f"{label} (again)",
                        record_tokens=record_tokens)
        tries += 1
        if again.error or again.disturbance.other_cores < best.disturbance.other_cores:
            best = again
    return best, tries > 1


def _row(cfg: Config, plan, res, remeasured: bool, reqs, workload, cost, spec: ModelSpec) -> dict:
    sim = simulate(plan, reqs).metrics
    ev = evaluate(plan, workload)
    m = res.metrics
    row = {"model": cfg.model, "task": cfg.task, "policy": cfg.policy, "knobs": dict(cfg.knobs).__repr__(),
           "num_requests": len(reqs), "status": "failed" if res.error else "ok", "error": res.error,
           "wall_s": res.wall_s, "other_cores": res.disturbance.other_cores,
           "disturbed": res.disturbance.other_cores > DISTURBED_CORES, "remeasured": remeasured,
           "precision": "float32",
           "sim_throughput_seq_s": sim.throughput_seq_s, "sim_latency_p99len_s": sim.latency_p99len_s,
           "ev_throughput_seq_s": ev.throughput_seq_s, "ev_latency_s": ev.latency_s}
    if m is not None:
        row |= {"real_throughput_seq_s": m.throughput_seq_s, "real_latency_p99len_s": m.latency_p99len_s,
                "real_decode_batch_mean": m.decode_batch_mean, "sim_decode_batch_mean": sim.decode_batch_mean,
                "err_throughput": sim.throughput_seq_s / m.throughput_seq_s - 1,
                "err_latency": sim.latency_p99len_s / m.latency_p99len_s - 1,
                "ev_err_throughput": ev.throughput_seq_s / m.throughput_seq_s - 1,
                "ev_err_latency": ev.latency_s / m.latency_p99len_s - 1}
        drift = speed_drift(cost, spec, res.decode_calls)      # harness.runner.drift
        row |= {"speed_drift": drift,
                "err_throughput_drift": sim.throughput_seq_s / drift / m.throughput_seq_s - 1,
                "err_latency_drift": sim.latency_p99len_s * drift / m.latency_p99len_s - 1}
    return row


class Pools:
    """One warm worker pool per model (weights built once, shared by its profile, its
    configurations, the ctranslate2 comparison and the ratio); rebuilt after a failure.
    `dtype`: the weights' precision (runner.dtype; the fidelity study's is float32)."""

    def __init__(self, mc: MiniCluster, dtype: str = "float32") -> None:
        self.mc, self.pool, self.model, self.dtype = mc, None, None, dtype

    def get(self, spec: ModelSpec, seed: int) -> WorkerPool:
        if self.pool is None or self.model != spec.name or not all(p.is_alive() for p in self.pool.procs):
            self.close()
            self.pool = WorkerPool(self.mc)
            run_job(self.pool, "harness.runner.programs:prepare", (spec, seed, self.dtype))
            self.model = spec.name
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        self.pool = None


def is_ct2_reference(cfg: Config) -> bool:
    """The configuration whose real run is also the torch row of the ctranslate2 comparison."""
    return cfg.policy == "ft" and cfg.task == TASK and dict(cfg.knobs) == {"batch_size": BATCH}


def _plan_all(cfgs: list[Config], specs: dict[str, ModelSpec], cluster: ClusterSpec, cm: ProfiledCostModel,
              seed: int):
    return [(cfg, specs[cfg.model], get_task(cfg.task),
             get_policy(cfg.policy).plan(Context(specs[cfg.model], cluster, get_task(cfg.task), cm), dict(cfg.knobs)),
             offline(get_task(cfg.task), cfg.num_requests, seed)) for cfg in cfgs]


def between_runs(runs: int, rounds: int) -> list[int]:
    """Before which run (0..runs-1; `runs`: after the last) each of `rounds` profile rounds is
    taken: evenly spread, the first round having been taken before the first run."""
    return [round((r + 1) * runs / (rounds + 1)) for r in range(rounds)]


def _run_passes(jobs: list, pools: Pools, seed: int, progress: bool, repeats: int,
                profile: ProfileSession | None) -> tuple[list[list], dict[int, str]]:
    """Every planned configuration `repeats` times, in passes over the list, the profile's
    remaining rounds taken between the runs (`between_runs`). Per configuration its runs
    ((RunResult, remeasured?, pass) each), and the error of those whose pool failed."""
    order = [(k, i) for k in range(max(1, repeats)) for i in range(len(jobs))]
    left = profile.grid.repeats - profile.rounds if profile is not None else 0
    cuts = between_runs(len(order), left)
    runs: list[list] = [[] for _ in jobs]
    failed: dict[int, str] = {}
    for n, (k, i) in enumerate(order):
        if cuts.count(n):
            profile.take(cuts.count(n))
        cfg, spec, _wl, plan, reqs = jobs[i]
        if i in failed:
            continue
        label = cfg.label + (f" ({k + 1}/{repeats})" if repeats > 1 else "")
        try:
            res, again = _measure(pools.get(spec, seed), plan, spec, reqs, seed, progress, label,
                                  record_tokens=is_ct2_reference(cfg))
        except WorkerFailure as e:
            pools.close()
            failed[i] = str(e)
            continue
        if res.error:
            pools.close()
        runs[i].append((res, again, k))
    if profile is not None and cuts.count(len(order)):
        profile.take(cuts.count(len(order)))
    return runs, failed


def _pipeline_cols(plan, res: RunResult, reqs, cost: ProfiledCostModel, spec: ModelSpec) -> dict:
    """The same run scored with a pipeline stage priced from the profile's pipeline points
    (`contention_aware=True`, `decode_pipe`): `*_pipeline`."""
    if res.metrics is None:
        return {}
    sim = simulate(plan, reqs).metrics
    return {"decode_layout": decode_layout(spec, res.decode_calls),
            "sim_throughput_seq_s_pipeline": sim.throughput_seq_s,
            "err_throughput_pipeline": sim.throughput_seq_s / res.metrics.throughput_seq_s - 1,
            "sim_latency_p99len_s_pipeline": sim.latency_p99len_s,
            "err_latency_pipeline": sim.latency_p99len_s / res.metrics.latency_p99len_s - 1,
            "speed_drift_pipeline": speed_drift(cost, spec, res.decode_calls)}


def _config_row(job: tuple, plan, runs: list, cost: ProfiledCostModel, seed: int,
                alt: tuple | None = None) -> tuple[dict, RunResult]:
    """A configuration's row of the table from its runs: the median-throughput run, scored
    with the plan made on the final profile where it schedules the work the executed one did
    (`replanned`), else with the executed plan; and that run."""
    cfg, spec, wl, ran, reqs = job
    same = plan_job(plan, spec, reqs, seed) == plan_job(ran, spec, reqs, seed)
    done = [r for r in runs if r[0].metrics is not None] or runs
    done.sort(key=lambda r: r[0].metrics.throughput_seq_s if r[0].metrics else 0.0)
    res, again, _k = done[len(done) // 2]
    row = _row(cfg, plan if same else ran, res, again, reqs, wl, cost, spec)
    if alt is not None:                      # (plan on the pipeline points' pricing, that cost model)
        row |= _pipeline_cols(alt[0], res, reqs, alt[1], spec)
    thr = [r[0].metrics.throughput_seq_s for r in runs if r[0].metrics is not None]
    row |= {"repeats": len(runs), "real_throughput_runs": " ".join(f"{x:.3f}" for x in thr),
            "real_throughput_spread": (max(thr) / min(thr) - 1) if thr else math.nan,
            "replanned": same}
    return row, res


def _run_rows(cfg: Config, spec: ModelSpec, runs: list, kept: RunResult, row: dict,
              cost: ProfiledCostModel, pipe_cost: ProfiledCostModel | None = None) -> list[dict]:
    """One row per real run of a configuration that has metrics (the per-run table)."""
    return [{"config": cfg.label, "model": cfg.model, "task": cfg.task, "policy": cfg.policy, "pass": k,
             "kept": r is kept, "other_cores": r.disturbance.other_cores,
             "real_throughput_seq_s": r.metrics.throughput_seq_s, "real_latency_p99len_s": r.metrics.latency_p99len_s,
             "sim_throughput_seq_s": row["sim_throughput_seq_s"], "sim_latency_p99len_s": row["sim_latency_p99len_s"],
             "ev_throughput_seq_s": row["ev_throughput_seq_s"], "ev_latency_s": row["ev_latency_s"],
             "speed_drift": row["speed_drift"] if r is kept else speed_drift(cost, spec, r.decode_calls),
             **{c: row[c] for c in PIPELINE_RUN_COLUMNS if c in row},
             **({"speed_drift_pipeline": row["speed_drift_pipeline"] if r is kept and "speed_drift_pipeline" in row
                 else speed_drift(pipe_cost, spec, r.decode_calls)} if pipe_cost else {})}
            for r, _again, k in runs if r.metrics is not None]


PIPELINE_RUN_COLUMNS = ("decode_layout", "sim_throughput_seq_s_pipeline", "sim_latency_p99len_s_pipeline")


def drift_by_kind(runs: pd.DataFrame) -> list[dict]:
    """Per kind of run (policy x decode layout): the median speed drift of its runs against the
    profile's whole-stack pricing (`speed_drift`, the default) and with a pipeline stage priced
    from the pipeline points (`speed_drift_pipeline`), each within DRIFT_BAND of 1 or not (issue 20)."""
    if runs.empty or "speed_drift_pipeline" not in runs or "decode_layout" not in runs:
        return []
    out = []
    for (pol, lay), g in runs.groupby(["policy", "decode_layout"], sort=True):
        whole, pipe = float(g.speed_drift.median()), float(g.speed_drift_pipeline.median())
        out.append({"policy": pol, "decode_layout": lay, "runs": int(len(g)), "configs": int(g.config.nunique()),
                    "drift_whole_stack": whole, "drift_pipeline_points": pipe,
                    "within_band": abs(whole - 1) <= DRIFT_BAND,
                    "within_band_pipeline_points": abs(pipe - 1) <= DRIFT_BAND})
    return out


DRIFT_BAND = 0.05      # issue 20: every kind's median drift within +-5% of 1


def run_configs(cfgs: list[Config], specs: dict[str, ModelSpec], cluster: ClusterSpec, pools: Pools,
                profile_dir, seed: int = 0, progress: bool = True, repeats: int = 1,
                profile: ProfileSession | None = None) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Real run + simulators per configuration. With `repeats` > 1 every configuration runs
    that often, in passes over the whole list (so the repeats of one configuration are spread
    over the minutes this VM's speed drifts over, not taken back to back), and the run of
    median throughput is kept (its records give the latency too).
    `profile`: the profile of these configurations' model, being taken (at least one round
    done and written to `profile_dir`): its remaining rounds are taken between the runs,
    evenly spread, and the simulators play on the table of all rounds, so a burst of speed
    during one round moves one sample of three rather than the whole profile. Plans are
    made before the runs and again after; the runs execute the first, the simulators play
    the second, which must schedule the same work (checked per configuration: `replanned`).
    Returns the table, per model the (RunResult, Requests) of its ctranslate2 reference
    configuration, and one row per real run (its pass, metrics, speed drift; for the
    repeatability floor, harness.studies.floor)."""
    jobs = _plan_all(cfgs, specs, cluster, ProfiledCostModel(cluster, profile_dir), seed)
    runs, failed = _run_passes(jobs, pools, seed, progress, repeats, profile)
    if profile is not None:
        profile.write(profile_path(profile_dir, profile.model, cluster))
    cost = ProfiledCostModel(cluster, profile_dir)          # the final table: plans and drift
    final = _plan_all(cfgs, specs, cluster, cost, seed)
    cost_pipe = ProfiledCostModel(cluster, profile_dir, contention_aware=True)
    piped = _plan_all(cfgs, specs, cluster, cost_pipe, seed)
    rows, refs, per_run = [], {}, []
    for i, (job, (*_, plan, _r), (*_, plan_pipe, _q)) in enumerate(zip(jobs, final, piped, strict=True)):
        cfg, spec, *_ = job
        if i in failed and not runs[i]:
            rows.append({"model": cfg.model, "task": cfg.task, "policy": cfg.policy, "status": "failed",
                         "error": failed[i]})
            continue
        row, kept = _config_row(job, plan, runs[i], cost, seed, (plan_pipe, cost_pipe))
        if not kept.error and is_ct2_reference(cfg):
            refs[cfg.model] = (kept, job[4])
        rows.append(row)
        per_run += _run_rows(cfg, spec, runs[i], kept, row, cost, cost_pipe)
    return pd.DataFrame(rows), refs, pd.DataFrame(per_run)


def summary(df: pd.DataFrame) -> dict:
    ok = df[df.status == "ok"]
    out = {"configs": int(len(df)), "ok": int(len(ok)), "disturbed": int(ok.disturbed.sum())}
    for col in ("err_throughput", "err_latency", "ev_err_throughput", "ev_err_latency",
                "err_throughput_drift", "err_latency_drift", "err_throughput_pipeline", "err_latency_pipeline"):
        a = ok[col].abs() if col in ok else pd.Series(dtype=float)
        out[f"median_abs_{col}"] = float(a.median()) if len(a) else math.nan
        out[f"max_abs_{col}"] = float(a.max()) if len(a) else math.nan
    out["by_policy"] = {p: {"median_abs_err_throughput": float(g.err_throughput.abs().median()),
                            "median_abs_err_latency": float(g.err_latency.abs().median()),
                            "median_abs_err_throughput_drift": float(g.err_throughput_drift.abs().median()),
                            "median_abs_err_latency_drift": float(g.err_latency_drift.abs().median()),
                            "configs": len(g)}
                        for p, g in ok.groupby("policy")}
    return out


# ---- searched schedule vs best FT under one bound (ExeGPT §7) ----------------------------------
FT_BATCHES = (1, 2, 4, 8, 16)
BOUND_PERCENTILE = 70     # the bottom-70% FT latency (ExeGPT §7 bounds: p10, p30, p70, inf)
RATIO_MAX_REQUESTS = 48   # keeps the ratio's two runs within the make-reproduce budget


def ft_ratio(spec: ModelSpec, task: str, cluster: ClusterSpec, pools: Pools, profile_dir,
             seed: int = 0, num_requests: int = 16, progress: bool = True) -> dict:
    from harness.scheduler import find_schedule
    from harness.scheduler.bounds import percentile_lower
    cm = ProfiledCostModel(cluster, profile_dir)
    wl = get_task(task)
    ctx = Context(spec, cluster, wl, cm)
    ft = get_policy("ft")
    ests = {b: evaluate(ft.plan(ctx, {"batch_size": b}), wl) for b in FT_BATCHES}
    bound = percentile_lower([e.latency_s for e in ests.values()], BOUND_PERCENTILE)
    ok = [(e.throughput_seq_s, b) for b, e in ests.items() if e.latency_s < bound]
    ok = ok or [(ests[min(ests, key=lambda b: ests[b].latency_s)].throughput_seq_s,
                 min(ests, key=lambda b: ests[b].latency_s))]
    ft_b = max(ok)[1]
    res = find_schedule(ctx, bound, EXEGPT_POLICIES, "coarse")
    best = res.best
    plans = {"ft": ft.plan(ctx, {"batch_size": ft_b}),
             "searched": get_policy(best.policy).plan(ctx, dict(best.knobs))}
    # a few encoder batches, at most RATIO_MAX_REQUESTS (both engines and the simulator play
    # the same requests, so a large searched B_E is compared on a finite, not steady, stream)
    reqs = offline(wl, min(max(num_requests, 3 * best.encode_batch_size), RATIO_MAX_REQUESTS), seed)
    out = {"model": spec.name, "task": task, "bound_s": bound, "ft_batch": ft_b,
           "searched_policy": best.policy, "searched_knobs": dict(best.knobs),
           "num_requests": len(reqs), "precision": "float32"}
    for name, plan in plans.items():
        r, _ = _measure(pools.get(spec, seed), plan, spec, reqs, seed, progress, f"ratio {name}")
        sim = simulate(plan, reqs).metrics
        out[f"{name}_real_throughput_seq_s"] = r.metrics.throughput_seq_s if r.metrics else math.nan
        out[f"{name}_real_latency_s"] = r.metrics.latency_p99len_s if r.metrics else math.nan
        out[f"{name}_sim_throughput_seq_s"] = sim.throughput_seq_s
        out[f"{name}_ev_throughput_seq_s"] = evaluate(plan, wl).throughput_seq_s
        out[f"{name}_other_cores"] = r.disturbance.other_cores
        out[f"{name}_speed_drift"] = speed_drift(cm, spec, r.decode_calls)
    out["ratio_real"] = out["searched_real_throughput_seq_s"] / out["ft_real_throughput_seq_s"]
    out["ratio_sim"] = out["searched_sim_throughput_seq_s"] / out["ft_sim_throughput_seq_s"]
    out["ratio_ev"] = out["searched_ev_throughput_seq_s"] / out["ft_ev_throughput_seq_s"]
    out["ratio_sim_drift"] = out["ratio_sim"] * out["ft_speed_drift"] / out["searched_speed_drift"]
    return out


# ---- the whole study (`harness fidelity`) ------------------------------------------------------
RATIO_MODEL = "opt-20m"              # the model the searched-vs-FT ratio runs on (T-cpu)


@dataclass(frozen=True, slots=True)
class Settings:
    """`runner.fidelity.*`, validated (harness/cli/real.py builds it from the config)."""

    size: str
    configs: tuple[Config, ...]
    profile_dir: Path                 # runner.profile.out_dir: read, and written when (re)profiling
    ct2_dir: Path                     # ctranslate2 conversions of the models (a cache)
    repeats: int = 1
    reprofile: bool = False
    ct2: bool = False                 # the ctranslate2 rows
    ratio: bool = False               # the searched-vs-FT ratio (on RATIO_MODEL)
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        check(self.size in FIDELITY_SIZES, "runner.fidelity.size", f"'{self.size}' not in {', '.join(FIDELITY_SIZES)}")
        check(self.repeats >= 1, "runner.fidelity.repeats", f"must be an integer >= 1, got {self.repeats}")
        if not self.configs:
            raise UserError("runner.fidelity.configs: empty; choose a grid with runner.fidelity.size")


@dataclass(slots=True)
class Result:
    """What `run` measured: the tables the CLI writes and the summary it prints."""

    table: pd.DataFrame               # one row per configuration (fidelity-<size>.csv)
    runs: pd.DataFrame                # one row per real run (fidelity-runs-<size>.csv)
    summary: dict                     # size, repeats, profiled_now, profile_s, `summary`, `floor`
    seconds: dict                     # wall time per part (<model>_profile, _configs, _ct2, ratio)
    ratio: dict | None = None         # `ft_ratio` (ft-ratio-<size>.csv)
    ct2_rows: list[dict] = field(default_factory=list)   # `compare_ct2` (ct2-vs-torch-<size>.csv)


class _Clock:
    """Seconds per part of the study, in the order the parts ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def part(self, key: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.seconds[key] = round(time.perf_counter() - t, 1)


def _model_configs(spec: ModelSpec, st: Settings, specs: dict[str, ModelSpec], grid: Grid, cluster: ClusterSpec,
                   mc: MiniCluster, pools: Pools, clock: _Clock) -> tuple[pd.DataFrame, dict, pd.DataFrame, bool]:
    """One model's configurations, (re)profiling it first if asked or missing: the profile's
    first round before the runs, the others between them. Returns `run_configs`'s three
    results and whether the model was profiled now."""
    m, session = spec.name, None
    with clock.part(f"{m}_configs"):
        path = profile_path(st.profile_dir, spec, cluster)
        if st.reprofile or not path.exists():
            session = ProfileSession(spec, cluster, mc, grid, lambda: pools.get(spec, st.seed), st.seed, st.progress)
            session.take(1)
            session.write(path)
        df, refs, per_run = run_configs([c for c in st.configs if c.model == m], specs, cluster, pools,
                                        st.profile_dir, st.seed, st.progress, st.repeats, profile=session)
    if session is not None:
        clock.seconds[f"{m}_profile"] = round(session.seconds, 1)
        clock.seconds[f"{m}_configs"] = round(clock.seconds[f"{m}_configs"] - session.seconds, 1)
    return df, refs, per_run, session is not None


def run(st: Settings, specs: dict[str, ModelSpec], grids: dict[str, Grid], cluster: ClusterSpec,
        mc: MiniCluster) -> Result:
    """Real runner vs simulators on `st.configs`. Model by model (`specs`, in the order of
    the configurations), one warm worker pool: its (re)profile (`grids`) and configurations
    (`_model_configs`; this VM's speed drifts over minutes: docs/real-execution.md), then the
    ctranslate2 rows (whose torch row is the FT batch-8 configuration's run) and, for
    RATIO_MODEL, the ratio."""
    pools, clock = Pools(mc), _Clock()
    profiled, tables, run_tables, ct_rows, ratio = [], [], [], [], None
    try:
        for m, spec in specs.items():
            df, refs, per_run, fresh = _model_configs(spec, st, specs, grids[m], cluster, mc, pools, clock)
            tables.append(df)
            run_tables.append(per_run)
            profiled += [m] if fresh else []
            if st.ct2 and m in refs:
                with clock.part(f"{m}_ct2"):
                    ct_rows += compare_ct2(spec, *refs[m], st.ct2_dir, st.seed, threads=mc.num_workers)
            if st.ratio and m == RATIO_MODEL:
                with clock.part("ratio"):
                    ratio = ft_ratio(spec, "T-cpu", cluster, pools, st.profile_dir, st.seed, progress=st.progress)
    finally:
        pools.close()
    df, runs = pd.concat(tables, ignore_index=True), pd.concat(run_tables, ignore_index=True)
    head = {"size": st.size, "repeats": st.repeats, "profiled_now": profiled,
            "profile_s": round(sum(v for k, v in clock.seconds.items() if k.endswith("_profile")), 1),
            **summary(df), **floor(runs), "vs_floor": vs_floor(runs), "drift_by_kind": drift_by_kind(runs)}
    return Result(df, runs, head, clock.seconds, ratio, ct_rows)
