"""Real request traces (ExeGPT §7.5, Fig. 10): lengths from trace CSVs instead of the paper's
WMT / Alpaca / CNN-DailyMail (not downloadable here).

For every trace CSV in `paths.traces` (Splitwise/Vidur format, `harness.workload.traces`) and
OPT-13B / a40x4 and GPT-3 39B / a40x16:
- a seeded 10% of the trace estimates (P_E, P_D) (empirical PMFs), the other 90% is evaluated
  (ExeGPT §7.5); the FT bounds (p30, Inf; ExeGPT §7) are derived on the 10% distribution and
  XScheduler (rra, waa-c, waa-m) and FT (best batch under the bound) are tuned on it;
- offline: the discrete-event simulator replays the first `n_offline` evaluation requests as
  a saturated supply (every request at t = 0, ExeGPT §5) with each schedule; the gain is
  ExeGPT / FT throughput (paper: 4.4x average, 8.7x max);
- online: traces with `arrived_at` are replayed at their own arrival times (first
  `n_online` evaluation requests), every policy with its schedule searched for the p30
  bound: TTFT, TPOT, e2e p50/p99 and goodput (requests whose arrival -> last token is within
  the bound, per second of the run); once at the trace's own rate (which overloads every
  policy here: the Azure traces' prompts average 1-2k tokens) and, where the trace offers
  more, once slowed to 0.8x the ExeGPT schedule's offline throughput;
- input/output length correlation (Pearson, Spearman) of each whole trace (XSimulator
  assumes them independent, ExeGPT §6).
Request counts are cut for this 2-core machine (FT at batch 1 on the arXiv trace decodes
every request alone): defaults 600 offline and 1000 online requests per run.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from harness.policies import EXEGPT_POLICIES, Context, Plan, get_policy
from harness.scheduler import find_schedule
from harness.scheduler.bounds import best_ft, derive_bounds
from harness.simulator.discrete_event import simulate
from harness.simulator.expected import evaluate
from harness.simulator.metrics import goodput_rps
from harness.studies.common import scenario
from harness.workload import Requests, Trace, load_trace, replay

MODELS = (("opt-13b", "a40x4"), ("gpt3-39b", "a40x16"))
BOUNDS = ("p30", "inf")
ONLINE_BOUND = "p30"
ESTIMATE_FRACTION = 0.1
LOAD_OF_CAPACITY = 0.8         # online replay, slowed: offered rate / ExeGPT offline throughput


def trace_files(traces_dir: Path) -> list[Path]:
    files = sorted(Path(traces_dir).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no trace CSVs in {traces_dir} (config key paths.traces)")
    return files


def correlation(trace: Trace) -> tuple[float, float]:
    """(Pearson, Spearman) correlation of input and output lengths; nan if one is constant."""
    x, y = trace.input_len.astype(float), trace.output_len.astype(float)
    if x.std() == 0 or y.std() == 0:
        return math.nan, math.nan
    return float(stats.pearsonr(x, y)[0]), float(stats.spearmanr(x, y)[0])


def correlation_table(traces: list[Trace]) -> pd.DataFrame:
    rows = []
    for t in traces:
        p, s = correlation(t)
        o, i = t.output_len, t.input_len
        rows.append({"trace": t.name, "requests": len(t), "arrivals": t.arrival_s is not None,
                     "pearson": p, "spearman": s, "input_mean": i.mean(), "input_p99": np.quantile(i, 0.99),
                     "input_max": int(i.max()), "output_mean": o.mean(), "output_p99": np.quantile(o, 0.99),
                     "output_max": int(o.max()), "output_max_over_p99": o.max() / np.quantile(o, 0.99)})
    return pd.DataFrame(rows)


def _offline(ev: Trace, n: int) -> Requests:
    n = min(n, len(ev))
    return Requests(np.zeros(n), ev.input_len[:n], ev.output_len[:n])


def _plans(ctx: Context, bound_s: float, bounds) -> dict[str, Plan]:
    """Every policy's schedule for the bound ("exegpt": the best of them), FT included."""
    res = find_schedule(ctx, bound_s)
    plans = {r.policy: get_policy(r.policy).plan(ctx, dict(r.best.knobs)) for r in res.per_policy if r.best}
    if res.best is not None:
        plans["exegpt"] = plans[res.best.policy]
    ft = best_ft(ctx, bound_s, bounds)
    if ft is not None:
        plans["ft"] = get_policy("ft").plan(ctx, {"batch_size": ft["batch_size"]})
    return plans


def _slot_use(rec) -> float:
    """Share of decoding slot-iterations producing a token (FT: finished slots idle)."""
    return float(rec.iter_tokens.sum() / rec.iter_batch.sum()) if rec.iter_batch.sum() else math.nan


def _online(model: str, trace: str, ev: Trace, plans: dict[str, Plan], bound_s: float, n: int,
            capacity_rps: float) -> list[dict]:
    """Replay at the trace's own arrival times and, where that offers more, slowed so the
    offered rate is `LOAD_OF_CAPACITY` x the ExeGPT schedule's offline throughput."""
    n = min(n, len(ev))
    own = replay(ev, n)
    rate = n / max(own.duration_s, 1e-9)
    loads = [("trace", 1.0)]
    if math.isfinite(capacity_rps) and 0 < LOAD_OF_CAPACITY * capacity_rps < rate:
        loads.append((f"{LOAD_OF_CAPACITY:g}x ExeGPT capacity", LOAD_OF_CAPACITY * capacity_rps / rate))
    rows = []
    for load, scale in loads:
        reqs = own if scale == 1.0 else replay(ev, n, time_scale=scale)
        for policy in ("ft", *EXEGPT_POLICIES):
            base = {"model": model, "trace": trace, "load": load, "policy": policy}
            if policy not in plans:
                rows.append({**base, "status": "NS"})
                continue
            res = simulate(plans[policy], reqs)
            r, mm = res.records, res.metrics
            rows.append({**base, "status": "ok", "knobs": str(dict(plans[policy].knobs)), "bound_s": bound_s,
                         "requests": len(reqs), "offered_rps": len(reqs) / max(reqs.duration_s, 1e-9),
                         "ttft_p50_s": mm.ttft_p50_s, "ttft_p99_s": mm.ttft_p99_s, "tpot_mean_s": mm.tpot_mean_s,
                         "e2e_p50_s": mm.e2e_p50_s, "e2e_p99_s": mm.e2e_p99_s,
                         "goodput_rps": goodput_rps(r, bound_s),
                         "goodput_share": float(np.mean(r.finish_s - r.arrival_s <= bound_s))})
    return rows


def study(traces_dir: Path, n_offline: int = 600, n_online: int = 1000, seed: int = 0,
          overrides: tuple[str, ...] = (), models: tuple[tuple[str, str], ...] = MODELS) -> dict[str, pd.DataFrame]:
    traces = [load_trace(p) for p in trace_files(traces_dir)]
    gains, online = [], []
    for model, cluster in models:
        _, ctx0 = scenario([f"model={model}", f"cluster={cluster}", *overrides])
        for tr in traces:
            est, ev = tr.split(ESTIMATE_FRACTION, seed)
            ctx = replace(ctx0, workload=est.workload())
            bounds = derive_bounds(ctx)
            for label in BOUNDS:
                bound_s = bounds.by_label()[label]
                if bound_s is None:
                    continue
                plans = _plans(ctx, bound_s, bounds)
                row = {"model": model, "cluster": cluster, "trace": tr.name, "bound": label, "bound_s": bound_s,
                       "estimate_requests": len(est), "evaluate_requests": len(ev),
                       "output_p99": ctx.workload.output_p99, "output_max": ctx.workload.output_max}
                if "exegpt" in plans and "ft" in plans:
                    reqs = _offline(ev, n_offline)
                    x, f = simulate(plans["exegpt"], reqs), simulate(plans["ft"], reqs)
                    ex_ev, ft_ev = evaluate(plans["exegpt"], ctx.workload), evaluate(plans["ft"], ctx.workload)
                    row.update({"exegpt_policy": plans["exegpt"].policy, "exegpt_knobs": str(dict(plans["exegpt"].knobs)),
                                "ft_batch": plans["ft"].encode_batch_size, "des_requests": len(reqs),
                                "exegpt_thr": x.metrics.throughput_seq_s, "ft_thr": f.metrics.throughput_seq_s,
                                "gain_des": x.metrics.throughput_seq_s / f.metrics.throughput_seq_s,
                                "gain_expected": ex_ev.throughput_seq_s / ft_ev.throughput_seq_s,
                                "ft_slot_use": _slot_use(f.records), "exegpt_slot_use": _slot_use(x.records)})
                else:
                    row["note"] = "NS: " + ("no ExeGPT schedule" if "exegpt" not in plans else "no FT batch")
                gains.append(row)
                if label == ONLINE_BOUND and tr.arrival_s is not None:
                    cap = row.get("exegpt_thr", math.nan)
                    online += _online(model, tr.name, ev, plans, bound_s, n_online, cap)
    return {"correlation": correlation_table(traces), "gains": pd.DataFrame(gains), "online": pd.DataFrame(online)}
