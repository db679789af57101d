"""Scheduling policies (ExeGPT §3): one file each, registered by name.

Add one: copy `_template.py`, register it here (or through the `harness.policies`
entry-point group), add `harness/conf/policy/<name>.yaml`; the contract test picks it up.
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


SEARCHED = "exegpt"   # the results row of the schedule XScheduler chose among EXEGPT_POLICIES


def get_policy(name: str) -> Policy:
    return POLICIES.get(name)()


def weight_copies(ctx: Context, policy: str, knobs_json: str) -> int:
    """Copies of the weights the named policy's schedule keeps (`Policy.weight_copies`: WAA's two
    pipelines of a decoder-only model, data-parallel replicas)."""
    import json
    p = get_policy(policy)
    return p.weight_copies(ctx, p.plan(ctx, json.loads(knobs_json)))


__all__ = ["EXEGPT_POLICIES", "POLICIES", "SEARCHED", "weight_copies", "Context", "Estimate", "KnobSpec", "Plan", "Policy", "get_policy"]
