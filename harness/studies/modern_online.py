"""The `modern` study's online replay (harness/studies/modern.py runs the offline part and
states the method): each policy's searched schedule replayed on Poisson streams at a common
rate sweep and on the Splitwise traces; TTFT, TPOT, E2E and goodput under TTFT/TPOT SLOs."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from harness.cost_model.engines import engine_of
from harness.data.manifest import missing_data
from harness.policies import SEARCHED, Context, Plan, get_policy
from harness.simulator.discrete_event import simulate
from harness.simulator.metrics import SimRecords
from harness.studies.modern import ONLINE_COLUMNS, StudySettings, registered, search_name
from harness.workload import Requests, load_trace, poisson, replay


def request_latencies(rec: SimRecords) -> pd.DataFrame:
    """Per request: TTFT, TPOT ((finish - first token) / (output - 1); 0 for one token), E2E."""
    out = rec.output_len
    tpot = np.where(out > 1, (rec.finish_s - rec.first_token_s) / np.maximum(out - 1, 1), 0.0)
    return pd.DataFrame({"ttft_s": rec.first_token_s - rec.arrival_s, "tpot_s": tpot,
                         "e2e_s": rec.finish_s - rec.arrival_s})


def slo_attained(rec: SimRecords, ttft_slo_s: float, tpot_slo_s: float) -> np.ndarray:
    """Per request: TTFT <= ttft_slo_s and TPOT <= tpot_slo_s (both)."""
    lat = request_latencies(rec)
    return ((lat["ttft_s"] <= ttft_slo_s) & (lat["tpot_s"] <= tpot_slo_s)).to_numpy()


def goodput_slo_rps(rec: SimRecords, ttft_slo_s: float, tpot_slo_s: float) -> float:
    """SLO-attaining requests per second of the run (first arrival -> last token)."""
    span = float(rec.finish_s.max() - rec.arrival_s.min())
    return float(slo_attained(rec, ttft_slo_s, tpot_slo_s).sum()) / span if span > 0 else math.nan


def online_metrics(rec: SimRecords, ttft_slo_s: float, tpot_slo_s: float) -> dict:
    lat = request_latencies(rec)
    span = float(rec.finish_s.max() - rec.arrival_s.min())
    q = lambda c, p: float(np.quantile(lat[c], p))  # noqa: E731
    return {"requests": len(rec), "throughput_rps": len(rec) / span if span > 0 else math.nan,
            "ttft_p50_s": q("ttft_s", .5), "ttft_p99_s": q("ttft_s", .99), "tpot_p50_s": q("tpot_s", .5),
            "tpot_p99_s": q("tpot_s", .99), "e2e_p50_s": q("e2e_s", .5), "e2e_p99_s": q("e2e_s", .99),
            "ttft_slo_s": ttft_slo_s, "tpot_slo_s": tpot_slo_s,
            "slo_attainment": float(slo_attained(rec, ttft_slo_s, tpot_slo_s).mean()),
            "goodput_rps": goodput_slo_rps(rec, ttft_slo_s, tpot_slo_s)}


def searched_plans(ctx: Context, bound_s: float, st: StudySettings, known: pd.DataFrame | None = None
                   ) -> tuple[dict[str, Plan], dict[str, float], str, dict[str, str]]:
    """Each loadable policy's schedule under the bound (FT: best batch), its offline
    throughput, the ExeGPT policy chosen (best of `st.exegpt`) and why the others have none.
    `known`: this scenario's offline rows (policy, status, knobs, throughput_seq_s), reused
    instead of searching again."""
    from harness.scheduler.bounds import best_ft
    from harness.scheduler.search import search_policy
    plans, thr, why = {}, {}, {}
    rows = {} if known is None else {r.policy: r for r in known.itertuples(index=False)}
    ft = best_ft(ctx, bound_s)
    if ft is not None:
        plans["ft"], thr["ft"] = get_policy("ft").plan(ctx, {"batch_size": ft["batch_size"]}), ft["throughput_seq_s"]
    for p in registered(st.policies)[0]:
        if p in rows:
            r = rows[p]
            knobs, t, reason = (json.loads(r.knobs), r.throughput_seq_s, "") if r.status == "ok" else (None, 0, r.reason)
        else:
            res = search_policy(ctx, search_name(p, st.pins(p)), bound_s, "fine")
            knobs, t, reason = ((dict(res.best.knobs), res.best.throughput_seq_s, "") if res.best else (None, 0, res.reason))
        if knobs is None:
            why[p] = reason
        else:
            plans[p], thr[p] = get_policy(p).plan(ctx, knobs), t
    exe = [p for p in st.exegpt if p in thr]
    return plans, thr, max(exe, key=thr.get) if exe else "", why


def slo_refs(plans: dict[str, Plan], mean_in: int, mean_out: int) -> tuple[float, float]:
    """(TTFT, TPOT) of one request of the mean lengths served alone, lowest over the plans."""
    one = Requests(np.zeros(1), np.array([mean_in]), np.array([mean_out]))
    lats = [request_latencies(res.records).iloc[0] for res in (simulate(p, one) for p in plans.values())
            if res.feasible]
    return min(x["ttft_s"] for x in lats), min(x["tpot_s"] for x in lats)


def replay_rows(plans: dict[str, Plan], chosen: str, reqs: Requests, base: dict, slo: tuple[float, float],
                why: Mapping[str, str] = {}) -> list[dict]:  # noqa: B006 - read only
    rows = [{**base, "policy": p, "chosen_policy": p, "status": "NS", "reason": r} for p, r in why.items()]
    for name, plan in plans.items():
        res = simulate(plan, reqs)
        policy = SEARCHED if name == chosen else name
        for label in ((policy, name) if name == chosen else (policy,)):     # the ExeGPT choice twice
            row = {**base, "policy": label, "chosen_policy": name, "engine": engine_of(plan.costs.cm),
                   "knobs": json.dumps(dict(plan.knobs), sort_keys=True)}
            rows.append({**row, "status": "ok", "reason": "", **online_metrics(res.records, *slo)} if res.feasible
                        else {**row, "status": "NS", "reason": res.reason})
    return rows


def online_rows(st: StudySettings, overrides: tuple[str, ...] = (), offline: pd.DataFrame | None = None) -> pd.DataFrame:
    """Poisson streams at a common absolute rate sweep for every online scenario, and the
    Splitwise traces time-scaled to a common rate on the first one (module docstring: SLOs and
    goodput). Schedules in `offline` (the experiment's results) are reused, not searched again."""
    from harness.scheduler.bounds import resolve_bound
    from harness.studies.common import scenario
    on, rows = st.online, []
    for i, (model, task) in enumerate(on.scenarios):
        s, ctx = scenario([f"model={model}", f"task={task}", "use_paper_cluster=true", *overrides])
        _, bound_s = resolve_bound(ctx, on.bound, None)
        known = None if offline is None else offline[(offline["model"] == model) & (offline["task"] == task)
                                                     & (offline["bound"].astype(str) == on.bound)]
        plans, thr, chosen, why = searched_plans(ctx, bound_s, st, known if known is not None and len(known) else None)
        w = ctx.workload
        slo = tuple(on.slo_scale * x for x in slo_refs(plans, round(w.input.mean), round(w.output.mean)))
        top = max(thr.values())
        base = {"model": model, "cluster": s.cluster.name, "task": task, "bound": on.bound}
        for load in on.loads:
            reqs = poisson(w, on.num_requests, load * top, on.seed)
            rows += replay_rows(plans, chosen, reqs, {**base, "stream": "poisson", "load": load,
                                                      "offered_rps": load * top}, slo, why)
        rows += trace_rows(s, ctx, st, base) if i == 0 else []
    return pd.DataFrame(rows, columns=ONLINE_COLUMNS)


def trace_rows(s, ctx: Context, st: StudySettings, base: dict) -> list[dict]:
    """Each Splitwise trace: 10% estimates the lengths (ExeGPT §7.5) and every policy is
    searched on them; the first `num_requests` of the other 90% are replayed with their own
    arrival pattern, time-scaled so the offered rate is `trace_load` x the best throughput."""
    from harness.scheduler.bounds import resolve_bound
    on, rows = st.online, []
    for name in on.traces:
        path = s.paths.traces / name
        if not path.exists():
            rows.append({**base, "stream": name, "policy": SEARCHED, "status": "skipped",
                         "reason": str(missing_data("paths.traces", path, "traces"))})
            continue
        est, ev = load_trace(path).split(0.1, on.seed)
        tctx = replace(ctx, workload=est.workload())
        plans, thr, chosen, why = searched_plans(tctx, resolve_bound(tctx, on.bound, None)[1], st)
        w = tctx.workload
        slo = tuple(on.slo_scale * x for x in slo_refs(plans, round(w.input.mean), round(w.output.mean)))
        own = replay(ev, min(on.num_requests, len(ev)))
        rate = on.trace_load * max(thr.values())
        reqs = replay(ev, len(own), time_scale=rate * own.duration_s / len(own))
        rows += replay_rows(plans, chosen, reqs, {**base, "task": Path(name).stem, "stream": Path(name).stem,
                                                  "load": on.trace_load, "offered_rps": rate}, slo, why)
    return rows


