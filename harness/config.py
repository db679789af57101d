"""Hydra config (`harness/conf/`, shipped in the wheel and found as `pkg://harness.conf`) -> a
composed config, typed by the schema (harness.schema); the specs are built from it by
harness.scenario (`build_scenario`, `build_runner`).

Config trees of other packages join Hydra's search path in either of two ways: a Hydra
`SearchPathPlugin` (a module under the `hydra_plugins` namespace package; Hydra finds it) or
an entry point of the `harness.conf` group naming a module whose folder holds `conf/`.
Every config mistake becomes a one-line `UserError` naming the group or key and the valid
choices; Hydra's multi-line messages never reach the user.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra._internal.config_repository import ConfigRepository
from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness import schema
from harness.data.locate import default_shared_dir
from harness.errors import UserError, unknown_name
from harness.scenario import (
    Paths,
    RunnerSettings,
    Scenario,
    SearchSettings,
    build_runner,
    build_scenario,
)

__all__ = ["CONF_URI", "GROUPS", "Paths", "RunnerSettings", "Scenario", "SearchSettings", "build_runner",
           "build_scenario", "compose", "conf_dir", "group_options", "load_option", "searchpath_overrides"]
CONF_MODULE = "harness.conf"
CONF_URI = f"pkg://{CONF_MODULE}"    # the config tree's place on Hydra's search path
GROUPS = ("model", "cluster", "task", "cost_model", "policy", "search", "mode")  # <group>/<name>.yaml, all required
CONF_ENTRY_POINTS = "harness.conf"   # plugins name a module whose folder holds a `conf/` tree


def conf_dir() -> Path:
    """This package's own config tree on disk (`harness/conf`, in a checkout or a wheel)."""
    return Path(str(files(CONF_MODULE)))


def plugin_conf_dirs() -> list[Path]:
    """Config trees named by entry points of the `harness.conf` group: each names a module (or
    package) whose folder holds `conf/<group>/<name>.yaml` (e.g. a policy's YAML); they extend
    Hydra's search path after this package's own tree."""
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
    """The Hydra override adding the entry-point plugins' trees (none installed: nothing).
    SearchPathPlugins need none: Hydra applies them itself."""
    dirs = plugin_conf_dirs()
    return [f"hydra.searchpath=[{','.join(d.as_uri() for d in dirs)}]"] if dirs else []


def repository() -> ConfigRepository:
    """Every YAML tree Hydra composes from: this package's, the SearchPathPlugins' and the
    entry-point plugins' (in that order); not the ConfigStore's schemas (harness.schema)."""
    csp = ConfigSearchPathImpl()
    for e in create_config_search_path(CONF_URI).get_path():
        if not e.path.startswith("structured://"):
            csp.append(e.provider, e.path)
    for d in plugin_conf_dirs():
        csp.append(provider="harness-plugin", path=d.as_uri())
    return ConfigRepository(csp)


def group_options(group: str) -> list[str]:
    """Names selectable for a config group, from every tree on the search path."""
    return sorted(repository().get_group_options(group, ObjectType.CONFIG))


def load_option(group: str, name: str) -> DictConfig:
    """One option's YAML as written (not composed), e.g. `load_option("experiment", "quick")`."""
    found = repository().load_config(f"{group}/{name}")
    if found is None:
        raise unknown_name(group, name, group_options(group))
    return found.config


def _check_overrides(overrides: list[str]) -> list[Override]:
    """Parse overrides; an unknown option of a group (`model=opt-14b`) is a UserError."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise UserError(f"override: {schema.one_line(e)}") from None
    repo = None
    for o in parsed:
        group, value = o.key_or_group, o.value()
        if not isinstance(value, str) or "." in group:
            continue
        repo = repo or repository()
        if repo.group_exists(group) and not repo.config_exists(f"{group}/{value}"):
            raise unknown_name(group, value, group_options(group))
    return parsed


if not OmegaConf.has_resolver("shared_dir"):      # ${shared_dir:} in conf/config.yaml (paths.shared)
    OmegaConf.register_new_resolver("shared_dir", lambda: str(default_shared_dir()))


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The root config with Hydra `overrides` applied (e.g. `["model=gpt3-39b", "seed=1"]`);
    types are checked against the schema here, ranges by `build_scenario`."""
    overrides = list(overrides)
    parsed = _check_overrides(overrides)
    try:
        with initialize_config_module(CONF_MODULE, version_base=None):
            return hydra_compose("config", overrides=[*overrides, *searchpath_overrides()])
    except (HydraException, OmegaConfBaseException) as e:
        raise schema.composition_error(e, [o.key_or_group for o in parsed], locate=_source_of) from None


def _source_of(option: str) -> str:
    """Where `<group>/<name>` was read from, for messages (`harness/conf/cluster/x.yaml`)."""
    found = repository().load_config(option)
    root = found.path if found else CONF_URI
    root = "harness/conf" if root == CONF_URI else root.removeprefix("file://").removeprefix("pkg://")
    return f"{root}/{option}.yaml"
