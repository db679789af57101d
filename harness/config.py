"""Hydra config (`conf/`) -> a `Scenario`: model, cluster, workload, cost model, seed, paths.

Every config mistake becomes a one-line `UserError` naming the group or key and the valid
choices; Hydra's multi-line messages never reach the user.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.errors import UserError, check, unknown_name
from harness.policies import EXEGPT_POLICIES
from harness.policies.base import SLA
from harness.specs.hardware import GPUS_PER_NODE, ClusterSpec, make_cluster
from harness.specs.mode import OURS, FTBaseline, Mode, mode_from_dict
from harness.specs.models import MODELS, ModelSpec, get_model, model_from_dict
from harness.workload import Workload, fixed_workload, get_task

REPO_ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("model", "cluster", "task", "cost_model", "policy", "search", "mode")  # conf/<group>/<name>.yaml, all required


def conf_dir() -> Path:
    """The repository's Hydra config tree (`<repo>/conf`)."""
    return REPO_ROOT / "conf"


CONF_ENTRY_POINTS = "harness.conf"   # plugins name a module whose folder holds a `conf/` tree


def plugin_conf_dirs() -> list[Path]:
    """Config trees of installed plugins: each entry point of the `harness.conf` group names a
    module (or package) whose folder holds `conf/<group>/<name>.yaml` (e.g. a policy's YAML);
    they extend Hydra's search path after the repository's own tree."""
    out = []
    for ep in sorted(entry_points(group=CONF_ENTRY_POINTS), key=lambda e: e.name):
        spec = importlib.util.find_spec(ep.value)
        if spec is None:
            raise UserError(f"plugin {ep.name}: module '{ep.value}' (entry point group {CONF_ENTRY_POINTS}) "
                            "is not importable")
        folder = Path(next(iter(spec.submodule_search_locations))) if spec.submodule_search_locations \
            else Path(str(spec.origin)).parent
        if (folder / "conf").is_dir():
            out.append(folder / "conf")
    return out


def searchpath_overrides() -> list[str]:
    """The Hydra override adding the plugins' config trees (none installed: nothing)."""
    dirs = plugin_conf_dirs()
    return [f"hydra.searchpath=[{','.join(d.as_uri() for d in dirs)}]"] if dirs else []


def group_options(group: str) -> list[str]:
    """Names selectable for a config group: the YAML stems of `conf/<group>/` and of the
    installed plugins' trees."""
    return sorted({p.stem for d in (conf_dir(), *plugin_conf_dirs()) for p in (d / group).glob("*.yaml")})


def _one_line(e: Exception) -> str:
    """Hydra/OmegaConf message without its search-path or full-key appendix, on one line."""
    lines = []
    for line in str(e).splitlines():
        if line.startswith(("Config search path", "See https:", "    full_key:", "full_key:")):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines)


def _is_group(override: Override) -> bool:
    return (conf_dir() / override.key_or_group).is_dir()


def _check_overrides(overrides: list[str]) -> list[Override]:
    """Parse overrides; an unknown option of a group (`model=opt-14b`) is a UserError."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise UserError(f"override: {_one_line(e)}") from None
    for o in parsed:
        value = o.value()
        if _is_group(o) and isinstance(value, str) and value not in group_options(o.key_or_group):
            raise unknown_name(o.key_or_group, value, group_options(o.key_or_group))
    return parsed


def _leaf_keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix]
    return [k for key, v in node.items() for k in _leaf_keys(v, f"{prefix}.{key}".lstrip("."))]


def _explain(parsed: list[Override], error: HydraException) -> UserError:
    """One line for a failed composition: the first override of a key the config lacks
    (`seed_=1`: names it and the valid keys), else Hydra's own message."""
    try:
        base = _compose([o.input_line for o in parsed if _is_group(o)])
    except HydraException:
        return UserError(f"config: {_one_line(error)}")
    absent = object()
    for o in parsed:
        if _is_group(o) or o.is_add() or o.is_delete():
            continue
        if OmegaConf.select(base, o.key_or_group, default=absent) is absent:
            valid = _leaf_keys(OmegaConf.to_container(base, resolve=False))
            err = unknown_name("config key", o.key_or_group, valid)
            return UserError(f"{err}; add a new key with +{o.key_or_group}=...")
    return UserError(f"config: {_one_line(error)}")


if not OmegaConf.has_resolver("repo_root"):        # ${repo_root:} in conf/ (also for harness.app)
    OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


def _compose(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(version_base=None, config_dir=str(conf_dir())):
        return hydra_compose("config", overrides=[*overrides, *searchpath_overrides()])


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The root config with Hydra `overrides` applied (e.g. `["model=gpt3-39b", "seed=1"]`)."""
    overrides = list(overrides)
    parsed = _check_overrides(overrides)
    try:
        return _compose(overrides)
    except HydraException as e:
        raise _explain(parsed, e) from None


# ---- Scenario -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Paths:
    """Inputs outside the repository (`paths.*`; default `<repo>/../shared`)."""

    shared: Path
    profiles: Path           # Vidur profile tables
    ft_calibration: Path     # published FasterTransformer latencies (CSV)
    traces: Path             # Splitwise/Vidur trace CSVs


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """`search.*` (conf/search/): how XScheduler searches (ExeGPT §5)."""

    name: str = "default"
    method: str = "branch-and-bound"
    policies: tuple[str, ...] = EXEGPT_POLICIES
    resolution: str = "fine"
    eps_throughput_rel: float = 0.01     # eps_T
    eps_latency_s: float = 0.0           # eps_L


SEARCH_METHODS = ("branch-and-bound", "exhaustive")


def build_search(d: dict) -> SearchSettings:
    """Validated `search.*`; every error names the key and the allowed values."""
    from harness.policies import POLICIES
    from harness.scheduler.space import RESOLUTIONS
    method, res = str(d.get("method", "branch-and-bound")), str(d.get("resolution", "fine"))
    if method not in SEARCH_METHODS:
        raise unknown_name("search.method", method, SEARCH_METHODS)
    if res not in RESOLUTIONS:
        raise unknown_name("search.resolution", res, RESOLUTIONS)
    pols = d.get("policies")
    pols = EXEGPT_POLICIES if pols is None else pols
    check(isinstance(pols, list | tuple) and len(pols) > 0, "search.policies", "must be a non-empty list")
    for p in pols:
        if p not in POLICIES:
            raise unknown_name("search.policies", p, POLICIES.names())
    eps_t, eps_l = d.get("eps_throughput_rel", 0.01), d.get("eps_latency_s", 0.0)
    for key, v in (("search.eps_throughput_rel", eps_t), ("search.eps_latency_s", eps_l)):
        check(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1e9, key,
              f"must be a number >= 0, got {v!r}")
    return SearchSettings(str(d.get("name", "default")), method, tuple(str(p) for p in pols), res,
                          float(eps_t), float(eps_l))


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
    policy_knobs: tuple[tuple[str, int], ...] = ()   # knobs set in conf/policy (null = policy default)
    search: SearchSettings = SearchSettings()
    sla: SLA = SLA()
    mode: Mode = OURS
    cost_model_options: tuple[tuple[str, object], ...] = ()   # cost_model.* besides name (null: default)
    ft_baseline: FTBaseline = FTBaseline()


def _int(value: object, key: str) -> int:
    check(isinstance(value, int) and not isinstance(value, bool), key, f"must be an integer, got {value!r}")
    return value  # type: ignore[return-value]


def build_model(d: dict) -> ModelSpec:
    """A registry model when only `name` is given, else a model declared by shape."""
    if set(d) == {"name"}:
        if d["name"] not in MODELS:
            raise unknown_name("model.name", d["name"], MODELS)
        return get_model(d["name"])
    return model_from_dict(d)


def build_cluster(d: dict) -> ClusterSpec:
    """`conf/cluster/*.yaml`: `gpu` (a key of GPUS), `num_gpus`, optional `gpus_per_node`, `name`."""
    allowed = ("name", "gpu", "num_gpus", "gpus_per_node")
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise UserError(f"cluster: unknown field(s) {', '.join(extra)}; valid: {', '.join(allowed)}")
    for key in ("gpu", "num_gpus"):
        check(d.get(key) is not None, f"cluster.{key}", "missing")
    return make_cluster(d["gpu"], _int(d["num_gpus"], "cluster.num_gpus"),
                        _int(d.get("gpus_per_node", GPUS_PER_NODE), "cluster.gpus_per_node"),
                        name=d.get("name"))


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
        return fixed_workload(_int(lens["input_len"], "workload.input_len"),
                              _int(lens["output_len"], "workload.output_len"))
    return get_task(str(task))


def build_paths(d: dict) -> Paths:
    """Absolute paths; a relative `HARNESS_SHARED_DIR` is taken from the working directory."""
    for key in Paths.__slots__:
        check(d.get(key) is not None, f"paths.{key}", "missing")
    return Paths(**{key: Path(str(d[key])).resolve() for key in Paths.__slots__})


def build_sla(d: dict) -> SLA:
    """`sla.*` -> SLA; errors name the key (ExeGPT §5 SLA variants)."""
    n = d.get("output_len")
    if n is not None:
        n = _int(n, "sla.output_len")
    return SLA(str(d.get("kind", "main")), n)


def build_ft_baseline(d: dict) -> FTBaseline:
    """`ft_baseline.*` -> FTBaseline; errors name the key."""
    extra = sorted(set(d) - set(FTBaseline.__slots__))
    if extra:
        raise UserError(f"ft_baseline.{extra[0]}: unknown; valid: {', '.join(FTBaseline.__slots__)}")
    return FTBaseline(d.get("max_batch"), str(d.get("kv_reservation", "max")))


def _paper_cluster(model: ModelSpec) -> ClusterSpec:
    """`use_paper_cluster=true`: the cluster the paper ran this model on (ExeGPT §7)."""
    from harness.specs import get_cluster
    from harness.specs.paper import PAPER_CLUSTER
    if model.name not in PAPER_CLUSTER:
        raise unknown_name("use_paper_cluster: model", model.name, PAPER_CLUSTER)
    return get_cluster(PAPER_CLUSTER[model.name])


def build_scenario(cfg: DictConfig) -> Scenario:
    """Turn a composed config into validated specs; errors name the offending key."""
    try:
        c = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise UserError(f"config: {_one_line(e)}") from None
    for section in (*GROUPS, "paths", "workload"):
        hint = f"; choose one with {section}=<name>" if section in GROUPS else ""
        check(isinstance(c.get(section), dict), section, f"missing or not a mapping{hint}")
    for section in ("task", "cost_model", "policy", "mode"):
        check(c[section].get("name") is not None, f"{section}.name", "missing")
    paths = build_paths(c["paths"])
    model = build_model(c["model"])
    return Scenario(
        model=model,
        cluster=_paper_cluster(model) if c.get("use_paper_cluster") else build_cluster(c["cluster"]),
        workload=build_workload(c["workload"], c["task"]["name"], paths.traces),
        cost_model_name=str(c["cost_model"]["name"]),
        seed=_int(c.get("seed", 0), "seed"),
        paths=paths,
        policy_name=str(c["policy"]["name"]),
        policy_knobs=tuple(sorted((k, _int(v, f"policy.{k}")) for k, v in c["policy"].items()
                                  if k != "name" and v is not None)),
        search=build_search(c["search"]),
        sla=build_sla(c.get("sla") or {}),
        mode=mode_from_dict(c["mode"]),
        ft_baseline=build_ft_baseline(c.get("ft_baseline") or {}),
        cost_model_options=tuple(sorted((k, v) for k, v in c["cost_model"].items()
                                        if k != "name" and v is not None)),
    )
