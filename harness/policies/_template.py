"""TEMPLATE: copy to `harness/policies/<name>.py` (or your own package) to add a policy.

A working iteration-level policy, walked through in docs/adding-a-policy.md: continuous
batching with the KV cache reserved for each request's maximum length up front (ORCA's
original allocator, Yu et al. OSDI'22 §4.2, without its selective batching). Every
iteration admits waiting requests while the batch has room and memory, prefills them
(decoding stalls for that iteration), and otherwise decodes the live batch one token;
finished requests leave at once. tests/test_policy_plugin.py runs it.

Checklist:
1. Set `name` (what users type), `citation`, and how it is estimated: `estimator =
   "discrete-event"` (no closed form; the simulator plays `run`) or "expected" with an
   `expected_timeline` (ExeGPT §6 style closed form).
2. `knob_space`: one KnobSpec per knob, with the directions throughput and latency move as
   it grows (+1/-1; 0: not monotone, the search enumerates it).
3. `plan`: validate, lay out the GPUs, check memory, return a Plan (infeasible knobs: a Plan
   with a reason, never an exception). Pass `program=self`.
4. `run(plan, x)`: the batching program against the Executor (harness/policies/program.py).
5. Register: one line in harness/policies/__init__.py, or entry points in your package
   (`harness.policies` for the class; a Hydra SearchPathPlugin or a `harness.conf` entry point
   for the folder holding conf/policy/<name>.yaml: examples/harness-example-policy).
6. harness/conf/policy/<name>.yaml with `name:` and a default for every knob; `make test`.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.policies.base import Context, KnobSpec, Plan, Policy, infeasible
from harness.policies.common import tp_degrees
from harness.policies.iteration import Lanes, costs, layout_error, min_pipeline, replica


class ReservedContinuousBatching(Policy):
    name = "my-policy"
    kind = "iteration"
    citation = "Yu et al., Orca, OSDI 2022 (allocation up front, no selective batching)"
    estimator = "discrete-event"
    iteration_level = True

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        return [KnobSpec("max_batch", 1, 512, 1, throughput_dir=+1, latency_dir=+1, symbol="B"),
                KnobSpec("tp_degree", 1, max(tp_degrees(ctx)), 1, 0, 0, "TP degree")]

    def default_knobs(self, ctx: Context) -> dict[str, int]:
        return {"max_batch": 32, "tp_degree": max(tp_degrees(ctx))}

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        knobs = self.validate(ctx, knobs)
        w, tp = ctx.workload, knobs["tp_degree"]
        err = layout_error(ctx, tp, 1)
        pp = 0 if err else min_pipeline(ctx, tp, w.input.max)
        if err or not pp:
            return infeasible(self.name, knobs, err or f"memory: TP {tp} fits no pipeline", self.kind)
        rep = replica(ctx, tp, pp, w.input.max)
        slots = rep.kv_tokens // (w.input.max + w.output.max)      # requests at their maximum length
        if slots < 1:
            return infeasible(self.name, knobs, "memory: not one request at its maximum length fits", self.kind)
        batch = min(knobs["max_batch"], slots)
        return Plan(self.name, self.kind, tuple(sorted(knobs.items())), True, "", batch, 1,
                    ctx.sla.latency_output_len(w), max_decode_batch=batch,
                    memory_per_gpu_bytes=rep.memory_per_gpu_bytes, num_stages=pp,
                    costs=costs(ctx, rep.stages), mode=ctx.mode, program=self, engine=self.engine,
                    derived=(("replicas", rep.count),))

    def run(self, plan: Plan, x) -> None:
        reps, cap = int(dict(plan.derived)["replicas"]), plan.max_decode_batch
        arrival, n = x.reqs.arrival_s.tolist(), len(x.reqs)
        groups = [f"r{r}" for r in range(reps)]
        nxt = list(range(reps))                        # requests dealt round-robin to replicas
        lanes = Lanes(reps)
        while lanes:
            t, r = lanes.pop()                         # the replica furthest behind
            g, live = groups[r], x.live(groups[r])
            if not live and (nxt[r] >= n or arrival[nxt[r]] > t):
                if nxt[r] < n:
                    lanes.push(arrival[nxt[r]], r)     # idle until its next request arrives
                continue
            admit = []
            while nxt[r] < n and arrival[nxt[r]] <= t and live + len(admit) < cap:
                admit.append(nxt[r])
                nxt[r] += reps
            if admit:
                lanes.push(x.prefill(g, admit, t), r)  # they join the live batch
            else:
                lanes.push(x.step(g, t)[0], r)         # one token for every live request
