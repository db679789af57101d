"""Where the measured data live when `paths.shared` is not set.

In order: `$HARNESS_SHARED_DIR`; a checkout's sibling `../shared` (the developers' layout);
else the user data directory of this platform (platformdirs, e.g. ~/.local/share/exegpt-harness
on Linux), where `harness data fetch` stores what it downloads.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

APP_NAME = "exegpt-harness"
CHECKOUT = Path(__file__).resolve().parents[2]      # the repository root when run from a checkout


def checkout_shared_dir() -> Path | None:
    """`<repo>/../shared` when this package runs from a checkout that has one, else None."""
    sibling = CHECKOUT.parent / "shared"
    return sibling if (CHECKOUT / "pyproject.toml").is_file() and sibling.is_dir() else None


def default_shared_dir() -> Path:
    """The default of `paths.shared` (see the module docstring)."""
    env = os.environ.get("HARNESS_SHARED_DIR")
    if env:
        return Path(env)
    return checkout_shared_dir() or Path(user_data_dir(APP_NAME, appauthor=False))
