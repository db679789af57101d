"""OmegaConf's and Hydra's errors while composing, as one line: the key, what it must be (a
type of the schema) or the valid keys, and the value given."""

from __future__ import annotations

import re
from collections.abc import Callable

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from harness.errors import UserError, unknown_name

# OmegaConf's message (its start or end) -> what the value must be
_MUSTS = (("converted to Integer", "an integer"), ("converted to Float", "a number"),
          ("converted to String", "a string"), ("Cannot convert", "a string"), ("is not a valid bool", "true or false"),
          ("is not a ListConfig", "a list"), ("is not a DictConfig", "a mapping"))


def type_error(e: OmegaConfBaseException) -> UserError:
    """One line for OmegaConf's ValidationError: the key, what it must be, the value given."""
    msg = str(getattr(e, "msg", e)).splitlines()[0]
    for words, kind in _MUSTS:
        if words in msg:
            return UserError(f"{e.full_key}: must be {kind}, got {e.value!r}")
    if "is not Optional" in msg or msg.startswith("Incompatible value 'None'"):
        return UserError(f"{e.full_key}: must not be null")
    if "incompatible with type hint" in msg:            # a Union: a number, or a number or a name
        hint = msg.rsplit("type hint", 1)[1]
        kind = "a number" if "float" in hint else "an integer" if "int" in hint else f"of type {hint.strip()}"
        return UserError(f"{e.full_key}: must be {kind}{' or a name' if 'str' in hint else ''}, got {e.value!r}")
    return UserError(f"{e.full_key}: {msg}")


def one_line(e: Exception) -> str:
    """Hydra/OmegaConf message without its search-path or full-key appendix, on one line."""
    lines = []
    for line in str(e).splitlines():
        if line.startswith(("Config search path", "See https:", "    full_key:", "full_key:")):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines)


def _leaf_keys(node: object, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix]
    return [k for key, v in node.items() for k in _leaf_keys(v, f"{prefix}.{key}".lstrip("."))]


def composition_error(error: Exception, override_keys: list[str],
                      locate: Callable[[str], str] = lambda name: f"{name}.yaml") -> UserError:
    """A failed composition: a type error names the key, what it must be and the value; a key
    the schema lacks is named with the valid keys (all of them for an override's, with the
    `+key=` hint; its node's for a YAML's, naming the file: `locate("cluster/x")` says where)."""
    e, where = error, re.match(r"In '([^']+)'", str(error))
    while e is not None and not isinstance(e, OmegaConfBaseException):
        e = e.__cause__ or e.__context__
    in_yaml = f" (in {locate(where[1])})" if where else ""
    if isinstance(e, ValidationError):
        return UserError(f"{type_error(e)}{in_yaml}")
    if isinstance(e, ConfigKeyError | AttributeError) and getattr(e, "parent_node", None) is not None:
        key = next((k for k in override_keys if f"{k}.".startswith(f"{e.full_key}.")), None)
        if key is None:
            prefix = e.full_key.rpartition(".")[0]
            valid = [f"{prefix}.{k}".lstrip(".") for k in e.parent_node]
            return UserError(f"{unknown_name('config key', e.full_key, valid)}{in_yaml}")
        root = OmegaConf.to_container(e.parent_node._get_root(), resolve=False)
        valid = [k for k in _leaf_keys(root) if not k.startswith("hydra.")]
        return UserError(f"{unknown_name('config key', key, valid)}; add a new key with +{key}=...")
    return UserError(f"config: {one_line(error)}")
