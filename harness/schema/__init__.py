"""The config schema: one dataclass per group of `harness/conf/` (harness/schema/types.py), registered
in Hydra's ConfigStore under the names below, which each YAML extends (`defaults:
[base_<group>, _self_]`, Hydra's "extending configs"); harness/conf/config.yaml extends `base_config`.

OmegaConf checks the types while Hydra composes (`cluster.num_gpus=abc` fails there, one line
by messages.py); the ranges and names a type cannot say are checks.py's `check_<group>`, one
per group, run by `check(c)` on the resolved config before any work (harness.scenario). Rules
across fields live with the builders (harness.scenario). Keys a YAML does not set get no
default here (MISSING, or null for an option no YAML omits), so a composed config holds
exactly the keys of its YAMLs and the config hash of every job is what it was.

Four nodes are open (extra keys allowed): the root (an experiment's `study`), `policy` (a
policy's own knobs, plugins' included; typed by check_policy, ranged by each policy's
KnobSpec) and `runner.fidelity` (its `configs`, set by harness/conf/experiment/fidelity_*.yaml),
closed like the rest once Hydra has composed the root (a new key needs `+key=`); and `model`,
which stays open (types.model_node): any ModelSpec field or `hf_config` takes a plain override
(`model.num_kv_heads=8`), typed and named by check_model against types.ModelFields. Declaring
those fields with null defaults instead would put them in every composed config (and change
every config hash).
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore

from harness.schema.checks import CHECKS, check
from harness.schema.messages import composition_error, one_line, type_error
from harness.schema.types import (
    AnalyticCostModel,
    Cluster,
    HFModel,
    Mode,
    Named,
    RegistryModel,
    Root,
    Search,
    ShapedModel,
    model_node,
    open_node,
    runner_node,
)

SCHEMAS: dict[str, dict[str, Any]] = {     # group ("" = root) -> {name in ConfigStore: node}
    "": {"base_config": open_node(Root)},
    "model": {"registry_model": model_node(RegistryModel), "shaped_model": model_node(ShapedModel),
              "hf_model": model_node(HFModel)},
    "cluster": {"base_cluster": Cluster},
    "task": {"base_task": Named},
    "cost_model": {"base_cost_model": Named, "analytic_cost_model": AnalyticCostModel},
    "policy": {"base_policy": open_node(Named)},
    "search": {"base_search": Search},
    "mode": {"base_mode": Mode},
    "runner": {"base_runner": runner_node()},
}
_store = ConfigStore.instance()
for _group, _nodes in SCHEMAS.items():
    for _name, _node in _nodes.items():
        _store.store(name=_name, node=_node, group=_group or None)

__all__ = ["CHECKS", "SCHEMAS", "check", "composition_error", "one_line", "type_error"]
