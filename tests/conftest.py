"""Shared test helpers: where `../shared` data lives, and skipping when it is absent.

`../shared` (profiles, FT calibration CSV, traces) is never committed; tests that read it
call `requires_shared("traces/x.csv")` and are skipped, with the reason, where it is missing.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest


@cache
def _shared_dir() -> Path:
    """`paths.shared` of the default config: $HARNESS_SHARED_DIR, a checkout's `../shared`,
    else the user data directory `harness data fetch` fills (harness/data/locate.py)."""
    from harness.config import compose

    return Path(compose().paths.shared).resolve()


def requires_shared(*relpaths: str) -> Path:
    """The shared dir; skips the calling test if any of `relpaths` is missing under it."""
    root = _shared_dir()
    for rel in relpaths:
        if not (root / rel).exists():
            pytest.skip(f"needs {rel} under paths.shared: absent on this machine ({root / rel}; "
                        "`harness data fetch` gets it)")
    return root


@pytest.fixture
def shared_dir() -> Path:
    return _shared_dir()
