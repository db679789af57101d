"""The Hydra application behind sweeps: `python -m harness.app --multirun experiment=<name>`.

One job = one scenario (model x cluster x workload x bound): FT tuned under the bound (§7)
and XScheduler over every searched policy (§5). Its tidy rows (one per policy, plus
`exegpt`, the chosen one) go to `runs/jobs/<config hash>.json`. A job whose
hash is already stored is skipped (resumable); a job that raises becomes rows with
status="failed" and the error, never a crashed sweep. `harness sweep` drives this with a
progress bar and aggregates the jobs into results.parquet.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from harness.config import CONF_URI, build_scenario
from harness.policies import SEARCHED, Context, weight_copies
from harness.results import ResultStore, config_hash, provenance
from harness.results.record import finite


def scenario_rows(cfg: DictConfig) -> list[dict]:
    """The job body: FT and every policy's best under the bound, as tidy rows."""
    from harness.scheduler import find_schedule
    from harness.scheduler.bounds import best_ft, derive_bounds, resolve_bound
    s = build_scenario(cfg)
    ctx = Context.of(s)
    label, bound_s = resolve_bound(ctx, cfg.get("bound"), cfg.get("bound_s"))
    bounds = derive_bounds(ctx)
    st = s.search
    res = find_schedule(ctx, bound_s, st.policies, st.resolution, st.method == "exhaustive",
                        st.eps_throughput_rel, st.eps_latency_s)
    weights_per_gpu = s.model.num_params() * s.model.dtype_bytes / s.cluster.num_gpus
    rows = []
    ft = best_ft(ctx, bound_s, bounds)
    rows.append({"policy": "ft", "status": "ok" if ft else "NS",
                 "reason": "" if ft else (bounds.reason or "no FT batch under the bound"),
                 "throughput_seq_s": ft["throughput_seq_s"] if ft else None,
                 "throughput_tok_s": ft["throughput_seq_s"] * s.workload.output.mean if ft else None,
                 "latency_s": ft["latency_s"] if ft else None,
                 "knobs": json.dumps({"batch_size": ft["batch_size"]}) if ft else "",
                 "memory_per_gpu_bytes": None, "evaluations": len(bounds.batch_sizes), "search_s": None})
    for pr in res.per_policy:
        rows.append(_policy_row(pr.policy, pr.best, pr.reason, pr.evaluations, None))
    rows.append(_policy_row(SEARCHED, res.best, "no policy meets the bound", res.evaluations, res.search_s))
    ft_thr = ft["throughput_seq_s"] if ft else None
    for r in rows:
        chosen = r.pop("_policy", r["policy"])
        r["chosen_policy"] = chosen
        r["weight_bytes_per_gpu"] = (weights_per_gpu * weight_copies(ctx, chosen, r["knobs"])
                                     if r["status"] == "ok" else None)
        r["speedup_over_ft"] = (r["throughput_seq_s"] / ft_thr if ft_thr and r["throughput_seq_s"] else None)
    common = {"model": s.model.name, "cluster": s.cluster.name, "task": s.workload.name,
              "bound": label, "bound_s": finite(bound_s), "bound_p10_s": bounds.p10_s,
              "bound_p30_s": bounds.p30_s, "bound_p70_s": bounds.p70_s,
              "cost_model": ctx.cost_model.id, "search_method": st.method,
              "search_resolution": st.resolution, "seed": s.seed, "mode": s.mode.label(),
              **s.sla.as_dict()}
    return [{**common, **r} for r in rows]


def _policy_row(policy: str, est, reason: str, evaluations: int, search_s: float | None) -> dict:
    if est is None:
        return {"policy": policy, "status": "NS", "reason": reason, "throughput_seq_s": None,
                "throughput_tok_s": None, "latency_s": None, "knobs": "", "memory_per_gpu_bytes": None,
                "evaluations": evaluations, "search_s": search_s}
    return {"policy": policy, "_policy": est.policy, "status": "ok", "reason": "",
            "throughput_seq_s": est.throughput_seq_s, "throughput_tok_s": est.throughput_tok_s,
            "latency_s": est.latency_s, "knobs": json.dumps(dict(est.knobs), sort_keys=True),
            "memory_per_gpu_bytes": est.memory_per_gpu_bytes, "evaluations": evaluations,
            "search_s": search_s}


def job_identity(cfg: DictConfig) -> tuple[dict, str]:
    plain = OmegaConf.to_container(cfg, resolve=True)
    return plain, config_hash(plain)


def run_job(cfg: DictConfig) -> str:
    """Compute (or skip) one job; returns "skipped", "ok", "NS" or "failed"."""
    experiment = str(cfg.get("experiment_name") or "adhoc")
    store = ResultStore(Path(str(cfg.get("runs_dir") or "runs")) / experiment)
    plain, h = job_identity(cfg)
    if store.has(h):
        return "skipped"
    t0 = time.perf_counter()
    try:
        rows = scenario_rows(cfg)
        status = "ok" if any(r["policy"] == SEARCHED and r["status"] == "ok" for r in rows) else "NS"
    except Exception as e:   # noqa: BLE001 - a failing job is a row, not a crashed sweep
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        rows = [{"model": plain.get("model", {}).get("name"), "cluster": plain.get("cluster", {}).get("name"),
                 "task": plain.get("task", {}).get("name"), "bound": str(plain.get("bound") or plain.get("bound_s")),
                 "policy": SEARCHED, "status": "failed", "reason": f"{type(e).__name__}: {first}",
                 "traceback": traceback.format_exc(limit=5)}]
        status = "failed"
    meta = {"experiment": experiment, "config_hash": h, "job_s": time.perf_counter() - t0,
            "config": json.dumps({k: v for k, v in plain.items() if k not in ("paths", "hydra")}, sort_keys=True),
            **provenance()}
    store.write_job(h, [{**r, **meta} for r in rows])
    return status


@hydra.main(config_path=CONF_URI, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> str:
    return run_job(cfg)


if __name__ == "__main__":
    main()
