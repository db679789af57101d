"""Scheduling policies (ExeGPT §3): one file each, registered by name.

Add one: copy `_template.py`, register it here (or through the `harness.policies`
entry-point group), add `conf/policy/<name>.yaml`; the contract test picks it up.
"""

from __future__ import annotations

from harness.policies.base import Context, Estimate, KnobSpec, Plan, Policy
from harness.registry import Registry

POLICIES: Registry = Registry("policy", entry_point_group="harness.policies")
POLICIES.register("ft", "harness.policies.ft:FasterTransformer")
POLICIES.register("rra", "harness.policies.rra:RoundRobin")
POLICIES.register("waa-c", "harness.policies.waa:WAACompute")
POLICIES.register("waa-m", "harness.policies.waa:WAAMemory")
POLICIES.register("vllm", "harness.policies.vllm:VLLM")
POLICIES.register("orca", "harness.policies.orca:Orca")
POLICIES.register("sarathi", "harness.policies.sarathi:Sarathi")
POLICIES.register("dsi", "harness.policies.dsi:DeepSpeedInference")
POLICIES.register("distserve", "harness.policies.distserve:DistServe")


# The policies XScheduler chooses among by default (ExeGPT §5): the one place this list lives.
EXEGPT_POLICIES: tuple[str, ...] = ("rra", "waa-c", "waa-m")


def get_policy(name: str) -> Policy:
    return POLICIES.get(name)()


def estimate(policy: str, ctx: Context, knobs: dict[str, int]) -> Estimate:
    """Expected-value estimate of `policy` with `knobs` (ExeGPT §6)."""
    from harness.simulator.expected import evaluate
    p = get_policy(policy)
    return evaluate(p.plan(ctx, knobs), ctx.workload)


__all__ = ["EXEGPT_POLICIES", "POLICIES", "Context", "Estimate", "KnobSpec", "Plan", "Policy", "estimate", "get_policy"]
