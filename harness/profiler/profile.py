"""`harness profile`: the grid, its validation, and the profile table (ExeGPT §2 XProfiler).

The table's place and schema belong to the cost model that reads it
(harness/cost_model/profiled.py: `profile_path`, `PROFILE_OPS`); this module times its points
and writes it. Everything is validated before the first timing: a bad grid or model is a
one-line error.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from harness.atomic import write_frame
from harness.engine.pool import MiniCluster, WorkerPool, run_job
from harness.engine.weights import check_dtype
from harness.errors import UserError, check
from harness.profiler.bench import ATTEMPTS, Point, ProfileJob, table_rows
from harness.specs.hardware import ClusterSpec
from harness.specs.models import ModelSpec

ENGINE_FAMILIES = ("t5", "opt", "gpt")
MAX_ENCODE_TOKENS = 512     # packed encode points above this many tokens are skipped (default)


@dataclass(frozen=True, slots=True)
class Grid:
    batch_sizes: tuple[int, ...]
    encode_lengths: tuple[int, ...]
    decode_contexts: tuple[int, ...]
    input_lengths: tuple[int, ...]
    tp_degrees: tuple[int, ...]
    message_bytes: tuple[int, ...]
    warmup: int
    repeats: int
    max_encode_tokens: int = MAX_ENCODE_TOKENS   # encode / cross_kv points with b * L above it are skipped


def _ints(d: dict, key: str, low: int = 1) -> tuple[int, ...]:
    v = d.get(key)
    check(isinstance(v, list | tuple) and len(v) > 0, f"runner.profile.{key}",
          f"must be a non-empty list of integers >= {low}, got {v!r}")
    for x in v:
        check(isinstance(x, int) and not isinstance(x, bool) and x >= low, f"runner.profile.{key}",
              f"must be a non-empty list of integers >= {low}, got {v!r}")
    return tuple(sorted(set(v)))


def build_grid(d: dict, model: ModelSpec, cluster: ClusterSpec) -> Grid:
    """Validated `runner.profile.*`; errors name the key and the allowed values."""
    check(model.family in ENGINE_FAMILIES, "model.family",
          f"'{model.family}' has no real engine; valid: {', '.join(ENGINE_FAMILIES)} (e.g. model=opt-20m)")
    need = model.num_params() * 4
    if need >= cluster.gpu.memory_bytes:
        raise UserError(f"model: {model.name} needs {need / 1e9:.1f} GB of float32 weights, more than a "
                        f"{cluster.gpu.name} worker's {cluster.gpu.memory_bytes / 1e9:.1f} GB; use a small "
                        "model (harness/conf/model/*-20m, *-100m)")
    allowed = {"out_dir", *Grid.__dataclass_fields__}
    extra = sorted(set(d) - allowed)
    check(not extra, "runner.profile", f"unknown key(s) {', '.join(extra)}; valid: {', '.join(sorted(allowed))}")
    g = Grid(_ints(d, "batch_sizes"), _ints(d, "encode_lengths"), _ints(d, "decode_contexts"),
             _ints(d, "input_lengths"), _ints(d, "tp_degrees"), _ints(d, "message_bytes", 4),
             int(d.get("warmup", 2)), int(d.get("repeats", 7)), int(d.get("max_encode_tokens", MAX_ENCODE_TOKENS)))
    legal = [t for t in range(1, cluster.num_gpus + 1)
             if model.num_heads % t == 0 and model.ffn_size % t == 0 and not t & (t - 1)]
    for t in g.tp_degrees:
        check(t in legal, "runner.profile.tp_degrees",
              f"{t} is not a TP degree of {model.name} on {cluster.name}; valid: {legal}")
    check(g.warmup >= 0, "runner.profile.warmup", "must be >= 0")
    check(g.repeats >= 1, "runner.profile.repeats", "must be >= 1")
    check(min(g.decode_contexts) >= 1, "runner.profile.decode_contexts", "must be >= 1")
    check(g.max_encode_tokens >= min(g.batch_sizes) * min(g.encode_lengths), "runner.profile.max_encode_tokens",
          f"{g.max_encode_tokens} leaves no encode point (smallest: {min(g.batch_sizes) * min(g.encode_lengths)} tokens)")
    return g


def points(g: Grid, model: ModelSpec, workers: int = 2) -> list[Point]:
    """The grid's points; with one worker (a one-GPU cluster: no TP, no pipeline, no
    hand-over) there is nothing to communicate with, so no allreduce / p2p points."""
    out = []
    inputs = g.input_lengths if model.is_encoder_decoder else (0,)
    for tp in g.tp_degrees:
        for b in g.batch_sizes:
            out += [Point("encode_layer", tp, b, n) for n in g.encode_lengths if b * n <= g.max_encode_tokens]
            out += [Point(op, tp, b, c, i) for op in ("decode_layer", "kv_select", "kv_join")
                    for c in g.decode_contexts for i in inputs]
            if model.is_encoder_decoder:
                out += [Point("cross_kv", tp, b, n) for n in g.encode_lengths if b * n <= g.max_encode_tokens]
    out += [Point("lm_head", 1, b) for b in g.batch_sizes]
    if workers >= 2:
        if 1 in g.tp_degrees:            # a stage of a 2-stage pipeline (RRA at TP 1 on two workers)
            out += [Point("decode_pipe", 1, b, c, i) for b in g.batch_sizes for c in g.decode_contexts for i in inputs]
        out += [Point("allreduce", 2, message_bytes=m) for m in g.message_bytes]
        out += [Point("p2p", 1, message_bytes=m) for m in g.message_bytes]
    return out


class ProfileSession:
    """One profile taken in parts: `take(k)` times k more rounds of the whole grid (each part
    after its own warm-up pass) on a warm pool, `write` aggregates every round so far into
    the table. `harness profile` takes all rounds in one part; `harness fidelity` spreads
    them between a model's configuration runs, so the profile's medians cover the same
    minutes of this VM's drifting speed as the runs they predict (docs/real-execution.md).
    One worker (a one-GPU cluster) profiles the layers at TP 1 and no communication."""

    def __init__(self, model: ModelSpec, cluster: ClusterSpec, mc: MiniCluster, grid: Grid,
                 pool: Callable[[], WorkerPool], seed: int = 0, progress: bool = True,
                 dtype: str = "float32", attempts: int = ATTEMPTS) -> None:
        """`pool`: gives the warm pool to time on (a fidelity run rebuilds it after a failure);
        `dtype`: the runner's precision; `attempts`: runs of a disturbed round at most."""
        check(mc.num_workers >= 1, "cluster.num_gpus", "the profiler needs >= 1 worker")
        check(max(grid.tp_degrees) <= mc.num_workers, "runner.profile.tp_degrees",
              f"TP {max(grid.tp_degrees)} needs more than the mini-cluster's {mc.num_workers} worker(s)")
        check_dtype(dtype, mc.device)
        self.model, self.cluster, self.mc, self.grid, self.pool = model, cluster, mc, grid, pool
        self.seed, self.progress, self.seconds = seed, progress, 0.0
        self.dtype, self.attempts = dtype, attempts
        self.points = tuple(points(grid, model, mc.num_workers))
        self.samples: list[list[float]] = [[] for _ in self.points]
        self.others: list[tuple[float, bool]] = []
        self.remeasured = False

    @property
    def rounds(self) -> int:
        return len(self.others)

    def take(self, k: int) -> None:
        bar = tqdm(total=k, desc=f"profile {self.model.name} ({len(self.points)} points, rounds "
                   f"{self.rounds + 1}-{self.rounds + k} of {self.grid.repeats})", unit="round",
                   disable=not self.progress, leave=False)

        def on_msg(rank, m):
            if m[0] == "progress":
                bar.n = m[1]
                bar.refresh()
        t0, pool = time.perf_counter(), self.pool()
        job = ProfileJob(self.model, self.points, self.grid.warmup, k, tuple(pool.pids.values()),
                         self.seed, round0=self.rounds, dtype=self.dtype, attempts=self.attempts)
        out = run_job(pool, "harness.profiler.bench:profile_job", job, on_msg)[0]
        bar.close()
        self.seconds += time.perf_counter() - t0
        for mine, got in zip(self.samples, out["samples"], strict=True):
            mine += got
        self.others += out["others"]
        self.remeasured = self.remeasured or out["remeasured"]

    def write(self, out: Path) -> pd.DataFrame:
        """The table of every round so far, written atomically to `out`."""
        import torch
        df = pd.DataFrame(table_rows(self.points, self.samples, self.others, self.remeasured))
        df.insert(0, "model", self.model.name)
        df.insert(1, "cluster", self.cluster.name)
        df["device"] = f"{self.mc.device}:{platform.processor() or platform.machine()}"
        df["threads_per_worker"] = self.mc.threads_per_worker
        df["dtype"] = self.dtype
        df["torch"] = torch.__version__
        write_frame(df, out)
        return df


def run_profile(model: ModelSpec, cluster: ClusterSpec, mc: MiniCluster, grid: Grid,
                out: Path, seed: int = 0, pool: WorkerPool | None = None, progress: bool = True) -> pd.DataFrame:
    """Time every point on the mini-cluster (all rounds at once) and write the table to `out`."""
    own = pool is None
    pool = pool or WorkerPool(mc)
    try:
        session = ProfileSession(model, cluster, mc, grid, lambda: pool, seed, progress)
        session.take(grid.repeats)
        return session.write(out)
    finally:
        if own:
            pool.close()

