"""The policy contract (ExeGPT §3-§5): a knob space, a `Plan` for given knobs, and the
batching program that runs a plan (`Policy.run`, harness/policies/program.py).

A `Plan` is the schedule made concrete: its batch sizes, the step-time functions of its
stage layout and the program (`Plan.program`, the policy) that runs it. The discrete-event
simulator and the real runner execute the program; the expected-value model (ExeGPT §6)
uses the policy's closed form where it has one (`Policy.expected_timeline`), else the
discrete-event simulator (`Policy.estimator`). All read the same step-time functions, so
they differ only where averages differ from samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from harness.cost_model import get_cost_model
from harness.cost_model.base import CostModel
from harness.errors import UserError
from harness.specs.hardware import ClusterSpec
from harness.specs.mode import OURS, FTBaseline, Mode
from harness.specs.models import ModelSpec
from harness.workload.tasks import Workload

ESTIMATORS = ("expected", "discrete-event")


@dataclass(frozen=True, slots=True)
class KnobSpec:
    """One control variable (ExeGPT §4) with its range and the paper's monotonicity."""

    name: str
    low: int
    high: int
    step: int = 1
    throughput_dir: int = 0    # +1: throughput rises with the knob, -1: falls, 0: not monotone
    latency_dir: int = 0
    symbol: str = ""           # paper symbol, e.g. "B_E"

    def values(self) -> range:
        return range(self.low, self.high + 1, self.step)

    def check(self, value: int) -> None:
        if not (self.low <= value <= self.high) or (value - self.low) % self.step:
            raise UserError(f"policy.{self.name}: {value} not in [{self.low}, {self.high}] step {self.step}")


SLA_KINDS = ("main", "a", "b")


@dataclass(frozen=True, slots=True)
class SLA:
    """What "latency < L" means (ExeGPT §5).
    main: the worst-case end-to-end time of a query whose output has the p99 length (the paper's).
    a:    99% of all queries finish within L (p99 of end-to-end latency over every query).
    b:    a query of output length `output_len` finishes within L.
    In the expected-value model a query's latency is one number per output length, rising with
    it, so `a` and `main` coincide there; they differ in the discrete-event simulator (and in
    real runs), where queries of one length see different phase alignments."""

    kind: str = "main"
    output_len: int | None = None      # SLA-b only

    def __post_init__(self) -> None:
        if self.kind not in SLA_KINDS:
            raise UserError(f"sla.kind: unknown '{self.kind}'; valid: {', '.join(SLA_KINDS)}")
        if (self.kind == "b") != (self.output_len is not None):
            raise UserError("sla.output_len: set it (tokens >= 1) with sla.kind=b, and only then")
        if self.output_len is not None and self.output_len < 1:
            raise UserError(f"sla.output_len: must be >= 1, got {self.output_len}")

    def latency_output_len(self, workload: Workload) -> int:
        """The output length whose query the bound is held to (RRA/WAA; FT: always the maximum)."""
        if self.kind == "b":
            return min(int(self.output_len), workload.output_max)
        return workload.output_p99

    def as_dict(self) -> dict:
        return {"sla": self.kind, "sla_output_len": self.output_len}


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a policy needs besides its knobs."""

    model: ModelSpec
    cluster: ClusterSpec
    workload: Workload
    cost_model: CostModel
    sla: SLA = SLA()
    mode: Mode = OURS               # how the paper's text is read (harness/specs/mode.py)
    ft: FTBaseline = FTBaseline()   # how the FT baseline runs (§7): batch range, KV reservation
    batch_cap: int | None = None    # the largest batch the search tries (BATCH_KNOBS); None: memory
                                    # decides. A finite stream (harness decide) needs it to reach steady state.

    @classmethod
    def of(cls, scenario) -> Context:
        """The context of a composed `harness.config.Scenario`: its cost model built."""
        s = scenario
        cost = get_cost_model(s.cost_model_name, s.cluster, **dict(s.cost_model_options))
        return cls(s.model, s.cluster, s.workload, cost, s.sla, s.mode, s.ft_baseline)


class StepCosts(Protocol):
    """Step times of one stage layout, evaluated at expected values (expected-value model)
    or at the actual batch of each step (discrete-event model). Seconds."""

    def encode_s(self, batch: int, mean_input_len: float) -> float:
        """Latency of encoding one batch through the encode pipeline (fill to drain)."""
        ...

    def encode_period_s(self, batch: int, mean_input_len: float) -> float:
        """Interval between batches leaving the encode pipeline when it is kept busy."""
        ...

    def decode_iter_s(self, batch: int, mean_context_len: float, mean_input_len: float) -> float:
        """Whole decoding batch advances one token (pipeline full)."""
        ...

    def decode_drain_s(self, batch: int, mean_context_len: float, mean_input_len: float) -> float:
        """Bubble when a decoding phase ends and the pipeline drains (RRA)."""
        ...

    def kv_transfer_s(self, batch: int, mean_input_len: float) -> float:
        """WAA: move the encoded batch's KV cache encode GPUs -> host -> decode GPUs."""
        ...

    def kv_copy_s(self, batch: int, context_len: float, mean_input_len: float, kind: str = "compact") -> float:
        """Decode caches of `batch` sequences rewritten when queries leave ("compact") or
        join ("join"); 0 where the engine updates caches in place (optional: the
        discrete-event simulator treats a StepCosts without it as 0)."""
        ...


@dataclass(frozen=True, slots=True)
class Plan:
    policy: str
    kind: str                          # a label of the timeline ("static", "rra", "waa", "iteration", ...)
    knobs: tuple[tuple[str, int], ...]
    feasible: bool
    reason: str = ""
    encode_batch_size: int = 0         # B_E (static: the batch B)
    decode_iters: int = 1              # N_D (RRA); 1 for WAA
    latency_output_len: int = 0        # p99 output (ExeGPT §5); max output for FT
    max_decode_batch: int = 0          # memory cap on B_D (sequences)
    memory_per_gpu_bytes: float = 0.0  # most loaded GPU at the planned batch sizes
    num_stages: int = 1
    costs: StepCosts | None = field(default=None, compare=False)
    mode: Mode = OURS                  # the reading of §5/§6 the timeline follows (ctx.mode)
    program: Policy | None = field(default=None, compare=False)   # runs the plan (`Policy.run`)
    derived: tuple[tuple[str, float], ...] = ()   # what the plan derived from the knobs (replicas, KV blocks, ...)
    engine: str = "ft"                 # the engine whose kernels price it (harness/cost_model/engines.py)


@dataclass(frozen=True, slots=True)
class Estimate:
    policy: str
    knobs: tuple[tuple[str, int], ...]
    feasible: bool
    reason: str
    throughput_seq_s: float            # sequences/s (the paper's unit)
    throughput_tok_s: float            # generated tokens/s
    latency_s: float                   # worst case of a p99-length query (FT: max length)
    memory_per_gpu_bytes: float
    encode_batch_size: int = 0         # B_E
    decode_batch_size: float = 0.0     # B_D (expected)
    simulator: str = "expected"

    def as_dict(self) -> dict:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["knobs"] = dict(self.knobs)
        return d


def infeasible(policy: str, knobs: Mapping[str, int], reason: str, kind: str = "static") -> Plan:
    return Plan(policy, kind, tuple(sorted(knobs.items())), feasible=False, reason=reason)


class Policy:
    """Subclass, set `name`, implement `knob_space`, `plan` and `run`; register in one line
    (docs/adding-a-policy.md)."""

    name: str = ""
    kind: str = "static"               # a label recorded with results; nothing branches on it
    citation: str = ""                 # the paper the policy follows
    estimator: str = "expected"        # "expected": `expected_timeline`; "discrete-event": simulate
    iteration_level: bool = False      # the program decodes with `Executor.step` (program.py)
    runtime_adjustment: bool = False   # the program reads `Executor.adjuster` (ExeGPT §3)
    engine: str = "ft"                 # whose kernels price it (harness/cost_model/engines.py)
    search_resolution: str | None = None   # the search grid it needs (None: the caller's)

    def run(self, plan: Plan, x) -> None:
        """The batching program: drive the `Executor` x until every request has finished."""
        raise NotImplementedError(f"policy '{self.name}' has no batching program")

    def expected_timeline(self, plan: Plan, workload: Workload, worst: bool) -> tuple[float, float, float]:
        """The closed form (ExeGPT §6): (throughput seq/s, latency s, mean decoding batch);
        `worst`: `mode.latency=worst-case`. Only for `estimator = "expected"`."""
        raise NotImplementedError(f"policy '{self.name}' has no closed form; set estimator = 'discrete-event'")

    def executor(self, plan: Plan) -> str:
        """Which simulator executor runs the program: "iteration" (one iteration per call,
        O(1) bookkeeping: `step`, `decode` of single iterations) or "phase" (multi-iteration
        `decode`, static batching, pipeline drains, cache-rewrite costs); see
        harness/simulator/discrete_event.py."""
        return "iteration" if self.iteration_level else "phase"

    def weight_copies(self, ctx: Context, plan: Plan) -> int:
        """Copies of the model's weights the plan keeps on the cluster (data-parallel replicas
        from `plan.derived`; WAA: one per pipeline of a decoder-only model)."""
        return int(dict(plan.derived).get("replicas", 1))

    def runner_support(self, plan: Plan) -> str:
        """Why the real runner cannot execute `plan` ("" when it can)."""
        return ""

    def worker_groups(self, plan: Plan) -> dict[str, tuple]:
        """The worker groups the program addresses (`Executor` calls' `group`), each its
        pipeline's stages (`harness.policies.pipeline.Stage`) in order; the runner gives them
        ranks in this order, each stage's TP ranks consecutive. Default: one pipeline, "all"."""
        return {"all": tuple(plan.costs.decode_stages)}

    def knob_space(self, ctx: Context) -> list[KnobSpec]:
        raise NotImplementedError

    def default_knobs(self, ctx: Context) -> dict[str, int]:
        return {k.name: k.low for k in self.knob_space(ctx)}

    def search_space(self, ctx: Context) -> list[KnobSpec]:
        """The knobs XScheduler searches (default: all of them); a policy may pin some to
        their defaults (vLLM's block size) to keep the search small."""
        return self.knob_space(ctx)

    def plan(self, ctx: Context, knobs: Mapping[str, int]) -> Plan:
        raise NotImplementedError

    regime_knobs: tuple[str, ...] | None = None   # the knobs `regime` reads (None: any of them)

    def regime(self, ctx: Context, knobs: Mapping[str, int]) -> int | None:
        """A discrete structure the plan derives from the knobs (WAA: the encode/decode GPU
        split), or None. Monotonicity is assumed only within one regime: the search splits
        the first monotone knob's range into runs of equal regime and searches each."""
        return None

    def memory_groups(self, ctx: Context, plan: Plan) -> dict[str, list]:
        """Per GPU group of a priced `plan` (e.g. `all`, or WAA's `encode` and `decode`), its
        stages in order with one GPU's memory each: [(Stage, cost_model.memory.MemoryUse), ...]."""
        raise NotImplementedError(f"policy '{self.name}' does not report its memory per GPU group")

    def validate(self, ctx: Context, knobs: Mapping[str, int]) -> dict[str, int]:
        """Fill defaults, reject unknown knobs and out-of-range values (one-line errors)."""
        space = {k.name: k for k in self.knob_space(ctx)}
        extra = set(knobs) - set(space)
        if extra:
            raise UserError(f"policy.{sorted(extra)[0]}: not a knob of '{self.name}'; valid: {', '.join(space)}")
        full = {**self.default_knobs(ctx), **{k: int(v) for k, v in knobs.items()}}
        for k, v in full.items():
            space[k].check(v)
        return full
