"""A composed config -> validated specs: `build_scenario` (model, cluster, workload, cost
model, policy, search, SLA, mode, FT baseline, paths) and `build_runner` (the `runner` group).

Both first check the whole config against the schema (harness.schema: types while Hydra
composed, ranges and names here), so a bad value of any group fails before any work. The
rules across fields are the builders' and only theirs: `build_workload` (a trace, or both
fixed lengths, or the task), `_paper_cluster` (use_paper_cluster needs a paper model) and,
inside the specs they build, SLA (sla.kind=b needs sla.output_len). bound vs bound_s is
harness.scheduler.bounds.resolve_bound's, where a bound is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from harness import schema
from harness.errors import UserError, check, unknown_name
from harness.policies import EXEGPT_POLICIES
from harness.policies.base import SLA
from harness.specs.hardware import ClusterSpec, make_cluster
from harness.specs.mode import OURS, FTBaseline, Mode, mode_from_dict
from harness.specs.models import MODELS, ModelSpec, get_model, model_from_dict, with_overrides
from harness.workload import Workload, fixed_workload, get_task


@dataclass(frozen=True, slots=True)
class Paths:
    """Inputs outside the repository (`paths.*`; default `<repo>/../shared`)."""

    shared: Path
    profiles: Path           # Vidur profile tables
    ft_calibration: Path     # published FasterTransformer latencies (CSV)
    traces: Path             # Splitwise/Vidur trace CSVs


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """`search.*` (harness/conf/search/): how XScheduler searches (ExeGPT §5)."""

    name: str = "default"
    method: str = "branch-and-bound"
    policies: tuple[str, ...] = EXEGPT_POLICIES
    resolution: str = "fine"
    eps_throughput_rel: float = 0.01     # eps_T
    eps_latency_s: float = 0.0           # eps_L


@dataclass(frozen=True, slots=True)
class Scenario:
    """What one experiment runs on: built from a composed config by `build_scenario`."""

    model: ModelSpec
    cluster: ClusterSpec
    workload: Workload
    cost_model_name: str
    seed: int
    paths: Paths
    policy_name: str = "rra"
    policy_knobs: tuple[tuple[str, int], ...] = ()   # knobs set in harness/conf/policy (null = policy default)
    search: SearchSettings = SearchSettings()
    sla: SLA = SLA()
    mode: Mode = OURS
    cost_model_options: tuple[tuple[str, object], ...] = ()   # cost_model.* besides name (null: default)
    ft_baseline: FTBaseline = FTBaseline()


@dataclass(frozen=True, slots=True)
class FidelityRun:
    """One entry of `runner.fidelity.configs`."""

    model: str
    task: str
    policy: str
    num_requests: int
    knobs: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class FidelitySettings:
    """`runner.fidelity.*` (harness fidelity); `configs` empty unless an experiment sets them."""

    size: str
    out_dir: str
    reprofile: bool
    repeats: int
    ct2: bool | None
    ratio: bool | None
    configs: tuple[FidelityRun, ...] = ()


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """The `runner` group (harness/conf/runner/), validated: harness run / profile / fidelity."""

    name: str
    device: str
    backend: str
    threads_per_worker: int
    timeout_s: float
    dtype: str
    num_requests: int
    progress: bool
    out_dir: str
    profile: dict = field(default_factory=dict)    # runner.profile.*: harness.profiler.profile.build_grid
    fidelity: FidelitySettings | None = None


def validated(cfg: DictConfig) -> dict:
    """The resolved config as plain containers, checked against the schema (harness.schema)."""
    try:
        c = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as e:
        hint = f"; choose one with {e.full_key}=<name>" if e.full_key in schema.SCHEMAS else ""
        raise UserError(f"{e.full_key}: missing{hint}") from None
    except OmegaConfBaseException as e:
        raise UserError(f"config: {schema.one_line(e)}") from None
    schema.check(c)
    return c


def build_model(d: dict) -> ModelSpec:
    """`hf_config`: the model of that Hugging Face config.json (harness.specs.hf_config), named
    `name` unless that is a registry model's (the default `model=opt-13b` sets one): then by the
    config. Else a registry name is that model, else the model declared by shape. Fields set
    beside an hf_config or a registry name override its values (null: not set)."""
    d = {k: v for k, v in d.items() if v is not None}
    hf_config, name = d.pop("hf_config", None), str(d.pop("name", ""))
    if hf_config is not None:
        from harness.specs.hf_config import spec_from_hf_config
        return spec_from_hf_config(str(hf_config), name=None if name in MODELS else name or None, **d)
    if name in MODELS:
        return with_overrides(get_model(name), **d)
    return model_from_dict({"name": name, **d})


def build_cluster(d: dict) -> ClusterSpec:
    return make_cluster(d["gpu"], d["num_gpus"], d["gpus_per_node"], name=d.get("name"))


def build_workload(wl: dict, task: str, traces_dir: Path) -> Workload:
    """`workload.trace`, else fixed `input_len`/`output_len`, else the paper task `task`."""
    trace, lens = wl.get("trace"), {k: wl.get(k) for k in ("input_len", "output_len")}
    given = [k for k, v in lens.items() if v is not None]
    if trace is not None:
        check(not given, "workload.trace", f"set either a trace or {' and '.join(given)}, not both")
        from harness.workload.traces import load_trace

        path = Path(str(trace))
        if not path.is_absolute() and not path.exists():
            path = traces_dir / path
        return load_trace(path).workload()
    if len(given) == 1:
        missing = "output_len" if given == ["input_len"] else "input_len"
        raise UserError(f"workload.{missing}: missing; set both workload.input_len and "
                        f"workload.output_len (or neither, to use the task)")
    if given:
        return fixed_workload(lens["input_len"], lens["output_len"])
    return get_task(str(task))


def build_paths(d: dict) -> Paths:
    """Absolute paths; a relative `HARNESS_SHARED_DIR` is taken from the working directory."""
    return Paths(**{key: Path(str(d[key])).resolve() for key in Paths.__slots__})


def build_search(d: dict) -> SearchSettings:
    pols = EXEGPT_POLICIES if d["policies"] is None else tuple(d["policies"])
    return SearchSettings(d["name"], d["method"], pols, d["resolution"], float(d["eps_throughput_rel"]),
                          float(d["eps_latency_s"]))


def _paper_cluster(model: ModelSpec) -> ClusterSpec:
    """`use_paper_cluster=true`: the cluster the paper ran this model on (ExeGPT §7)."""
    from harness.specs import get_cluster
    from harness.specs.paper import PAPER_CLUSTER
    if model.name not in PAPER_CLUSTER:
        raise unknown_name("use_paper_cluster: model", model.name, PAPER_CLUSTER)
    return get_cluster(PAPER_CLUSTER[model.name])


def _options(d: dict) -> tuple[tuple[str, object], ...]:
    """A group's keys besides `name` that are set (not null), sorted."""
    return tuple(sorted((k, v) for k, v in d.items() if k != "name" and v is not None))


def build_scenario(cfg: DictConfig) -> Scenario:
    """Turn a composed config into validated specs; errors name the offending key."""
    c = validated(cfg)
    paths = build_paths(c["paths"])
    model = build_model(c["model"])
    return Scenario(
        model=model,
        cluster=_paper_cluster(model) if c["use_paper_cluster"] else build_cluster(c["cluster"]),
        workload=build_workload(c["workload"], c["task"]["name"], paths.traces),
        cost_model_name=c["cost_model"]["name"],
        seed=c["seed"],
        paths=paths,
        policy_name=c["policy"]["name"],
        policy_knobs=_options(c["policy"]),
        search=build_search(c["search"]),
        sla=SLA(c["sla"]["kind"], c["sla"]["output_len"]),
        mode=mode_from_dict(c["mode"]),
        ft_baseline=FTBaseline(c["ft_baseline"]["max_batch"], c["ft_baseline"]["kv_reservation"]),
        cost_model_options=_options(c["cost_model"]),
    )


def build_runner(cfg: DictConfig) -> RunnerSettings:
    """The validated `runner` group (the whole config is checked first): what harness run,
    profile and fidelity read, before any worker starts."""
    r = validated(cfg)["runner"]
    f = r["fidelity"]
    runs = tuple(FidelityRun(e["model"], e["task"], e["policy"], e["num_requests"],
                             tuple(sorted((e.get("knobs") or {}).items()))) for e in f.get("configs") or ())
    fidelity = FidelitySettings(f["size"], f["out_dir"], f["reprofile"], f["repeats"], f["ct2"], f["ratio"], runs)
    return RunnerSettings(r["name"], r["device"], r["backend"], r["threads_per_worker"], float(r["timeout_s"]),
                          r["dtype"], r["num_requests"], r["progress"], r["out_dir"], r["profile"], fidelity)
