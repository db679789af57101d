"""Atomic file writes: the one way the harness writes a file.

Every output is written to a temporary file in the target's folder and renamed over the
target (`os.replace`, atomic on POSIX), so an interrupted run never leaves a half-written
table, and a reader sees either the old file or the new one. The folder is created.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name the writer creates itself (so the file gets the umask's mode, not mkstemp's 0600).
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path | str, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: Path | str, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_frame(df, path: Path | str) -> Path:
    """A pandas DataFrame as `.csv` or `.parquet` (by the suffix), without its index."""
    path = Path(path)
    writers = {".csv": df.to_csv, ".parquet": df.to_parquet}
    if path.suffix not in writers:
        raise ValueError(f"write_frame: '{path.suffix}' not in {', '.join(writers)}")
    with atomic_path(path) as tmp:
        writers[path.suffix](tmp, index=False)
    return path


def save_figure(fig, path: Path | str, dpi: int = 120) -> Path:
    """A matplotlib figure in the format its suffix names (png, pdf, svg)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=dpi, bbox_inches="tight")
    return path
