"""Bodies of the analysis commands (`estimate`, later `search`, `bounds`): scenario -> JSON."""

from __future__ import annotations

import math

from omegaconf import DictConfig

from harness.config import Scenario
from harness.cost_model import get_cost_model
from harness.errors import check
from harness.policies import Context, get_policy
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
    if sim == "expected":
        est = evaluate(plan, s.workload)
    else:
        from harness.simulator.discrete_event import estimate_des
        est = estimate_des(plan, s.workload, num_requests=int(cfg.get("num_requests", 2000)), seed=s.seed)
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
    }
