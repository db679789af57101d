"""TEMPLATE: copy to `harness/policies/<name>.py` to add a scheduling policy.

Checklist (docs/adding-a-policy.md):
1. Copy this file, rename the class, set `name` and `kind` ("static", "rra" or "waa": the
   timeline the simulators play; see harness/simulator/expected.py).
2. Declare the knobs in `knob_space` with ranges and monotone directions (+1/-1, or 0 when
   the knob is not monotone: the search then enumerates it).
3. Build the stage layout and return a `Plan` from `plan`; report infeasible knobs with a
   reason (never raise for them).
4. Register it: one line in harness/policies/__init__.py, or an entry point in your own
   package: [project.entry-points."harness.policies"] mypolicy = "pkg.mod:MyPolicy".
5. Add conf/policy/<name>.yaml with `name:` and a default for every knob.
6. Run `make test`: tests/test_policy_contract.py checks every registered policy.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.policies.base import Context, KnobSpec, Plan, Policy, infeasible
from harness.policies.common import memory_check, stage_memory_bytes
from harness.policies.pipeline import PipelineCosts, build_pipeline


class MyPolicy(Policy):
    name = "my-policy"
    kind = "static"

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        return [KnobSpec("batch_size", 1, 256, 1, throughput_dir=+1, latency_dir=+1, symbol="B")]

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        knobs = self.validate(ctx, knobs)
        m, w, b = ctx.model, ctx.workload, knobs["batch_size"]
        n = ctx.cluster.num_gpus
        if m.num_decoder_layers < n:
            return infeasible(self.name, knobs, f"layers: fewer than {n} stages", self.kind)
        stages = build_pipeline(ctx.cost_model, m, [1] * n, m.num_encoder_layers, m.num_decoder_layers)
        kv_tokens = b * (w.input.max + w.output.max)
        mem = max(stage_memory_bytes(ctx, st, kv_tokens, b * w.input.max, b * w.input.max) for st in stages)
        key = tuple(sorted(knobs.items()))
        if reason := memory_check(ctx, mem):
            return Plan(self.name, self.kind, key, False, reason, b, memory_per_gpu_bytes=mem)
        costs = PipelineCosts(ctx.cost_model, m, stages, stages, decode_micro_batches=n)
        return Plan(self.name, self.kind, key, True, "", b, decode_iters=0,
                    latency_output_len=w.output_max, max_decode_batch=b, memory_per_gpu_bytes=mem,
                    num_stages=n, costs=costs)
