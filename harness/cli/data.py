"""`harness data status|fetch [dataset ...] [--mirror URL] [overrides]`: the measured data
(harness/data/manifest.json) under `paths.shared`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.config import build_scenario, compose
from harness.data.fetch import fetch
from harness.data.manifest import select, state
from harness.errors import UserError

ACTIONS = ("status", "fetch")
MIRROR_ENV = "HARNESS_DATA_MIRROR"


def _parse(args: list[str]) -> tuple[str, list[str], str | None, list[str]]:
    """(action, dataset names, mirror URL, hydra overrides)."""
    if not args or args[0] not in ACTIONS:
        raise UserError(f"data: action must be one of {', '.join(ACTIONS)}, got {args[0] if args else 'nothing'}")
    names, overrides, mirror = [], [], os.environ.get(MIRROR_ENV) or None
    rest = iter(args[1:])
    for a in rest:
        if a == "--mirror" or a.startswith("--mirror="):
            mirror = a.partition("=")[2] or next(rest, None)
            if not mirror:
                raise UserError("data: --mirror needs a URL (e.g. file:///data/shared or https://host/shared)")
        elif "=" in a:
            overrides.append(a)
        else:
            names.append(a)
    return args[0], names, mirror, overrides


def status_rows(root: Path, names: list[str]) -> list[tuple[str, str, str]]:
    """(dataset, file, state) for every file of the named datasets."""
    return [(d.name, f.rel_path, state(root, f)) for d in select(names) for f in d.files]


def data(args: list[str]) -> None:
    action, names, mirror, overrides = _parse(args)
    root = build_scenario(compose(overrides)).paths.shared
    datasets = select(names)
    if action == "fetch":
        rep = fetch(datasets, root, mirror)
        print(f"data fetch: {len(rep.fetched)} downloaded, {len(rep.present)} already present -> {root}")
        for rel in rep.manual:
            d = next(d for d in datasets if rel.startswith(f"{d.dest}/"))
            print(f"  {rel}: no public copy to download; place it at {root / rel} by hand. {d.manual}",
                  file=sys.stderr)
    rows = status_rows(root, names)
    print(f"data in {root} (paths.shared):")
    for d in datasets:
        states = [s for n, _, s in rows if n == d.name]
        summary = ", ".join(f"{states.count(s)} {s}" for s in ("present", "missing", "corrupt") if states.count(s))
        print(f"  {d.name:<15} {summary:<24} needed by: {', '.join(d.needed_by)}")
        if action == "status":
            print(f"    {d.what}; from {d.source} @ {d.revision[:12]} ({d.licence})")
        if action == "status" and states.count("missing") == len(states):
            no_url = all(f.url is None for f in d.files)
            print(f"    get it: {d.manual} (place it under {root / d.dest})" if no_url
                  else f"    get it: harness data fetch {d.name}")
        elif action == "status":
            for _, rel, s in (r for r in rows if r[0] == d.name and r[2] != "present"):
                print(f"    {s:<8} {rel}   (harness data fetch {d.name} replaces it)")
