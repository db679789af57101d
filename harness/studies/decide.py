"""`harness decide`: decision fidelity. Does the schedule the simulator picks win for real?

Per scenario (model x task on the cpu-2w mini-cluster, profiled cost model) and per latency
bound (p30, p70 of FT's latencies, ExeGPT §7), XScheduler (§5) searches every policy of
`study.policies`; the candidates are each policy's best under the bound (the chosen one among
them) plus FT tuned under it, and a runner-up of the chosen policy under 0.9 x its latency
(so even a scenario where few policies fit has four). The search prices a steady state, so
its batches are capped at `num_requests / batches_per_run` (`Context.batch_cap`): uncapped, it
picks B_E = 512 for a 48-request run, which never leaves its ramp (regret 125% in a first
try). Every candidate of a model is executed
by the real runner on the same requests, pass by pass (all candidates once, then again), for
`study.passes` passes. Per scenario and bound:

- regret = real throughput of the best candidate that meets the bound for real / real
  throughput of the chosen one - 1 (0: the simulator chose the real best);
- bound met = share of passes in which the chosen one's real p99-length latency (§5) is
  under the bound;
- Kendall tau between the search's throughput estimates and the measured ones over the
  candidates the search judged feasible under the bound;

each with a bootstrap interval over passes (resampling whole passes: a pass is one sweep of
the machine's speed over every candidate). Also tau of the discrete-event simulator played
on the very requests of the run (no steady-state assumption), beside the search's.

The noise floor (`noise_floor`, issue 20 point 3): per pass, the regret a perfect chooser (the
candidate with the best mean over passes) and the tau a perfect ranker (the mean-over-passes
ranking) score against that pass alone, beside the chosen schedule's regret and the estimates'
tau against each pass alone: what run-to-run noise costs any chooser on this machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from harness.cost_model.profiled import ProfiledCostModel
from harness.engine.pool import WorkerFailure
from harness.errors import check
from harness.policies import Context, get_policy
from harness.scheduler import find_schedule
from harness.scheduler.bounds import best_ft, derive_bounds, resolve_bound
from harness.simulator.discrete_event import simulate
from harness.simulator.expected import evaluate
from harness.specs.hardware import ClusterSpec
from harness.specs.mode import FTBaseline
from harness.specs.models import ModelSpec
from harness.studies.fidelity import Pools, _measure
from harness.workload import get_task
from harness.workload.streams import offline

RUNNER_UP_LATENCY = 0.9      # the chosen policy's runner-up: its best under 0.9 x the chosen latency
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True, slots=True)
class Settings:
    """The `study` section of harness/conf/experiment/decide*.yaml, validated."""

    scenarios: tuple[tuple[str, str], ...]     # (model, task)
    bounds: tuple[str, ...] = ("p30", "p70")
    policies: tuple[str, ...] = ("rra", "waa-c", "waa-m", "vllm", "sarathi")
    passes: int = 3
    num_requests: int = 64
    batches_per_run: int = 4       # the search's batches are capped at num_requests / this
    seed: int = 0
    progress: bool = True
    latency_margin: float = 0.0    # a second chooser: the best estimate under (1 - margin) x bound

    @property
    def batch_cap(self) -> int:
        """The largest batch searched (`Context.batch_cap`, FT's sweep too): the search prices
        a steady state, which a run of `num_requests` reaches only with several batches."""
        return max(1, self.num_requests // self.batches_per_run)

    def __post_init__(self) -> None:
        check(len(self.scenarios) > 0, "study.scenarios", "empty")
        check(self.passes >= 1, "study.passes", f"must be an integer >= 1, got {self.passes}")
        check(self.num_requests >= 1, "study.num_requests", f"must be an integer >= 1, got {self.num_requests}")
        check(self.batches_per_run >= 1, "study.batches_per_run", f"must be an integer >= 1, got {self.batches_per_run}")
        for b in self.bounds:
            check(b in ("p10", "p30", "p70"), "study.bounds", f"'{b}' not in p10, p30, p70")
        check(0.0 <= self.latency_margin < 1.0, "study.latency_margin", f"must be in [0, 1), got {self.latency_margin}")


@dataclass(frozen=True, slots=True)
class Candidate:
    model: str
    task: str
    policy: str
    knobs: tuple[tuple[str, int], ...]

    @property
    def label(self) -> str:
        return f"{self.policy} " + ",".join(f"{k}={v}" for k, v in self.knobs)


def _search(ctx: Context, st: Settings) -> tuple[list[dict], list[dict]]:
    """Per bound: the search's candidates (policy, knobs, estimate, chosen?) and NS notes."""
    rows, notes = [], []
    bounds = derive_bounds(ctx)
    for label in st.bounds:
        _, bound_s = resolve_bound(ctx, label, None)
        res = find_schedule(ctx, bound_s, st.policies, "coarse")
        found = [(p.policy, p.best) for p in res.per_policy if p.best is not None]
        notes += [{"bound": label, "policy": p.policy, "reason": p.reason} for p in res.per_policy if p.best is None]
        ft = best_ft(ctx, bound_s, bounds)
        if ft is not None:
            found.append(("ft", evaluate(get_policy("ft").plan(ctx, {"batch_size": ft["batch_size"]}), ctx.workload)))
        if res.best is not None:
            second = find_schedule(ctx, RUNNER_UP_LATENCY * res.best.latency_s, (res.best.policy,), "coarse").best
            if second is not None:
                found.append((second.policy, second))
        if st.latency_margin > 0:          # each policy's best under the margin: the margin chooser's set
            tight = find_schedule(ctx, (1 - st.latency_margin) * bound_s, st.policies, "coarse")
            found += [(p.policy, p.best) for p in tight.per_policy if p.best is not None]
        unique: dict = {}
        for pol, est in found:                     # each (policy, knobs) once, first listing kept
            unique.setdefault((pol, tuple(sorted(est.knobs))), (pol, est))
        found = list(unique.values())
        chosen = res.best
        for pol, est in found:
            rows.append({"bound": label, "bound_s": bound_s, "policy": pol, "knobs": tuple(sorted(est.knobs)),
                         "est_throughput_seq_s": est.throughput_seq_s, "est_latency_s": est.latency_s,
                         "chosen": chosen is not None and pol == chosen.policy and dict(est.knobs) == dict(chosen.knobs)})
    return rows, notes


def plan_scenario(spec: ModelSpec, task: str, cluster: ClusterSpec, profile_dir, st: Settings):
    """(candidates table, the plans to run keyed by Candidate, notes) of one model x task."""
    ctx = Context(spec, cluster, get_task(task), ProfiledCostModel(cluster, profile_dir),
                  ft=FTBaseline(max_batch=st.batch_cap), batch_cap=st.batch_cap)
    rows, notes = _search(ctx, st)
    plans = {}
    for r in rows:
        cand = Candidate(spec.name, task, r["policy"], r["knobs"])
        r |= {"model": spec.name, "task": task, "candidate": cand.label}
        plan = get_policy(cand.policy).plan(ctx, dict(cand.knobs))
        why = get_policy(cand.policy).runner_support(plan)
        r["runnable"] = not why
        if why:
            notes.append({"bound": r["bound"], "policy": cand.policy, "reason": f"not run: {why}"})
        elif cand not in plans:
            plans[cand] = plan
    return pd.DataFrame(rows), plans, [{"model": spec.name, "task": task, **n} for n in notes]


def run_candidates(plans: dict, specs: dict[str, ModelSpec], pools: Pools, st: Settings) -> pd.DataFrame:
    """Every candidate once per pass, pass by pass (one model's candidates at a time, its pool
    warm); one row per run. A run that fails is a row with its error; the study goes on."""
    rows = []
    by_model: dict[str, list] = {}
    for cand, plan in plans.items():
        by_model.setdefault(cand.model, []).append((cand, plan))
    for model, items in by_model.items():
        spec = specs[model]
        reqs = {task: offline(get_task(task), st.num_requests, st.seed) for task in {c.task for c, _ in items}}
        for k in range(st.passes):
            for cand, plan in items:
                row = {"model": model, "task": cand.task, "candidate": cand.label, "pass": k}
                try:
                    res, _ = _measure(pools.get(spec, st.seed), plan, spec, reqs[cand.task], st.seed,
                                      st.progress, f"{model}/{cand.task} {cand.label} ({k + 1}/{st.passes})")
                except WorkerFailure as e:
                    pools.close()
                    rows.append(row | {"error": str(e)})
                    continue
                if res.error:
                    pools.close()
                m = res.metrics
                rows.append(row | {"error": res.error, "other_cores": res.disturbance.other_cores,
                                   "real_throughput_seq_s": m.throughput_seq_s if m else math.nan,
                                   "real_latency_s": m.latency_p99len_s if m else math.nan,
                                   "des_throughput_seq_s": simulate(plan, reqs[cand.task]).metrics.throughput_seq_s})
    return pd.DataFrame(rows)


def _tau(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.allclose(a, a[0]) or np.allclose(b, b[0]):
        return math.nan
    return float(kendalltau(a, b).statistic)


def decision_metrics(cands: pd.DataFrame, real: np.ndarray, lat: np.ndarray, bound_s: float) -> dict:
    """Regret, bound met and tau of one scenario x bound from per-candidate real throughputs
    and latencies (means over the passes used); `cands` in the same order (est_*, chosen)."""
    chosen = int(np.flatnonzero(cands.chosen.to_numpy())[0])
    meets = lat < bound_s
    best = real[meets].max() if meets.any() else math.nan
    return {"regret": best / real[chosen] - 1 if meets.any() else math.nan,
            "chosen_meets_bound": bool(meets[chosen]),
            "tau": _tau(cands.est_throughput_seq_s, real)}


def _mean(vals) -> float:
    """Mean of the finite values (NaN when none)."""
    v = np.asarray(vals, float)
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else math.nan


def noise_floor(cands: pd.DataFrame, thr: np.ndarray, lat: np.ndarray, bound_s: float) -> dict:
    """What run-to-run noise alone costs, beside what the search's choice scores, per pass (what
    a one-pass study would measure), then the mean over passes. `regret_per_pass`, `tau_per_pass`:
    the chosen candidate's regret and the estimates' tau against each pass alone. `regret_floor`:
    the regret against each pass of a perfect chooser, the candidate with the best mean over the
    passes among those whose mean latency meets the bound; `tau_floor`: the tau of the
    mean-over-passes ranking against each pass's (a perfect ranker's). The mean includes the pass
    it is scored against, so the floor errs low (a strict floor). NaN with fewer than 2 passes.
    `thr`, `lat`: passes x candidates, in the order of `cands`."""
    keys = ("regret_per_pass", "tau_per_pass", "regret_floor", "tau_floor")
    if len(thr) < 2:
        return dict.fromkeys(keys, math.nan)
    mean_thr = np.array([_mean(col) for col in thr.T])
    meets = np.array([_mean(col) for col in lat.T]) < bound_s
    per = [decision_metrics(cands, thr[k], lat[k], bound_s) for k in range(len(thr))]
    out = {"regret_per_pass": _mean([m["regret"] for m in per]), "tau_per_pass": _mean([m["tau"] for m in per]),
           "tau_floor": _mean([_tau(mean_thr, thr[k]) for k in range(len(thr))]), "regret_floor": math.nan}
    if meets.any():
        best = int(np.nanargmax(np.where(meets, mean_thr, -np.inf)))
        oracle = cands.assign(chosen=[i == best for i in range(len(cands))])
        out["regret_floor"] = _mean([decision_metrics(oracle, thr[k], lat[k], bound_s)["regret"]
                                     for k in range(len(thr))])
    return out


def margin_choice(c: pd.DataFrame, bound_s: float, margin: float) -> pd.DataFrame:
    """`c` with `chosen` moved to the margin chooser's pick: the best estimated throughput among
    the searched candidates (not FT) whose estimated latency is under (1 - margin) x the bound
    (the search's own choice under the tighter bound; its per-policy bests are candidates).
    No candidate under it: none chosen."""
    ok = (c.policy != "ft") & (c.est_latency_s <= (1 - margin) * bound_s)
    best = c.est_throughput_seq_s.where(ok).idxmax() if ok.any() else None
    return c.assign(chosen=[i == best for i in c.index])


def _margin_cols(c: pd.DataFrame, thr: np.ndarray, lat: np.ndarray, bound_s: float, margin: float) -> dict:
    """The margin chooser's regret, bound attainment and pick (on the same runs)."""
    if margin <= 0:
        return {}
    cm = margin_choice(c, bound_s, margin)
    if not cm.chosen.any():
        return {"chosen_margin": "", "regret_margin": math.nan, "bound_met_share_margin": math.nan}
    ch = int(np.flatnonzero(cm.chosen.to_numpy())[0])
    m = decision_metrics(cm, np.nanmean(thr, 0), np.nanmean(lat, 0), bound_s)
    return {"chosen_margin": cm.candidate.iloc[ch], "regret_margin": m["regret"],
            "bound_met_share_margin": float(np.mean(lat[:, ch] < bound_s))}


def _per_pass(runs: pd.DataFrame, cands: pd.DataFrame, col: str) -> np.ndarray:
    """passes x candidates matrix of `col` (NaN where a run failed)."""
    piv = runs.pivot_table(index="pass", columns="candidate", values=col, aggfunc="first")
    return piv.reindex(columns=cands.candidate.tolist()).to_numpy(float)


def score(cands: pd.DataFrame, runs: pd.DataFrame, seed: int = 0, margin: float = 0.0) -> pd.DataFrame:
    """One row per model x task x bound: the metrics on the mean over passes, their bootstrap
    intervals (2.5 and 97.5 percentiles over resampled passes), bound attainment per run."""
    rng, out = np.random.default_rng(seed), []
    for (model, task, bound), c in cands[cands.runnable].groupby(["model", "task", "bound"], sort=False):
        c = c.drop_duplicates("candidate").reset_index(drop=True)
        r = runs[(runs.model == model) & (runs.task == task)]
        thr, lat = _per_pass(r, c, "real_throughput_seq_s"), _per_pass(r, c, "real_latency_s")
        bound_s = float(c.bound_s.iloc[0])
        row = {"model": model, "task": task, "bound": bound, "bound_s": bound_s, "candidates": len(c),
               "passes": len(thr), "chosen": c.candidate[c.chosen].iloc[0] if c.chosen.any() else ""}
        if not c.chosen.any() or np.isnan(thr).all():
            out.append(row | {"status": "no chosen schedule ran"})
            continue
        m = decision_metrics(c, np.nanmean(thr, 0), np.nanmean(lat, 0), bound_s)
        ch = int(np.flatnonzero(c.chosen.to_numpy())[0])
        des = np.nanmean(_per_pass(r, c, "des_throughput_seq_s"), 0)
        boots = [decision_metrics(c, np.nanmean(thr[i], 0), np.nanmean(lat[i], 0), bound_s)
                 for i in rng.integers(0, len(thr), (BOOTSTRAP_RESAMPLES, len(thr)))]
        for key in ("regret", "tau"):
            vals = np.array([b[key] for b in boots], float)
            vals = vals[~np.isnan(vals)]
            row[f"{key}_lo"], row[f"{key}_hi"] = ((float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5)))
                                                  if len(vals) else (math.nan, math.nan))
        out.append(row | {"status": "ok", **m, "bound_met_share": float(np.mean(lat[:, ch] < bound_s)),
                          "real_best": c.candidate[int(np.nanargmax(np.where(np.nanmean(lat, 0) < bound_s,
                                                                              np.nanmean(thr, 0), -np.inf)))],
                          "tau_des": _tau(des, np.nanmean(thr, 0)), **noise_floor(c, thr, lat, bound_s),
                          **_margin_cols(c, thr, lat, bound_s, margin)})
    return pd.DataFrame(out)


NOISE_FLOOR_SUMMARY = (("regret_per_pass", "median"), ("regret_per_pass", "max"), ("regret_floor", "median"),
                       ("regret_floor", "max"), ("tau_per_pass", "median"), ("tau_floor", "median"))


def _agg(ok: pd.DataFrame, col: str, how: str) -> float:
    return float(getattr(ok[col], how)()) if len(ok) and col in ok else math.nan


def summary(scores: pd.DataFrame) -> dict:
    ok = scores[scores.status == "ok"] if len(scores) else scores
    return {"scenarios": int(len(scores)), "scored": int(len(ok)),
            "median_regret": float(ok.regret.median()) if len(ok) else math.nan,
            "max_regret": float(ok.regret.max()) if len(ok) else math.nan,
            "median_tau": float(ok.tau.median()) if len(ok) else math.nan,
            "median_tau_des": float(ok.tau_des.median()) if len(ok) else math.nan,
            "bound_met_share": float(ok.bound_met_share.mean()) if len(ok) else math.nan,
            # beside them, per pass: the chosen schedule's and a perfect chooser's (`noise_floor`)
            **{f"{how}_{col}": _agg(ok, col, how) for col, how in NOISE_FLOOR_SUMMARY},
            **_margin_summary(ok),
            "targets": {"median_regret": 0.03, "max_regret": 0.10, "tau": 0.8, "bound_met_share": 0.9}}


def _margin_summary(ok: pd.DataFrame) -> dict:
    if "regret_margin" not in ok:
        return {}
    return {"median_regret_margin": _agg(ok, "regret_margin", "median"), "max_regret_margin": _agg(ok, "regret_margin", "max"),
            "bound_met_share_margin": _agg(ok, "bound_met_share_margin", "mean")}


def run(st: Settings, specs: dict[str, ModelSpec], cluster: ClusterSpec, pools: Pools, profile_dir):
    """Search, run, score. Returns (candidates, runs, scores, notes, summary)."""
    tables, plans, notes = [], {}, []
    for model, task in st.scenarios:
        c, p, n = plan_scenario(specs[model], task, cluster, profile_dir, st)
        tables.append(c)
        plans |= p
        notes += n
    cands = pd.concat(tables, ignore_index=True)
    try:
        runs = run_candidates(plans, specs, pools, st)
    finally:
        pools.close()
    scores = score(cands, runs, st.seed, st.latency_margin)
    cands = cands.assign(knobs=cands.knobs.map(lambda k: str(dict(k))))
    return cands, runs, scores, pd.DataFrame(notes), summary(scores) | ({"latency_margin": st.latency_margin} if st.latency_margin else {})
