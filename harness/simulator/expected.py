"""The expected-value estimate (ExeGPT §6 XSimulator): Plan + workload -> Estimate.

A policy with a closed form (`Policy.expected_timeline`, built from harness.policies.closed_form,
whose docstring gives the §6 derivations) is scored by it; a policy estimated by simulation runs
the discrete-event simulator on `des_requests` offline requests.

`mode=paper` (harness/specs/mode.py) switches two readings of the closed forms:
- `rra_decode_batch=finish-fraction`: B_D = B_E / sum_U P_D(U), held constant over the phase
  (the paper's "B_D stays ~constant"), for time and memory alike.
- `latency=worst-case`: the p99-length query's iterations are priced at the largest decoding
  batch it can meet (RRA: the phase-start batch; WAA: B_D plus one merging batch, and one
  extra iteration waiting for the merge), FT's prompts padded to the longest input.
  `expected` (ours) prices them at the mean batch of a live query's iterations.
"""

from __future__ import annotations

import math

from harness.errors import UserError
from harness.policies.base import Estimate, Plan
from harness.workload.tasks import Workload

# Offline requests per discrete-event estimate (policies without a closed form): enough for
# a steady state (at least DES_PER_SLOT per slot of the plan's concurrency: decoding batch cap
# x replicas, so the 10-90% completion window is not the ramp or the drain), about
# DES_ITERATIONS decoding iterations where fewer requests give that (small batches of long
# outputs), never fewer than DES_MIN_REQUESTS nor more than DES_MAX_REQUESTS.
DES_REQUESTS = 600
DES_MIN_REQUESTS = 100
DES_PER_SLOT = 6
DES_ITERATIONS = 4000
DES_MAX_REQUESTS = 20_000


def des_requests(plan: Plan, workload: Workload) -> int:
    """Offline requests a discrete-event estimate of `plan` plays (constants above)."""
    slots = (plan.max_decode_batch or plan.encode_batch_size or 1) * int(dict(plan.derived).get("replicas", 1))
    by_iterations = DES_ITERATIONS * slots / max(1.0, workload.output.mean)
    n = max(DES_MIN_REQUESTS, DES_PER_SLOT * slots, min(DES_REQUESTS, by_iterations))
    return int(min(DES_MAX_REQUESTS, n))


def evaluate(plan: Plan, workload: Workload, relaxed: bool = False) -> Estimate:
    """The plan's Estimate: its policy's closed form (`Policy.expected_timeline`, §6), or, for
    a policy estimated by simulation (`Policy.estimator`), the discrete-event simulator on
    `des_requests(plan, workload)` offline requests. An infeasible plan scores zero throughput, unless
    `relaxed` and it was priced anyway (out of memory only): then the throughput/latency it
    would have, still marked infeasible; the search uses it as an upper bound on a box."""
    if not plan.feasible and not (relaxed and plan.costs is not None):
        return Estimate(plan.policy, plan.knobs, False, plan.reason, 0.0, 0.0, math.inf,
                        plan.memory_per_gpu_bytes, plan.encode_batch_size)
    if plan.program is None:
        raise UserError(f"policy '{plan.policy}': its plan names no program (Plan.program=self; "
                        "docs/adding-a-policy.md)")
    if plan.program.estimator != "expected":
        from harness.simulator.discrete_event import estimate_des  # the policy has no closed form
        return estimate_des(plan, workload, des_requests(plan, workload), relaxed=relaxed)
    thr, latency, b_d = plan.program.expected_timeline(plan, workload, plan.mode.latency == "worst-case")
    return Estimate(plan.policy, plan.knobs, plan.feasible, plan.reason, thr, thr * workload.output.mean,
                    latency, plan.memory_per_gpu_bytes, plan.encode_batch_size, b_d)
