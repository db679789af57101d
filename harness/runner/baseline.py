"""ctranslate2 (FT-equivalent, ExeGPT §7 baseline) beside our own `ft` runner, same workload.

Both run FT semantics: batches of B in arrival order, prompts padded, every slot decoded to
the batch's longest output. Throughput here is requests / makespan (first encode to last
token) for both engines, since ctranslate2 returns a batch only when it is finished.
Precision of every number is a column: the torch runner runs float32 on 2 workers (TP 2);
ctranslate2 runs float32 and int8 (int8 weights, float32 activations) with 2 threads in one
process.
"""

from __future__ import annotations

import pandas as pd

from harness.cost_model.profiled import ProfiledCostModel
from harness.policies import Context, get_policy
from harness.profiler.disturbance import CpuMeter
from harness.runner.ct2 import convert, run_static
from harness.runner.pool import MiniCluster, WorkerPool, run_job
from harness.runner.run import execute, prompts_for
from harness.specs.hardware import ClusterSpec
from harness.specs.models import ModelSpec
from harness.workload import get_task
from harness.workload.streams import offline

TASK, BATCH = "T-cpu", 8


def compare_ct2(specs: dict[str, ModelSpec], cluster: ClusterSpec, mc: MiniCluster, profile_dir,
                ct2_dir, seed: int = 0, size: str = "full", progress: bool = True) -> pd.DataFrame:
    names = ["opt-20m"] if size == "tiny" else list(specs)
    n = 8 if size == "tiny" else 16
    wl, rows = get_task(TASK), []
    for m in names:
        spec = specs[m]
        reqs = offline(wl, n, seed)
        prompts = [list(p) for p in prompts_for(spec, reqs, seed)]
        plan = get_policy("ft").plan(Context(spec, cluster, wl, ProfiledCostModel(cluster, profile_dir)),
                                     {"batch_size": BATCH})
        with WorkerPool(mc) as pool:
            run_job(pool, "harness.runner.programs:prepare", (spec, seed, "float32"))
            res = execute(pool, plan, spec, reqs, seed, record_tokens=True, progress=progress, desc=f"torch ft {m}")
        rec = res.records
        makespan = float(rec.finish_s.max() - rec.encode_start_s.min())
        torch_tokens = [res.tokens.get(i) for i in range(n)]
        rows.append({"model": m, "engine": "torch (ours)", "precision": "float32", "workers_x_threads": "2x1 (TP 2)",
                     "batch_size": BATCH, "num_requests": n, "throughput_seq_s": n / makespan,
                     "makespan_s": makespan, "other_cores": res.disturbance.other_cores,
                     "tokens_equal_torch": 1.0})
        d = convert(spec, ct2_dir, seed=seed)
        for prec in ("float32", "int8"):
            with CpuMeter([]) as meter:
                r = run_static(spec, d, prompts, reqs, BATCH, prec, threads=mc.num_workers)
            same = sum(a == b for a, b in zip(r.tokens, torch_tokens, strict=True)) / n
            rows.append({"model": m, "engine": "ctranslate2", "precision": prec,
                         "workers_x_threads": f"1x{mc.num_workers}", "batch_size": BATCH, "num_requests": n,
                         "throughput_seq_s": r.throughput_seq_s, "makespan_s": r.wall_s,
                         "other_cores": meter.result.other_cores, "tokens_equal_torch": same})
    return pd.DataFrame(rows)
