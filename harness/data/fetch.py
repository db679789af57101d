"""Download the manifest's files into `paths.shared`, checking each sha256.

A file is written to `<name>.part` and renamed only once its size and sha256 match; a corrupt
or partial download is removed and reported with the file and the URL. `mirror` (a URL laid
out like paths.shared, e.g. file:///data/shared) replaces every upstream URL; it is also how a
file with no public copy (the FT reference table) can be fetched.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from harness.data.manifest import CHUNK_BYTES, DataFile, Dataset, state
from harness.errors import UserError

TIMEOUT_S = 60


@dataclass(frozen=True, slots=True)
class FetchReport:
    fetched: tuple[str, ...]       # rel paths downloaded now
    present: tuple[str, ...]       # already there with the right sha256
    manual: tuple[str, ...]        # no URL and no mirror: to be placed by hand


def _url(f: DataFile, mirror: str | None) -> str | None:
    return f"{mirror.rstrip('/')}/{f.rel_path}" if mirror else f.url


def _download(url: str, dest: Path, f: DataFile) -> None:
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    h, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r, open(part, "wb") as out:
            while chunk := r.read(CHUNK_BYTES):
                h.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise UserError(f"data fetch: {f.rel_path}: cannot download {url} ({reason}); offline? place the "
                        f"file at {dest} by hand (sha256 {f.sha256}) or pass --mirror URL") from None
    if size != f.size_bytes or h.hexdigest() != f.sha256:
        part.unlink(missing_ok=True)
        raise UserError(f"data fetch: {f.rel_path}: corrupt download from {url} ({size} bytes, sha256 "
                        f"{h.hexdigest()[:12]}...; expected {f.size_bytes} bytes, {f.sha256[:12]}...); removed")
    os.replace(part, dest)


def fetch(datasets: tuple[Dataset, ...], root: Path, mirror: str | None = None) -> FetchReport:
    """Make every file of `datasets` present under `root`; raises on the first download that
    fails (nothing already fetched is lost: rerun to continue)."""
    fetched, present, manual = [], [], []
    todo = []
    for f in (f for d in datasets for f in d.files):
        (present if state(root, f) == "present" else todo).append(f)
    for f in tqdm(todo, desc="data fetch", unit="file", file=sys.stderr, disable=not todo):
        url = _url(f, mirror)
        if url is None:
            manual.append(f.rel_path)
            continue
        _download(url, root / f.rel_path, f)
        fetched.append(f.rel_path)
    return FetchReport(tuple(fetched), tuple(f.rel_path for f in present), tuple(manual))
