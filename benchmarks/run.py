"""Run every `benchmarks/bench_*.py` (each exposes `run() -> dict`) and record the results.

Writes `runs/bench/results.json`: `{"machine": {...}, "benchmarks": {name: result}}`, where a
result is the dict `run()` returned plus `wall_s`; a benchmark that raises (or returns a
non-dict) becomes `{"error": "...", "wall_s": ...}`, the others still run and the
exit code is 1.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_PATH = ROOT / "runs" / "bench" / "results.json"


def discover() -> list[str]:
    """Names (`bench_x`) of the benchmark modules in this package, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if m.name.startswith("bench_"))


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def machine() -> dict:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "git_commit": git_commit()}


def run_one(name: str) -> dict:
    """Import and run one benchmark; failures become an `error` entry, never an exception."""
    start = time.perf_counter()
    try:
        result = importlib.import_module(f"benchmarks.{name}").run()
        if not isinstance(result, dict):
            raise TypeError(f"run() returned {type(result).__name__}, expected dict")
    except Exception as e:  # a failing benchmark is recorded, not fatal
        traceback.print_exc()
        result = {"error": f"{type(e).__name__}: {e}"}
    return {**result, "wall_s": round(time.perf_counter() - start, 3)}


def main() -> int:
    names = discover()
    results = {}
    for name in names:
        print(f"==> {name}", flush=True)
        results[name] = run_one(name)
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    OUT_PATH.write_text(json.dumps({"machine": machine(), "benchmarks": results}, indent=2) + "\n")
    for name, r in results.items():
        status = f"error: {r['error']}" if "error" in r else "ok"
        print(f"{name:<32} {r['wall_s']:>9.3f} s  {status}")
    failed = sum("error" in r for r in results.values())
    print(f"{len(names)} benchmark(s), {failed} failed; wrote {OUT_PATH.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
