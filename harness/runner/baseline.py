"""ctranslate2 (FT-equivalent, ExeGPT §7 baseline) beside our own `ft` runner, same workload.

Both run FT semantics: batches of B in arrival order, prompts padded, every slot decoded to
the batch's longest output, on the same requests (the torch row is the fidelity run of the
FT configuration at batch B, reused rather than run again). Throughput here is requests / makespan (first encode to last
token) for both engines, since ctranslate2 returns a batch only when it is finished.
Precision of every number is a column: the torch runner runs float32 on 2 workers (TP 2);
ctranslate2 runs float32 and int8 (int8 weights, float32 activations) with 2 threads in one
process.
"""

from __future__ import annotations

from harness.profiler.disturbance import CpuMeter
from harness.runner.ct2 import convert, run_static
from harness.runner.run import RunResult, prompts_for
from harness.specs.models import ModelSpec
from harness.workload.streams import Requests

TASK, BATCH = "T-cpu", 8


def compare_ct2(spec: ModelSpec, torch_run: RunResult, reqs: Requests, ct2_dir, seed: int = 0,
                threads: int = 2) -> list[dict]:
    """Rows for one model: our `ft` run (the fidelity configuration FT, batch BATCH, on TASK:
    `harness.studies.fidelity.is_ct2_reference`, tokens recorded) and ctranslate2 float32 / int8
    on the same requests."""
    n = len(reqs)
    rec = torch_run.records
    makespan = float(rec.finish_s.max() - rec.encode_start_s.min())
    torch_tokens = [torch_run.tokens.get(i) for i in range(n)]
    rows = [{"model": spec.name, "engine": "torch (ours)", "precision": "float32",
             "workers_x_threads": f"{threads}x1 (TP {threads})", "batch_size": BATCH, "num_requests": n,
             "throughput_seq_s": n / makespan, "makespan_s": makespan,
             "other_cores": torch_run.disturbance.other_cores, "tokens_equal_torch": 1.0}]
    prompts = [list(p) for p in prompts_for(spec, reqs, seed)]
    d = convert(spec, ct2_dir, seed=seed)
    for prec in ("float32", "int8"):
        with CpuMeter([]) as meter:
            r = run_static(spec, d, prompts, reqs, BATCH, prec, threads=threads)
        same = sum(a == b for a, b in zip(r.tokens, torch_tokens, strict=True)) / n
        rows.append({"model": spec.name, "engine": "ctranslate2", "precision": prec,
                     "workers_x_threads": f"1x{threads}", "batch_size": BATCH, "num_requests": n,
                     "throughput_seq_s": r.throughput_seq_s, "makespan_s": r.wall_s,
                     "other_cores": meter.result.other_cores, "tokens_equal_torch": same})
    return rows
