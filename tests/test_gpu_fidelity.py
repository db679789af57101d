"""benchmarks/gpu_fidelity.py, the GPU fidelity study's command (harness/studies/gpu_fidelity.py):
its CPU path end to end (slow: the profile, the search, real runs of two ~20M models on one
worker), the same on one CUDA GPU in FP16 (gpu: skipped without one), and the pieces that
need no worker: one-line errors, float16 refused on the CPU, the one-worker profile grid,
the device's cluster spec, atomic outputs."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_fidelity.py"


def bench():
    """The command's module, loaded from its file (benchmarks/ need not be on sys.path)."""
    spec = importlib.util.spec_from_file_location("gpu_fidelity_cmd", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def command(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_fidelity", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout_s)


def check_outputs(out: Path, device: str, models: list[str]) -> tuple[dict, pd.DataFrame]:
    """What every run of the command must have written, whatever the device."""
    assert not list(out.glob(".*.tmp")), "a temporary file of an atomic write was left behind"
    doc = json.loads((out / "gpu_fidelity.json").read_text())
    table = pd.read_csv(out / "gpu_fidelity.csv")
    assert doc["status"] == "complete" and doc["settings"]["device"] == device
    prov = doc["provenance"]
    assert len(prov["git_commit"]) == 40 and prov["device"]["name"] and prov["device"]["torch"] == torch.__version__
    assert prov["transformers"] and prov["cluster"].endswith("-1w")
    assert list(doc["models"]) == models and set(table.model) == set(models)
    for m in models:                            # per-phase wall times
        secs = doc["seconds"][m]
        assert set(secs) == {"build_s", "profile_s", "search_s", "runs_s"} and all(v >= 0 for v in secs.values())
    assert doc["seconds"]["total_s"] >= sum(sum(doc["seconds"][m].values()) for m in models) - 1
    assert len(doc["rows"]) == len(table)
    ok = table[table.status == "ok"]
    assert len(ok) >= 2 * len(models)
    for col in ("real_throughput_seq_s", "sim_throughput_seq_s", "est_throughput_seq_s",
                "real_latency_p99len_s", "sim_latency_p99len_s", "est_latency_s", "speed_drift"):
        assert ok[col].map(math.isfinite).all() and (ok[col] > 0).all(), col
    errs = ok.sim_throughput_seq_s / ok.real_throughput_seq_s - 1
    assert (errs - ok.err_throughput).abs().max() < 1e-9          # the table's errors are its numbers'
    limit = doc["provenance"]["device_memory_bytes"]
    for m in models:
        rows = table[table.model == m]
        chosen = rows[rows.chosen]
        assert len(chosen) == 1 and chosen.status.iloc[0] == "ok"                     # the searched schedule ran
        assert 0 < chosen.memory_planned_bytes.iloc[0] <= limit and chosen.memory_ok.all()
        assert (rows.policy == "ft").any()
        (ratio,) = doc["models"][m]["ratios"]
        assert ratio["status"] == "ok" and ratio["ratio_real"] > 0 and ratio["ratio_sim"] > 0
        reasons = " ".join(n["reason"] for n in doc["models"][m]["notes"])
        assert "waa-c" in {n["policy"] for n in doc["models"][m]["notes"]} and reasons   # refused with why
        prof = pd.read_parquet(doc["models"][m]["profile"])
        assert set(prof.op) >= {"encode_layer", "decode_layer", "lm_head"}
        assert not set(prof.op) & {"allreduce", "p2p"} and (prof.tp_degree == 1).all()   # one worker
        assert (prof.dtype == doc["settings"]["dtype"]).all()
    assert doc["summary"]["runs"] == len(ok.drop_duplicates(["model", "candidate"]))
    assert doc["summary"]["chosen_memory_ok"] is True and doc["failed_models"] == {}
    return doc, table


@pytest.mark.slow
def test_cpu_path_profiles_searches_runs_and_compares(tmp_path) -> None:
    """The CI form: opt-20m and t5-20m, float32, one CPU worker, 24 requests (~35 s here)."""
    out = tmp_path / "gf"
    r = command("--device", "cpu", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "[gpu_fidelity" in r.stderr and "opt-20m: profiling" in r.stderr and "t5-20m: running" in r.stderr
    doc, _ = check_outputs(out, "cpu", ["opt-20m", "t5-20m"])
    assert doc["settings"]["dtype"] == "float32" and doc["skipped_models"] == []


@pytest.mark.gpu
def test_gpu_path_runs_fp16_on_one_gpu(tmp_path) -> None:
    """One GPU, FP16, the smallest GPU model in a short form (the full study: the command alone)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    out = tmp_path / "gf"
    r = command("--device", "cuda", "--models", "opt-125m", "--num-requests", "48", "--repeats", "1",
                "--out", str(out), "--no-progress", timeout_s=600)
    assert r.returncode == 0, r.stderr
    doc, table = check_outputs(out, "cuda", ["opt-125m"])
    assert doc["settings"]["dtype"] == "float16" and doc["provenance"]["device"]["cuda"]
    ok = table[table.status == "ok"]
    assert (ok.peak_allocated_bytes > 0).all() and (ok.peak_allocated_bytes <= doc["provenance"]["device_memory_bytes"]).all()


@pytest.mark.parametrize(("args", "start"), [
    (["--device", "cpu", "--models", "opt-999m"], "model: unknown 'opt-999m'"),
    (["--device", "cpu", "--models", "llama2-7b"], "model.family: 'llama' has no real engine"),
    (["--device", "tpu"], "--device: 'tpu' not in"),
    (["--device", "cpu", "--bounds", "p50"], "--bounds: 'p50' not in"),
    (["--device", "cpu", "--task", "Q"], "task: unknown 'Q'"),
])
def test_bad_input_is_one_line(args, start, tmp_path, capsys) -> None:
    assert bench().main([*args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr()
    line = err.err.strip()
    assert err.out == "" and "\n" not in line and line.startswith(f"gpu_fidelity: error: {start}"), line
    assert not (tmp_path / "x").exists()            # nothing written, no worker started


def test_cuda_unavailable_is_one_line_from_the_command(tmp_path) -> None:
    """`python -m benchmarks.gpu_fidelity` (a subprocess: the real entry point and exit code)."""
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    r = command("--device", "cuda", "--out", str(tmp_path / "x"), timeout_s=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().startswith("gpu_fidelity: error: --device: cuda is not available") and r.stderr.count("\n") == 1


def test_float16_is_cuda_only() -> None:
    """The runner's dtype: float16 on CUDA; on the CPU one line naming the field and the choices."""
    from harness.config import build_runner, compose
    from harness.engine.weights import DTYPES, check_dtype
    from harness.studies.gpu_fidelity import Settings
    assert DTYPES["float16"] is torch.float16
    check_dtype("float16", "cuda")
    with pytest.raises(UserError, match=r"^runner\.dtype: 'float16' must be one of float32, float64 on "
                                        r"runner\.device=cpu \(float16 needs runner\.device=cuda\)$"):
        check_dtype("float16", "cpu")
    with pytest.raises(UserError, match=r"^runner\.dtype: 'float16' must be one of float32, float64 on runner\.device=cpu"):
        build_runner(compose(["runner.dtype=float16"]))
    with pytest.raises(UserError, match=r"^runner\.dtype:"):
        Settings("cpu", ("opt-20m",), "T-cpu", "float16", {}, 8)
    assert build_runner(compose(["runner.dtype=float16", "runner.device=cuda", "runner.backend=nccl"])).dtype == "float16"


def test_one_worker_profile_has_no_collectives_and_keeps_its_dtype() -> None:
    from helpers import cpu_scenario

    from harness.profiler.bench import ProfileJob
    from harness.profiler.profile import build_grid, points
    from harness.specs.hardware import make_cluster
    from harness.studies.gpu_fidelity import precision_spec
    spec = cpu_scenario("model=opt-20m").model
    grid = bench().CPU_GRID
    g = build_grid(dict(grid), spec, make_cluster("cpu", 1, 1, name="cpu-1w"))
    one, two = points(g, spec, 1), points(g, spec, 2)
    assert {p.op for p in two} - {p.op for p in one} == {"allreduce", "p2p", "decode_pipe"}
    assert {p.tp_degree for p in one} == {1}
    assert ProfileJob(spec, tuple(one), 0, 1, ()).dtype == "float32"
    assert precision_spec(spec, "float16").dtype_bytes == 2 and precision_spec(spec, "float16").name == spec.name
    large = precision_spec(cpu_scenario("model=opt-1.3b").model, "float16")
    big = build_grid(dict(bench().GPU_GRID), large, make_cluster("h100", 1, 1))
    assert max(p.batch_size * p.length for p in points(big, large, 1) if p.op == "encode_layer") == 8192


def test_device_cluster_takes_the_gpus_own_memory() -> None:
    from harness.studies.gpu_fidelity import device_cluster
    h100 = device_cluster({"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 85_000_000_000}, "cuda")
    assert (h100.name, h100.num_gpus, h100.gpu.memory_bytes) == ("h100-1w", 1, 85_000_000_000)
    h200 = device_cluster({"name": "NVIDIA H200", "memory_bytes": 150_000_000_000}, "cuda")
    assert h200.name == "h200-1w" and h200.gpu.memory_bytes == 150_000_000_000
    assert device_cluster({}, "cpu").name == "cpu-1w"


def test_outputs_are_written_atomically(tmp_path, monkeypatch) -> None:
    """Each file is renamed over its target from a temporary beside it; a write that fails
    leaves the previous file whole and no temporary behind."""
    import harness.atomic as atomic
    mod = bench()
    replaced = []
    real = atomic.os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (replaced.append((Path(a), Path(b))), real(a, b)))
    table = pd.DataFrame({"model": ["m"], "real_throughput_seq_s": [1.5]})
    csv, js = mod.write_outputs(tmp_path, table, {"status": "partial", "x": 1})
    assert [b for _, b in replaced] == [csv, js]
    assert all(a.parent == b.parent and a.name.startswith(f".{b.name}.") and a.name.endswith(".tmp") for a, b in replaced)
    before = csv.read_text(), js.read_text()
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        mod.write_outputs(tmp_path, table.assign(model="n"), {"status": "complete"})
    assert (csv.read_text(), js.read_text()) == before and not list(tmp_path.glob(".*.tmp"))


def test_a_failing_model_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch) -> None:
    """A worker that dies on one model (CUDA out of memory, ...) ends that model only."""
    from harness.engine.pool import WorkerFailure
    from harness.studies import gpu_fidelity as G
    st = G.Settings("cpu", ("a", "b"), "T-cpu", "float32", {}, 8, progress=False)
    done = G.ModelResult("b", 1, pd.DataFrame(), [], [], {}, "", 0)

    def fake(name, *args):
        if name == "a":
            raise WorkerFailure("runner: worker 0 died (exit code -9); kept 0 messages", [])
        return done
    monkeypatch.setattr(G, "run_model", fake)
    lines = []
    res = G.run(st, {"a": None, "b": None}, tmp_path, lines.append)
    assert res.failed == {"a": "runner: worker 0 died (exit code -9); kept 0 messages"} and res.models == [done]
    assert any(line.startswith("a: failed: runner: worker 0 died") for line in lines)
    assert G.run(st, {"a": None, "b": None}, tmp_path, budget_s=-1).skipped == ["a", "b"]
