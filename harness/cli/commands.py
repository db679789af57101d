"""Bodies of the analysis commands (`estimate`, later `search`, `bounds`): scenario -> JSON."""

from __future__ import annotations

import math
from pathlib import Path

from omegaconf import DictConfig

from harness.config import Scenario
from harness.cost_model import get_cost_model
from harness.errors import check
from harness.policies import Context, Estimate, get_policy
from harness.simulator.expected import evaluate

SIMULATORS = ("expected", "discrete-event")


def context(s: Scenario) -> Context:
    return Context(s.model, s.cluster, s.workload, get_cost_model(s.cost_model_name, s.cluster))


def _finite(x: float) -> float | None:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def estimate_json(s: Scenario, cfg: DictConfig) -> dict:
    sim = str(cfg.get("simulator", "expected"))
    check(sim in SIMULATORS, "simulator", f"'{sim}' not in {', '.join(SIMULATORS)}")
    ctx = context(s)
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
                   "seed": s.seed},
        "simulator": sim,
        "estimate": {k: _finite(v) for k, v in est.as_dict().items()},
        "plan": {"num_stages": plan.num_stages, "decode_iters": plan.decode_iters,
                 "latency_output_len": plan.latency_output_len},
        **({"requests": sim_metrics} if sim_metrics else {}),
    }


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
    res = simulate(plan, reqs)
    if not res.feasible:
        return evaluate(plan, s.workload), None
    m = res.metrics
    est = Estimate(plan.policy, plan.knobs, True, "", m.throughput_seq_s, m.throughput_tok_s,
                   m.latency_p99len_s, plan.memory_per_gpu_bytes, plan.encode_batch_size,
                   m.decode_batch_mean, simulator="discrete-event")
    return est, {"arrivals": kind, **{k: _finite(getattr(m, k)) for k in m.__dataclass_fields__}}
