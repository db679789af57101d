"""Hydra config (`conf/`) -> a composed config, typed by the schema (harness.schema); the
specs are built from it by harness.scenario (`build_scenario`, `build_runner`).

Every config mistake becomes a one-line `UserError` naming the group or key and the valid
choices; Hydra's multi-line messages never reach the user.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import entry_points
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness import schema
from harness.errors import UserError, unknown_name
from harness.scenario import (
    Paths,
    RunnerSettings,
    Scenario,
    SearchSettings,
    build_runner,
    build_scenario,
)

__all__ = ["GROUPS", "REPO_ROOT", "Paths", "RunnerSettings", "Scenario", "SearchSettings", "build_runner",
           "build_scenario", "compose", "conf_dir", "group_options", "searchpath_overrides"]
REPO_ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("model", "cluster", "task", "cost_model", "policy", "search", "mode")  # conf/<group>/<name>.yaml, all required
CONF_ENTRY_POINTS = "harness.conf"   # plugins name a module whose folder holds a `conf/` tree


def conf_dir() -> Path:
    """The repository's Hydra config tree (`<repo>/conf`)."""
    return REPO_ROOT / "conf"


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


def _check_overrides(overrides: list[str]) -> list[Override]:
    """Parse overrides; an unknown option of a group (`model=opt-14b`) is a UserError."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise UserError(f"override: {schema.one_line(e)}") from None
    for o in parsed:
        group, value = o.key_or_group, o.value()
        if (conf_dir() / group).is_dir() and isinstance(value, str) and value not in group_options(group):
            raise unknown_name(group, value, group_options(group))
    return parsed


if not OmegaConf.has_resolver("repo_root"):        # ${repo_root:} in conf/ (also for harness.app)
    OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The root config with Hydra `overrides` applied (e.g. `["model=gpt3-39b", "seed=1"]`);
    types are checked against the schema here, ranges by `build_scenario`."""
    overrides = list(overrides)
    parsed = _check_overrides(overrides)
    try:
        with initialize_config_dir(version_base=None, config_dir=str(conf_dir())):
            return hydra_compose("config", overrides=[*overrides, *searchpath_overrides()])
    except (HydraException, OmegaConfBaseException) as e:
        raise schema.composition_error(e, [o.key_or_group for o in parsed]) from None
