"""What every result row carries besides its metrics: provenance and the config hash.

A job's identity is the hash of its resolved config without machine-specific keys (`paths`)
and without Hydra's own settings: the same scenario, search settings, cost model and seed
give the same hash on every machine, so a sweep can skip what it already computed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

# Not part of a job's identity: machine/launcher-specific keys, and the experiment's name (the
# same scenario in two experiments is one job).
VOLATILE_KEYS = ("paths", "hydra", "runs_dir", "experiment_name")
REPO = Path(__file__).resolve().parents[2]


def finite(x: float) -> float | None:
    """inf/nan -> None (JSON has no Infinity); anything else unchanged."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def config_hash(cfg: dict) -> str:
    """sha256 (16 hex) of the canonical JSON of `cfg` minus VOLATILE_KEYS. A model read from a
    Hugging Face config.json (`model.hf_config`) counts by the file's content, not its path:
    an edited file is a new job, the same file elsewhere the same one."""
    core = {k: v for k, v in cfg.items() if k not in VOLATILE_KEYS}
    model = core.get("model")
    if isinstance(model, dict) and model.get("hf_config"):
        from harness.specs.hf_config import config_file
        digest = hashlib.sha256(config_file(model["hf_config"]).read_bytes()).hexdigest()
        core["model"] = {**model, "hf_config": f"sha256:{digest}"}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


@lru_cache(maxsize=1)
def provenance() -> dict:
    """git commit + dirty flag (tracked files only; runs/ is ignored), machine, Python.
    `HARNESS_GIT_COMMIT`/`HARNESS_GIT_DIRTY` override, for launchers without the repository."""
    commit = os.environ.get("HARNESS_GIT_COMMIT") or _git("rev-parse", "HEAD") or "unknown"
    dirty_env = os.environ.get("HARNESS_GIT_DIRTY")
    if dirty_env is not None:
        dirty = dirty_env == "1"
    else:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else True
    return {"git_commit": commit, "git_dirty": dirty,
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()}cpu",
            "python": platform.python_version()}
