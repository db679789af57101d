"""Baselines beside ExeGPT: the paper's Fig. 7 and modern schedulers (issue 17, items 4-5).

`harness modern experiment=<fig7|modern|modern_full>` runs one experiment of this study;
the experiment file (harness/conf/experiment/) declares the matrix (`hydra.sweeper.params`, the
sweeps' syntax) and a `study` section:
- `policies`: searched by XScheduler (harness.scheduler.search) under each bound, the same
  search every policy gets; `exegpt`: the subset whose best is the `exegpt` row (ExeGPT §5);
- `pin`: knobs held fixed per policy, e.g. `{vllm: {tp_degree: 4}}` for the paper's TP-only
  layouts (§7); a pinned policy is searched as `Pinned` over its other knobs;
- `online` (optional): scenarios whose searched schedules are replayed on Poisson streams at a
  common absolute rate sweep and on the Splitwise traces (arrival times kept, time-scaled).
Offline rows are the sweeps' (harness/app.py `scenario_rows` columns, plus `engine`,
`estimator`, `pinned`), one job per scenario x bound, stored resumably under
runs/<experiment>/jobs/ and aggregated into runs/<experiment>/results.parquet with provenance.

Online SLOs (DistServe style, stated in `online`): a request attains its SLO when TTFT <=
`slo_scale` x ref TTFT and TPOT <= `slo_scale` x ref TPOT, the refs being the lowest TTFT and
TPOT over the policies' schedules serving one request of the task's mean lengths alone (the
fastest unloaded system). Goodput = SLO-attaining requests per second of the run (first
arrival -> last token). TPOT of a request = (finish - first token) / (output - 1); a
single-token request has TPOT 0.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from harness.config import compose, load_option
from harness.cost_model.engines import engine_of, with_engine
from harness.errors import UserError
from harness.policies import (
    EXEGPT_POLICIES,
    POLICIES,
    SEARCHED,
    Context,
    Plan,
    Policy,
    get_policy,
    weight_copies,
)
from harness.results import ResultStore, config_hash, provenance
from harness.results.record import finite

EXPERIMENTS = ("fig7", "modern", "modern_full")
ONLINE_COLUMNS = ["model", "cluster", "task", "bound", "stream", "load", "offered_rps", "policy", "chosen_policy", "engine",
                  "status", "reason", "knobs", "requests", "throughput_rps", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s",
                  "tpot_p99_s", "e2e_p50_s", "e2e_p99_s", "ttft_slo_s", "tpot_slo_s", "slo_attainment",
                  "goodput_rps"]


# ---- settings ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OnlineSettings:
    scenarios: tuple[tuple[str, str], ...]    # (model, task), each on its paper cluster
    bound: str = "inf"                        # the bound the replayed schedules were searched for
    loads: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)   # x the best offline throughput of any policy
    num_requests: int = 600
    slo_scale: float = 5.0                    # SLO = slo_scale x the fastest unloaded TTFT / TPOT
    traces: tuple[str, ...] = ()              # CSVs under paths.traces; absent: skipped with a reason
    trace_load: float = 0.7                   # trace replay time-scaled to this x the best throughput
    seed: int = 0


@dataclass(frozen=True, slots=True)
class StudySettings:
    policies: tuple[str, ...]
    exegpt: tuple[str, ...] = ()
    pin: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    online: OnlineSettings | None = None
    matrix: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())   # swept key -> values

    def pins(self, policy: str) -> dict[str, int]:
        return dict(dict(self.pin).get(policy, ()))


def load_settings(experiment: str) -> StudySettings:
    """The experiment file's `study` section and matrix, validated (one-line errors)."""
    if experiment not in EXPERIMENTS:
        raise UserError(f"modern: experiment={experiment} is not one of this study's ({', '.join(EXPERIMENTS)})")
    raw = OmegaConf.to_container(load_option("experiment", experiment))
    st = raw.get("study") or {}
    pols = tuple(st.get("policies") or ())
    if not pols:
        raise UserError(f"study.policies: missing in harness/conf/experiment/{experiment}.yaml")
    exe = tuple(st["exegpt"]) if st.get("exegpt") is not None else EXEGPT_POLICIES
    if set(exe) - set(pols):
        raise UserError(f"study.exegpt: {sorted(set(exe) - set(pols))} not in study.policies")
    pin = tuple(sorted((p, tuple(sorted((k, int(v)) for k, v in kn.items())))
                       for p, kn in (st.get("pin") or {}).items()))
    on = st.get("online")
    online = None if not on else OnlineSettings(
        tuple(tuple(x) for x in on["scenarios"]), str(on.get("bound", "inf")),
        tuple(float(x) for x in on.get("loads", OnlineSettings.loads)), int(on.get("num_requests", 600)),
        float(on.get("slo_scale", 5.0)), tuple(on.get("traces") or ()), float(on.get("trace_load", 0.7)),
        int(on.get("seed", 0)))
    params = (raw.get("hydra") or {}).get("sweeper", {}).get("params", {})
    matrix = tuple((k, tuple(str(v).split(","))) for k, v in params.items())
    return StudySettings(pols, exe, pin, online, matrix)


def registered(policies: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(loadable, not loadable) policy names: a baseline still being written (not registered,
    or its module not importable yet) is a row with status "failed" and the reason, not a
    crashed study."""
    ok, missing = [], []
    for p in policies:
        try:
            get_policy(p)
            ok.append(p)
        except (UserError, ImportError, AttributeError):
            missing.append(p)
    return ok, missing


# ---- pinned knobs --------------------------------------------------------------------------
class Pinned(Policy):
    """`inner` with some knobs held fixed: the search sees only the others (TP-only layouts of
    §7: tp_degree pinned, so the search never enumerates TP degrees or replicas)."""

    def __init__(self, inner: str, pins: tuple[tuple[str, int], ...]) -> None:
        self.inner, self.pinned = get_policy(inner), dict(pins)
        for attr in ("name", "kind", "citation", "estimator", "iteration_level", "runtime_adjustment",
                     "engine", "search_resolution", "regime_knobs"):
            setattr(self, attr, getattr(self.inner, attr))

    def _free(self, specs: list) -> list:
        return [k for k in specs if k.name not in self.pinned]

    def knob_space(self, ctx: Context) -> list:
        return self._free(self.inner.knob_space(ctx))

    def search_space(self, ctx: Context) -> list:
        return self._free(self.inner.search_space(ctx))

    def default_knobs(self, ctx: Context) -> dict[str, int]:
        return {k: v for k, v in self.inner.default_knobs(ctx).items() if k not in self.pinned}

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        return self.inner.plan(ctx, {**knobs, **self.pinned})

    def regime(self, ctx: Context, knobs: Mapping[str, int]):
        return self.inner.regime(ctx, {**knobs, **self.pinned})

    def run(self, plan: Plan, x) -> None:
        self.inner.run(plan, x)

    def expected_timeline(self, plan, workload, worst):
        return self.inner.expected_timeline(plan, workload, worst)

    def memory_groups(self, ctx, plan):
        return self.inner.memory_groups(ctx, plan)

    def weight_copies(self, ctx, plan) -> int:
        return self.inner.weight_copies(ctx, plan)


def search_name(policy: str, pins: Mapping[str, int]) -> str:
    """The name XScheduler searches: `policy` itself, or `policy[k=v,...]` registered once
    per process as a `Pinned` policy."""
    if not pins:
        return policy
    key = f"{policy}[{','.join(f'{k}={v}' for k, v in sorted(pins.items()))}]"
    if key not in POLICIES:
        POLICIES.register(key, functools.partial(Pinned, policy, tuple(sorted(pins.items()))))
    return key


# ---- offline: one job = one scenario x bound -----------------------------------------------
def _row(policy: str, est, reason: str, evaluations: int, search_s: float | None, pol: Policy | None,
         pins: Mapping[str, int]) -> dict:
    base = {"policy": policy, "engine": pol.engine if pol else None, "estimator": pol.estimator if pol else None,
            "pinned": json.dumps(dict(pins), sort_keys=True) if pins else "", "evaluations": evaluations,
            "search_s": search_s}
    if est is None:
        return {**base, "status": "NS", "reason": reason, "throughput_seq_s": None, "throughput_tok_s": None,
                "latency_s": None, "knobs": "", "memory_per_gpu_bytes": None, "chosen_policy": policy}
    return {**base, "status": "ok", "reason": "", "throughput_seq_s": est.throughput_seq_s,
            "throughput_tok_s": est.throughput_tok_s, "latency_s": est.latency_s,
            "knobs": json.dumps(dict(est.knobs), sort_keys=True), "memory_per_gpu_bytes": est.memory_per_gpu_bytes,
            "chosen_policy": est.policy}


def offline_rows(cfg, st: StudySettings) -> list[dict]:
    """FT tuned under the bound (§7) and every policy searched under it, as tidy rows."""
    from harness.config import build_scenario
    from harness.scheduler.bounds import best_ft, derive_bounds, resolve_bound
    from harness.scheduler.search import search_policy
    s = build_scenario(cfg)
    ctx = Context.of(s)
    label, bound_s = resolve_bound(ctx, cfg.get("bound"), cfg.get("bound_s"))
    bounds = derive_bounds(ctx)
    ft = best_ft(ctx, bound_s, bounds)
    rows = [{"policy": "ft", "engine": get_policy("ft").engine, "estimator": "expected", "pinned": "",
             "status": "ok" if ft else "NS", "reason": "" if ft else (bounds.reason or "no FT batch under the bound"),
             "throughput_seq_s": ft["throughput_seq_s"] if ft else None,
             "throughput_tok_s": ft["throughput_seq_s"] * s.workload.output.mean if ft else None,
             "latency_s": ft["latency_s"] if ft else None, "knobs": json.dumps({"batch_size": ft["batch_size"]}) if ft else "",
             "memory_per_gpu_bytes": None, "evaluations": len(bounds.batch_sizes), "search_s": None, "chosen_policy": "ft"}]
    ok, missing = registered(st.policies)
    found = {}
    for p in ok:
        t0, pins = time.perf_counter(), st.pins(p)
        r = search_policy(ctx, search_name(p, pins), bound_s, s.search.resolution, s.search.method == "exhaustive",
                          s.search.eps_throughput_rel, s.search.eps_latency_s)
        found[p] = r.best
        rows.append(_row(p, r.best, r.reason, r.evaluations, time.perf_counter() - t0, get_policy(p), pins))
    rows += [{"policy": p, "status": "failed", "reason": f"policy '{p}' cannot be loaded (not registered or not importable yet)",
              "chosen_policy": p} for p in missing]
    if st.exegpt:
        cands = [found[p] for p in st.exegpt if found.get(p) is not None]
        best = max(cands, key=lambda e: e.throughput_seq_s) if cands else None
        rows.append(_row(SEARCHED, best, "no ExeGPT policy meets the bound", 0, None,
                         get_policy(best.policy) if best else None, {}))
    ft_thr = ft["throughput_seq_s"] if ft else None
    wpg = s.model.num_params() * s.model.dtype_bytes / s.cluster.num_gpus
    for r in rows:
        good = r["status"] == "ok"
        if r.get("chosen_policy") in POLICIES:      # the engine that priced it here (engine_override)
            r["engine"] = engine_of(with_engine(ctx.cost_model, get_policy(r["chosen_policy"]).engine))
        r["weight_bytes_per_gpu"] = wpg * weight_copies(ctx, r["chosen_policy"], r["knobs"]) if good else None
        r["speedup_over_ft"] = r["throughput_seq_s"] / ft_thr if good and ft_thr else None
    common = {"model": s.model.name, "cluster": s.cluster.name, "task": s.workload.name, "bound": label,
              "bound_s": finite(bound_s), "bound_p10_s": bounds.p10_s, "bound_p30_s": bounds.p30_s,
              "bound_p70_s": bounds.p70_s, "cost_model": ctx.cost_model.id, "search_method": s.search.method,
              "search_resolution": s.search.resolution, "seed": s.seed, "mode": s.mode.label(), **s.sla.as_dict()}
    return [{**common, **r} for r in rows]


def jobs(experiment: str, st: StudySettings, overrides: tuple[str, ...] = ()) -> list[list[str]]:
    """Override lists of every job: the matrix's product (like `harness sweep`); an override
    of a swept key narrows that axis (`task=S,T`)."""
    import itertools
    narrow = {k: tuple(v.split(",")) for k, _, v in (o.partition("=") for o in overrides) if k in dict(st.matrix)}
    fixed = [o for o in overrides if o.partition("=")[0] not in narrow]
    axes = [[f"{k}={v}" for v in narrow.get(k, vals)] for k, vals in st.matrix]
    return [[f"experiment={experiment}", *fixed, *combo] for combo in itertools.product(*axes)]


def _identity(job: list[str], st: StudySettings) -> tuple[object, str, dict]:
    cfg = compose(job)
    plain = OmegaConf.to_container(cfg, resolve=True)
    (plain.get("study") or {}).pop("online", None)       # the replay does not change the offline jobs
    plain["study_settings"] = repr((st.policies, st.exegpt, st.pin))
    return cfg, config_hash(plain), plain


def run_job(job: list[str], st: StudySettings, root: str) -> str:
    """One job (skipped when its hash is stored); a job that raises is a "failed" row."""
    cfg, h, plain = _identity(job, st)
    store = ResultStore(Path(root))
    if store.has(h):
        return h
    t0 = time.perf_counter()
    try:
        rows = offline_rows(cfg, st)
    except Exception as e:  # noqa: BLE001 - a failing job is a row, not a crashed study
        rows = [{"model": plain["model"].get("name"), "cluster": plain["cluster"].get("name"),
                 "task": plain["task"].get("name"), "bound": str(plain.get("bound")), "policy": SEARCHED,
                 "status": "failed", "reason": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}]
    meta = {"experiment": plain.get("experiment_name"), "config_hash": h, "job_s": time.perf_counter() - t0,
            "config": json.dumps({k: v for k, v in plain.items() if k not in ("paths", "hydra")}, sort_keys=True,
                                 default=str), **provenance()}
    store.write_job(h, [{**r, **meta} for r in rows])
    return h


def run_offline(experiment: str, runs_dir: Path, overrides: tuple[str, ...] = (), n_jobs: int = 2) -> pd.DataFrame:
    """Every job of the experiment (both cores), then runs/<experiment>/results.parquet."""
    from joblib import Parallel, delayed
    st = load_settings(experiment)
    root = Path(runs_dir) / experiment
    todo = jobs(experiment, st, overrides)
    hashes = Parallel(n_jobs=n_jobs)(delayed(run_job)(j, st, str(root)) for j in todo)
    return ResultStore(root).aggregate(set(hashes))


# ---- online: searched schedules replayed on arrival streams --------------------------------
def run(overrides: list[str] | tuple[str, ...], runs_dir: Path | None = None
        ) -> tuple[Path, dict[str, pd.DataFrame], dict[str, float]]:
    """`harness modern experiment=<name> [overrides]`: the offline jobs (resumable, in the result
    store under `runs_dir`), then the online replay where the experiment has one. Returns the
    experiment's folder, its tables (results, online) and the seconds each part took; the CLI
    writes the online table and draws the figures."""
    exp = next((o.partition("=")[2] for o in overrides if o.startswith("experiment=")), None)
    if exp is None:
        raise UserError(f"modern: experiment: missing; valid: {', '.join(EXPERIMENTS)}")
    rest = tuple(o for o in overrides if not o.startswith("experiment="))
    st = load_settings(exp)
    swept = dict(st.matrix)          # `task=S,T` narrows an axis: not a single config value
    fixed = [o for o in rest if o.partition("=")[0] not in swept]
    runs_dir = Path(runs_dir or str(compose([f"experiment={exp}", *fixed]).runs_dir))
    t0 = time.perf_counter()
    tables = {"results": run_offline(exp, runs_dir, rest)}
    timing = {"offline_s": time.perf_counter() - t0}
    if st.online is not None:
        t1 = time.perf_counter()
        from harness.studies.modern_online import online_rows  # it imports this module
        tables["online"] = online_rows(st, rest, tables["results"])
        timing["online_s"] = time.perf_counter() - t1
    return runs_dir / exp, tables, timing
