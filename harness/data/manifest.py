"""The data manifest (harness/data/manifest.json): every file the harness reads from
`paths.shared`, its upstream URL at a pinned revision and its sha256; and the state of a copy
(present, missing or corrupt)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from harness.errors import UserError, unknown_name

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class DataFile:
    dataset: str
    rel_path: str            # under paths.shared, e.g. "traces/splitwise_conv.csv"
    url: str | None          # upstream at the pinned revision; None: no public copy (see Dataset.manual)
    sha256: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    what: str
    source: str
    revision: str
    licence: str
    dest: str                # folder under paths.shared
    files: tuple[DataFile, ...]
    needed_by: tuple[str, ...]
    manual: str | None       # how to obtain it by hand when there is no URL


def load_manifest() -> tuple[Dataset, ...]:
    raw = json.loads(files("harness.data").joinpath("manifest.json").read_text())
    out = []
    for d in raw["datasets"]:
        base = d.get("base_url")
        fs = tuple(DataFile(d["name"], f"{d['dest']}/{f['path']}",
                            f"{base}/{f.get('upstream', f['path'])}" if base else None,
                            f["sha256"], int(f["bytes"])) for f in d["files"])
        out.append(Dataset(d["name"], d["what"], d["source"], d["revision"], d["licence"], d["dest"], fs,
                           tuple(d["needed_by"]), d.get("manual")))
    return tuple(out)


def select(names: list[str] | tuple[str, ...] = ()) -> tuple[Dataset, ...]:
    """The datasets named (all when none is); an unknown name is a one-line error."""
    every = load_manifest()
    by_name = {d.name: d for d in every}
    for n in names:
        if n not in by_name:
            raise unknown_name("dataset", n, by_name)
    return tuple(by_name[n] for n in names) if names else every


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def state(root: Path, f: DataFile) -> str:
    """"present" (the sha256 matches), "missing" or "corrupt" (another size or sha256)."""
    path = root / f.rel_path
    if not path.is_file():
        return "missing"
    if path.stat().st_size != f.size_bytes or sha256_of(path) != f.sha256:
        return "corrupt"
    return "present"


def missing_data(key: str, path: Path, dataset: str) -> UserError:
    """The one-line error of a command whose data are absent: what to type to get them."""
    return UserError(f"{key}: {path} does not exist; get it with `harness data fetch {dataset}` "
                     "(or point paths.shared / HARNESS_SHARED_DIR at a copy)")
