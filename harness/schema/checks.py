"""Ranges and names a type cannot say, one `check_<group>` per group of harness/conf/ (plus the
root's), run on the resolved config (plain containers) before any work. Cross-field rules
are not here: harness.scenario's builders hold them."""

from __future__ import annotations

import math
from dataclasses import fields

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.errors import UserError, unknown_name
from harness.schema.messages import type_error
from harness.schema.types import Fidelity, FidelityConfig, ModelFields

SIMULATORS = ("expected", "discrete-event")
SEARCH_METHODS = ("branch-and-bound", "exhaustive")
DEVICES, BACKENDS, DTYPES = ("cpu", "cuda"), ("gloo", "nccl"), ("float32", "float64", "float16")
CPU_DTYPES = ("float32", "float64")      # float16: runner.device=cuda only (harness.engine.weights.check_dtype)
FIDELITY_SIZES = ("tiny", "full", "large")


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def at_least(d: dict, prefix: str, key: str, low: float, *, null: bool = False, what: str = "an integer") -> None:
    """`prefix.key` is a number >= `low` (or null, where `null`)."""
    v = d.get(key)
    if not (null and v is None) and not (_number(v) and v >= low):
        raise UserError(f"{prefix}{key}: must be {what} >= {low:g}{' or null' if null else ''}, got {v!r}")


def boolean(d: dict, prefix: str, key: str, *, null: bool = False) -> None:
    """`prefix.key` is true or false (or null, where `null`): a Flag of the schema."""
    v = d.get(key)
    if not (null and v is None) and not isinstance(v, bool):
        raise UserError(f"{prefix}{key}: must be true or false{' or null' if null else ''}, got {v!r}")


def one_of(d: dict, prefix: str, key: str, valid, *, null: bool = False) -> None:
    v = d.get(key)
    if not (null and v is None) and v not in valid:
        raise unknown_name(f"{prefix}{key}", v, valid)


def typed(schema: type, d: dict, prefix: str) -> None:
    """`d` against the dataclass `schema` (OmegaConf's types); an error names `prefix` + key."""
    try:
        OmegaConf.merge(OmegaConf.structured(schema), d)
    except OmegaConfBaseException as e:
        e.full_key = f"{prefix}{e.full_key}"
        raise type_error(e) from None


def check_model(d: dict) -> None:
    """The open model node (types.model_node): its keys are ModelFields' and of their types;
    without `family` or `hf_config` the name is a registry model's. Ranges are ModelSpec's, an
    hf_config's file harness.specs.hf_config's."""
    from harness.specs.models import MODELS
    valid = [f.name for f in fields(ModelFields)]
    extra = sorted(set(d) - set(valid))
    if extra:
        raise unknown_name("config key", f"model.{extra[0]}", [f"model.{k}" for k in valid])
    typed(ModelFields, d, "model.")
    if d.get("family") is None and d.get("hf_config") is None:
        one_of(d, "model.", "name", MODELS)
    for key in ("gated_mlp", "bias", "tied_embeddings"):
        boolean(d, "model.", key, null=True)


def check_cluster(d: dict) -> None:
    from harness.specs.hardware import GPUS
    one_of(d, "cluster.", "gpu", GPUS)
    for key in ("num_gpus", "gpus_per_node"):
        at_least(d, "cluster.", key, 1)


def check_task(d: dict) -> None:
    from harness.workload.tasks import CPU_TASKS, TASKS
    if d["name"] not in TASKS and d["name"] not in CPU_TASKS:
        raise unknown_name("task", d["name"], [*TASKS, *CPU_TASKS])


def check_cost_model(d: dict) -> None:
    """The name; the options' values depend on the GPU and are checked by the cost model."""
    from harness.cost_model.registry import COST_MODELS
    one_of(d, "cost_model.", "name", COST_MODELS.names())


def check_policy(d: dict) -> None:
    """The name and integer knobs; their ranges need the scenario (Policy.validate, KnobSpec)."""
    from harness.policies import POLICIES
    one_of(d, "policy.", "name", POLICIES.names())
    for k, v in d.items():
        if k != "name" and v is not None and not (isinstance(v, int) and not isinstance(v, bool)):
            raise UserError(f"policy.{k}: must be an integer, got {v!r}")


def check_search(d: dict) -> None:
    from harness.policies import POLICIES
    from harness.scheduler.space import RESOLUTIONS
    one_of(d, "search.", "method", SEARCH_METHODS)
    one_of(d, "search.", "resolution", RESOLUTIONS)
    if d["policies"] is not None:
        if not d["policies"]:
            raise UserError("search.policies: must be a non-empty list")
        for p in d["policies"]:
            one_of({"policies": p}, "search.", "policies", POLICIES.names())
    for key in ("eps_throughput_rel", "eps_latency_s"):
        at_least(d, "search.", key, 0, what="a number")


def check_mode(d: dict) -> None:
    from harness.specs.mode import MODES, OPTIONS
    if d["name"] not in MODES:
        raise unknown_name("mode", d["name"], MODES)
    for key, (_, _, valid) in OPTIONS.items():
        one_of(d, "mode.", key, valid, null=True)


def check_runner(d: dict) -> None:
    """Before any worker starts (harness run / profile / fidelity)."""
    one_of(d, "runner.", "device", DEVICES)
    one_of(d, "runner.", "backend", BACKENDS)
    one_of(d, "runner.", "dtype", DTYPES)
    if d["device"] == "cpu" and d["dtype"] not in CPU_DTYPES:
        raise UserError(f"runner.dtype: '{d['dtype']}' must be one of {', '.join(CPU_DTYPES)} on runner.device=cpu "
                        "(float16 needs runner.device=cuda)")
    at_least(d, "runner.", "threads_per_worker", 1)
    at_least(d, "runner.", "num_requests", 1)
    boolean(d, "runner.", "progress")
    if not (_number(d["timeout_s"]) and d["timeout_s"] > 0):
        raise UserError(f"runner.timeout_s: must be a number of seconds > 0, got {d['timeout_s']!r}")
    fid = d["fidelity"]
    one_of(fid, "runner.fidelity.", "size", FIDELITY_SIZES)
    at_least(fid, "runner.fidelity.", "repeats", 1)
    boolean(fid, "runner.fidelity.", "reprofile")
    for key in ("ct2", "ratio"):
        boolean(fid, "runner.fidelity.", key, null=True)
    extra = sorted(set(fid) - {f.name for f in fields(Fidelity)} - {"configs"})
    if extra:
        raise unknown_name("runner.fidelity key", extra[0], [*(f.name for f in fields(Fidelity)), "configs"])
    for i, entry in enumerate(fid.get("configs") or ()):
        typed(FidelityConfig, entry, f"runner.fidelity.configs[{i}].")
        at_least(entry, f"runner.fidelity.configs[{i}].", "num_requests", 1)


def check_root(c: dict) -> None:
    """The root's own keys (harness/conf/config.yaml)."""
    from harness.policies.base import SLA_KINDS
    from harness.specs.mode import KV_RESERVATIONS
    from harness.specs.paper import BOUND_LABELS
    from harness.workload.streams import STREAM_KINDS
    at_least(c, "", "num_requests", 1)
    boolean(c, "", "use_paper_cluster")
    boolean(c["runtime_adjustment"], "runtime_adjustment.", "enabled")
    one_of(c, "", "simulator", SIMULATORS)
    one_of(c["arrivals"], "arrivals.", "kind", STREAM_KINDS)
    at_least(c["arrivals"], "arrivals.", "rate_per_s", 0, null=True, what="a number")
    for key in ("input_tolerance_rel", "decode_tolerance_rel", "max_step_rel"):
        at_least(c["runtime_adjustment"], "runtime_adjustment.", key, 0, what="a number")
    bound = "inf" if c["bound"] == math.inf else c["bound"]
    one_of({"bound": bound}, "", "bound", BOUND_LABELS, null=True)
    if c["bound_s"] is not None and not c["bound_s"] > 0:
        raise UserError(f"bound_s: must be a number of seconds > 0, got {c['bound_s']!r}")
    one_of(c["sla"], "sla.", "kind", SLA_KINDS)
    at_least(c["sla"], "sla.", "output_len", 1, null=True)
    at_least(c["ft_baseline"], "ft_baseline.", "max_batch", 1, null=True)
    one_of(c["ft_baseline"], "ft_baseline.", "kv_reservation", KV_RESERVATIONS)
    for key in ("input_len", "output_len"):
        at_least(c["workload"], "workload.", key, 1, null=True)


CHECKS = {"model": check_model, "cluster": check_cluster, "task": check_task, "cost_model": check_cost_model,
          "policy": check_policy, "search": check_search, "mode": check_mode, "runner": check_runner}


def check(c: dict) -> None:
    """Every group's ranges and names, then the root's: one-line UserErrors naming the key."""
    for group, fn in CHECKS.items():
        fn(c[group])
    check_root(c)
