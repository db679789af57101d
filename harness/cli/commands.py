"""Bodies of the analysis commands (`estimate`, `bounds`, `search`, the Table 5 study): scenario -> JSON or a table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from harness.config import Scenario, build_scenario, compose
from harness.errors import check, unknown_name
from harness.policies import Context, Estimate, get_policy
from harness.results.record import finite
from harness.simulator.expected import evaluate

if TYPE_CHECKING:
    import pandas as pd


def estimate_json(s: Scenario, cfg: DictConfig) -> dict:
    sim = cfg.simulator          # expected | discrete-event (harness.schema.checks.SIMULATORS)
    ctx = Context.of(s)
    policy = get_policy(s.policy_name)
    knobs = policy.validate(ctx, dict(s.policy_knobs))
    plan = policy.plan(ctx, knobs)
    sim_metrics = None
    if sim == "expected":
        est = evaluate(plan, s.workload)
    else:
        est, sim_metrics = _discrete_event(plan, s, cfg)
    w = s.workload
    return {
        "inputs": {"model": s.model.name, "cluster": s.cluster.name, "workload": w.name,
                   "workload_source": w.source, "output_p99": w.output_p99, "output_max": w.output_max,
                   "policy": s.policy_name, "knobs": knobs, "cost_model": ctx.cost_model.id,
                   "seed": s.seed, "mode": s.mode.label(), **s.sla.as_dict()},
        "simulator": sim,
        "estimate": {k: finite(v) for k, v in est.as_dict().items()},
        "plan": {"num_stages": plan.num_stages, "decode_iters": plan.decode_iters,
                 "latency_output_len": plan.latency_output_len},
        **({"requests": sim_metrics} if sim_metrics else {}),
    }


def runtime_adjustment(cfg: DictConfig):
    """`runtime_adjustment.*` -> RuntimeAdjustment (its keys and types are the schema's,
    harness.schema, checked when the scenario was built)."""
    from omegaconf import OmegaConf

    from harness.simulator.discrete_event import RuntimeAdjustment
    return RuntimeAdjustment(**OmegaConf.to_container(cfg.runtime_adjustment, resolve=True))


def _discrete_event(plan, s: Scenario, cfg: DictConfig) -> tuple[Estimate, dict | None]:
    """Play `plan` on the configured arrivals; offline gives the paper's Estimate, any kind
    also reports per-request TTFT/TPOT/e2e percentiles (vLLM's definitions)."""
    from harness.simulator.discrete_event import simulate
    from harness.workload.streams import make_stream
    from harness.workload.traces import load_trace
    arr = cfg.get("arrivals") or {}
    kind, n = str(arr.get("kind", "offline")), int(cfg.get("num_requests", 2000))
    trace = None
    if kind == "replay":
        check(cfg.workload.trace is not None, "arrivals.kind",
              "replay needs workload.trace=<csv with arrived_at>")
        trace = load_trace(s.paths.traces / cfg.workload.trace if not Path(cfg.workload.trace).exists()
                           else Path(cfg.workload.trace))
    reqs = make_stream(kind, workload=s.workload, trace=trace, num_requests=n,
                       rate_per_s=arr.get("rate_per_s"), seed=s.seed)
    res = simulate(plan, reqs, runtime_adjustment(cfg), s.workload)
    if not res.feasible:
        return evaluate(plan, s.workload), None
    m = res.metrics
    from harness.simulator.metrics import sla_a_latency_s
    # SLA (§5): main and b read the plan's latency length (p99 or sla.output_len); a is the
    # p99 over every query (from its encode start, as the main definition).
    latency = sla_a_latency_s(res.records) if s.sla.kind == "a" else m.latency_p99len_s
    est = Estimate(plan.policy, plan.knobs, True, "", m.throughput_seq_s, m.throughput_tok_s,
                   latency, plan.memory_per_gpu_bytes, plan.encode_batch_size,
                   m.decode_batch_mean, simulator="discrete-event")
    return est, {"arrivals": kind, **{k: finite(getattr(m, k)) for k in m.__dataclass_fields__}}


def bounds_json(s: Scenario) -> dict:
    """FT sweep and the p10/p30/p70/Inf latency bounds of the scenario (ExeGPT §7)."""
    from harness.scheduler.bounds import derive_bounds, paper_comparison
    ctx = Context.of(s)
    tp, pp = get_policy("ft").layout(ctx)
    b = derive_bounds(ctx)
    paper = paper_comparison(s.model.name, s.cluster.name, s.workload.name, b)
    return {"inputs": {"model": s.model.name, "cluster": s.cluster.name, "task": s.workload.name,
                       "cost_model": ctx.cost_model.id},
            "ft_layout": {"tp": tp, "pp": pp}, **b.as_dict(), **({"paper": paper} if paper else {})}


def search_json(s: Scenario, cfg: DictConfig) -> dict:
    """XScheduler (ExeGPT §5) on the scenario under `bound=` or `bound_s=`: the chosen
    schedule, every policy's best (or NS and why), evaluations and search time."""
    from harness.scheduler import find_schedule
    from harness.scheduler.bounds import best_ft, resolve_bound
    settings = s.search
    ctx = Context.of(s)
    label, bound_s = resolve_bound(ctx, cfg.get("bound"), cfg.get("bound_s"))
    res = find_schedule(ctx, bound_s, settings.policies, settings.resolution,
                        settings.method == "exhaustive", settings.eps_throughput_rel, settings.eps_latency_s)
    out = res.as_dict()
    ft = best_ft(ctx, bound_s)
    out["ft_baseline"] = ft or {"policy": "ft", "status": "NS", "reason": "no FT batch under the bound"}
    out["speedup_over_ft"] = (res.best.throughput_seq_s / ft["throughput_seq_s"]
                              if ft and res.best else None)
    return {"inputs": {"model": s.model.name, "cluster": s.cluster.name, "workload": s.workload.name,
                       "workload_source": s.workload.source, "output_p99": s.workload.output_p99,
                       "cost_model": ctx.cost_model.id, "bound": label, "bound_s": finite(bound_s),
                       "mode": s.mode.label(), **s.sla.as_dict()},
            **{k: _json_safe(v) for k, v in out.items()}}


def _json_safe(v):
    """inf/nan -> None, recursively (JSON has no Infinity)."""
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    return finite(v)


def monotonicity_study(overrides: list[str]) -> pd.DataFrame:
    """Table 5 study (ExeGPT §5): GPT-3 39B (the paper's model) plus T5-11B and GPT-3 101B,
    each on its paper cluster, over every paper task and the three policies, in both readings
    (column `mode`); `model=`, `cluster=`, `task=` (or a workload), `policy=` and `mode=`
    overrides narrow it."""
    import pandas as pd

    from harness.scheduler.monotonicity import (
        STUDY_POLICIES,
        STUDY_TASKS,
        TABLE5_MODELS,
        monotonicity_table,
    )
    from harness.specs.paper import PAPER_CLUSTER
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    systems = ([[f"model={m}", f"cluster={PAPER_CLUSTER[m]}"] for m in TABLE5_MODELS] if "model" not in given
               else [[]])
    one_workload = given & {"task", "workload.trace", "workload.input_len", "workload.output_len"}
    tasks = [[]] if one_workload else [[f"task={t}"] for t in STUDY_TASKS]
    modes = [[]] if any(g.startswith("mode") for g in given) else [["mode=ours"], ["mode=paper"]]
    scenarios = [build_scenario(compose([*sys_, *overrides, *t, *m])) for m in modes for sys_ in systems
                 for t in tasks]
    policies = STUDY_POLICIES
    if "policy" in given:
        name = scenarios[0].policy_name
        if name not in STUDY_POLICIES:
            raise unknown_name("policy", name, STUDY_POLICIES)
        policies = (name,)
    tables = [monotonicity_table([(s.workload.name, Context.of(s))], policies).assign(mode=s.mode.label())
              for s in scenarios]
    return pd.concat(tables, ignore_index=True)
