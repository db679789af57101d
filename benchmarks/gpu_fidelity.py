"""The GPU fidelity study in one command: profile -> search -> real run -> measured vs simulated.

On ONE GPU (the default; FP16, OPT-125M / 350M / 1.3B architectures with random weights,
task T, 96 requests per run; planned to take under 8 minutes on an H100):
    .venv/bin/python -m benchmarks.gpu_fidelity
The CPU path (CI, tests/test_gpu_fidelity.py; float32 ~20M models, a tiny grid, few requests):
    .venv/bin/python -m benchmarks.gpu_fidelity --device cpu
Writes, atomically, after every model: <out>/gpu_fidelity.csv (one row per candidate x bound:
measured, discrete-event-simulated and search-estimated throughput and p99-length latency, their
errors, planned memory vs the device's) and <out>/gpu_fidelity.json (provenance, settings,
per-phase wall times, searched-vs-FT ratios, summary, notes); the profiles go to
<out>/profiles/. The study itself: harness/studies/gpu_fidelity.py; docs/real-execution.md.
Bad input (unknown model, unavailable device, float16 on the CPU) is a one-line error, exit 2;
a model whose worker fails (out of memory, ...) is listed in failed_models, the others run, exit 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from harness.atomic import write_frame, write_text
from harness.errors import UserError

# Per device: models, task, precision, profile grid, requests per run, worker threads and timeout.
GPU_GRID = {"batch_sizes": [1, 4, 16, 48], "encode_lengths": [32, 128, 512], "decode_contexts": [16, 128, 512],
            "input_lengths": [32, 256], "tp_degrees": [1], "message_bytes": [1024], "warmup": 2, "repeats": 3,
            "max_encode_tokens": 8192}   # every decode point's KV is held at once: ~27 GB for opt-1.3b
CPU_GRID = {"batch_sizes": [1, 4, 16], "encode_lengths": [4, 16, 32], "decode_contexts": [4, 32, 64],
            "input_lengths": [4, 32], "tp_degrees": [1], "message_bytes": [1024], "warmup": 1, "repeats": 1}
PRESETS = {
    "cuda": {"models": ("opt-125m", "opt-350m", "opt-1.3b"), "task": "T", "dtype": "float16", "grid": GPU_GRID,
             "num_requests": 96, "batches_per_run": 4, "threads_per_worker": 8, "timeout_s": 300.0, "budget_s": 420.0},
    "cpu": {"models": ("opt-20m", "t5-20m"), "task": "T-cpu", "dtype": "float32", "grid": CPU_GRID,
            "num_requests": 24, "batches_per_run": 2, "threads_per_worker": 1, "timeout_s": 120.0, "budget_s": math.inf},
}
OUT_DIR = Path("runs") / "gpu_fidelity"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_fidelity", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (one GPU, the default) | cpu (the CI path)")
    p.add_argument("--models", help="comma-separated harness/conf/model names (default: the device's preset)")
    p.add_argument("--task", help="workload task (default: T on cuda, T-cpu on cpu)")
    p.add_argument("--num-requests", type=int, help="requests per run (default: 96 on cuda, 24 on cpu)")
    p.add_argument("--bounds", default="p70", help="comma-separated latency bounds: p10, p30, p70 (default p70)")
    p.add_argument("--repeats", type=int, help="profile rounds per point (default: 3 on cuda, 1 on cpu)")
    p.add_argument("--budget-s", type=float, help="start no further model after this many seconds "
                                                  "(default: 420 on cuda, none on cpu)")
    p.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder (default {OUT_DIR})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars (the progress lines stay)")
    return p.parse_args(argv)


def settings(a: argparse.Namespace):
    """Validated Settings and the models' specs, before any worker starts (one-line errors)."""
    import torch

    from harness.config import build_scenario, compose
    from harness.profiler.profile import build_grid
    from harness.studies.gpu_fidelity import Settings, device_cluster, precision_spec
    if a.device not in PRESETS:
        raise UserError(f"--device: '{a.device}' not in {', '.join(PRESETS)}")
    if a.device == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device: cuda is not available here (torch {torch.__version__}, "
                        "torch.cuda.is_available() is false); use --device cpu")
    pre = PRESETS[a.device]
    grid = dict(pre["grid"]) | ({"repeats": a.repeats} if a.repeats is not None else {})
    st = Settings(a.device, tuple(m.strip() for m in a.models.split(",") if m.strip()) if a.models else pre["models"],
                  a.task or pre["task"], pre["dtype"], grid, a.num_requests or pre["num_requests"],
                  bounds=tuple(b.strip() for b in a.bounds.split(",") if b.strip()), batches_per_run=pre["batches_per_run"],
                  threads_per_worker=pre["threads_per_worker"], timeout_s=pre["timeout_s"], seed=a.seed,
                  progress=not a.no_progress)
    for b in st.bounds:
        if b not in ("p10", "p30", "p70"):
            raise UserError(f"--bounds: '{b}' not in p10, p30, p70")
    specs = {m: build_scenario(compose([f"model={m}"])).model for m in st.models}
    guess = device_cluster({"name": "h100", "memory_bytes": 80 * 2**30}, a.device)   # the grid's checks
    for spec in specs.values():
        build_grid(dict(grid), precision_spec(spec, st.dtype), guess)
    return st, specs


def clean(x):
    """JSON-ready: NaN / inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def report(res, st, a, t0: float, started: str, done: bool) -> dict:
    """The JSON document: provenance, settings, per-phase wall times, ratios, summary, rows."""
    from harness.results.record import provenance
    from harness.studies.gpu_fidelity import summary
    table = res.table
    return clean({
        "status": "complete" if done else "partial",
        "provenance": {**provenance(), "started_utc": started, "command": " ".join(sys.argv),
                       "device": res.device, "transformers": version("transformers"),
                       "cluster": res.cluster.name if res.cluster else None,
                       "device_memory_bytes": res.cluster.gpu.memory_bytes if res.cluster else None},
        "settings": {"device": st.device, "models": list(st.models), "task": st.task, "dtype": st.dtype,
                     "num_requests": st.num_requests, "bounds": list(st.bounds), "policies": list(st.policies),
                     "batch_cap": st.decide_settings("").batch_cap, "grid": st.grid, "seed": st.seed,
                     "attempts": st.attempts, "threads_per_worker": st.threads_per_worker},
        "seconds": {**{m.model: m.seconds for m in res.models}, "total_s": round(time.perf_counter() - t0, 1)},
        "models": {m.model: {"params": m.params, "profile": m.profile, "profile_points": m.profile_points,
                             "ratios": m.ratios, "notes": m.notes} for m in res.models},
        "skipped_models": res.skipped,
        "failed_models": res.failed,
        "summary": summary(table, res.models),
        "rows": table.to_dict(orient="records"),
        "files": {"csv": str(a.out / "gpu_fidelity.csv"), "json": str(a.out / "gpu_fidelity.json"),
                  "profiles": str(a.out / "profiles")},
    })


def write_outputs(out: Path, table, doc: dict) -> tuple[Path, Path]:
    """The CSV and the JSON, each written to a temporary file beside it and renamed over it
    (harness.atomic): a reader never sees half a file, an interrupted write keeps the old one."""
    return (write_frame(table, out / "gpu_fidelity.csv"),
            write_text(out / "gpu_fidelity.json", json.dumps(doc, indent=2) + "\n"))


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    a = parse(sys.argv[1:] if argv is None else argv)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    def log(msg: str) -> None:
        print(f"[gpu_fidelity {time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    try:
        from harness.studies import gpu_fidelity as G
        st, specs = settings(a)
        budget = a.budget_s if a.budget_s is not None else PRESETS[a.device]["budget_s"]
        log(f"{st.device}, {st.dtype}: {', '.join(st.models)} on task {st.task}, {st.num_requests} requests per run")

        def write(res, done: bool = False) -> dict:
            doc = report(res, st, a, t0, started, done)
            write_outputs(a.out, res.table, doc)
            return doc

        res = G.run(st, specs, a.out / "profiles", log, on_model=write, budget_s=budget)
        s = write(res, done=True)["summary"]
    except UserError as e:
        print(f"gpu_fidelity: error: {e}", file=sys.stderr)
        return 2
    pct = lambda x: "n/a" if x is None else f"{x:.1%}"       # noqa: E731
    num = lambda x: "n/a" if x is None else f"{x:.2f}x"      # noqa: E731
    log(f"wrote {a.out / 'gpu_fidelity.json'} and .csv: {s['runs']} runs; discrete-event median |error| "
        f"throughput {pct(s['median_abs_err_throughput'])}, latency {pct(s['median_abs_err_latency'])}; searched/FT "
        + "; ".join(f"{r['model']} {r['bound']} real {num(r.get('ratio_real'))} sim {num(r.get('ratio_sim'))}"
                    for r in s["ratios"]))
    if res.failed:
        log(f"failed: {', '.join(res.failed)} (gpu_fidelity.json, failed_models)")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
