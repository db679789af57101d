"""One small generic registry for plugins (policies, cost models, ...).

Raises on duplicate names, suggests the nearest name on a typo, accepts lazy
``"module:attr"`` targets, and discovers third-party plugins through an entry-point
group (e.g. ``harness.policies``). [style: lm-evaluation-harness registry]
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from harness.errors import unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._entry_point_group = entry_point_group
        self._items: dict[str, T | str] = {}
        self._loaded_entry_points = False
        self._from_entry_points: set[str] = set()

    def register(self, name: str, obj: T | str | None = None) -> Callable[[T], T] | T | str:
        """``reg.register("x", obj)``, ``reg.register("x", "pkg.mod:Attr")`` or as a decorator."""
        if obj is None:
            def deco(o: T) -> T:
                self._add(name, o)
                return o
            return deco
        self._add(name, obj)
        return obj

    def _add(self, name: str, obj: T | str) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = obj

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points or self._entry_point_group is None:
            return
        self._loaded_entry_points = True
        for ep in entry_points(group=self._entry_point_group):
            if ep.name not in self._items:
                self._items[ep.name] = ep.value
                self._from_entry_points.add(ep.name)

    def reload_entry_points(self) -> None:
        """Forget what entry points added and read the group again on the next lookup (a
        package was installed or removed in this process)."""
        for name in self._from_entry_points:
            self._items.pop(name, None)
        self._from_entry_points.clear()
        self._loaded_entry_points = False

    def get(self, name: str) -> T:
        self._load_entry_points()
        if name not in self._items:
            raise unknown_name(self.kind, name, self._items)
        obj = self._items[name]
        if isinstance(obj, str):  # lazy "module:attr"
            module, _, attr = obj.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._items[name] = obj
        return obj  # type: ignore[return-value]

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
