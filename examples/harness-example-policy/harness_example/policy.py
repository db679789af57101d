"""Refill-threshold continuous batching: an iteration-level policy in an external package.

Continuous batching with each request's KV cache reserved for its maximum length (as ORCA's
allocator, Yu et al. OSDI'22 §4.2), except that waiting requests are admitted only once the
live batch has shrunk to `refill_pct` % of its cap: fewer, larger prefills interrupt decoding
less often (each prefill stalls the whole batch for an iteration), at the price of running
below the cap in between. refill_pct=100 admits whenever there is room.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.policies.base import Context, KnobSpec, Plan, Policy, infeasible
from harness.policies.common import tp_degrees
from harness.policies.iteration import Lanes, costs, layout_error, min_pipeline, replica


class RefillThreshold(Policy):
    name = "refill-threshold"
    kind = "iteration"
    citation = "examples/harness-example-policy (continuous batching with a refill threshold)"
    estimator = "discrete-event"       # no closed form: the simulator plays `run` for the search
    iteration_level = True

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        return [KnobSpec("max_batch", 1, 512, 1, throughput_dir=+1, latency_dir=+1, symbol="B"),
                KnobSpec("refill_pct", 25, 100, 25, 0, 0, "refill at % of B"),
                KnobSpec("tp_degree", 1, max(tp_degrees(ctx)), 1, 0, 0, "TP degree")]

    def default_knobs(self, ctx: Context) -> dict[str, int]:
        return {"max_batch": 32, "refill_pct": 50, "tp_degree": max(tp_degrees(ctx))}

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        knobs = self.validate(ctx, knobs)
        w, tp = ctx.workload, knobs["tp_degree"]
        err = layout_error(ctx, tp, 1)
        pp = 0 if err else min_pipeline(ctx, tp, w.input.max)
        if err or not pp:
            return infeasible(self.name, knobs, err or f"memory: TP {tp} fits no pipeline", self.kind)
        rep = replica(ctx, tp, pp, w.input.max)
        slots = rep.kv_tokens // (w.input.max + w.output.max)
        if slots < 1:
            return infeasible(self.name, knobs, "memory: not one request at its maximum length fits", self.kind)
        batch = min(knobs["max_batch"], slots)
        refill_at = max(0, batch * knobs["refill_pct"] // 100 - (knobs["refill_pct"] < 100))
        return Plan(self.name, self.kind, tuple(sorted(knobs.items())), True, "", batch, 1,
                    ctx.sla.latency_output_len(w), max_decode_batch=batch,
                    memory_per_gpu_bytes=rep.memory_per_gpu_bytes, num_stages=pp,
                    costs=costs(ctx, rep.stages), mode=ctx.mode, program=self, engine=self.engine,
                    derived=(("replicas", rep.count), ("refill_at", refill_at)))

    def run(self, plan: Plan, x) -> None:
        derived = dict(plan.derived)
        reps, cap, refill_at = int(derived["replicas"]), plan.max_decode_batch, int(derived["refill_at"])
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
            while live <= refill_at and nxt[r] < n and arrival[nxt[r]] <= t and live + len(admit) < cap:
                admit.append(nxt[r])
                nxt[r] += reps
            if admit:
                lanes.push(x.prefill(g, admit, t), r)  # they join the live batch
            else:
                lanes.push(x.step(g, t)[0], r)         # one token for every live request
