"""The mini-cluster: N worker processes joined by `torch.distributed` (gloo on CPU, NCCL on
CUDA), each a "GPU" of the cluster spec (ExeGPT §7 clusters, scaled to this machine).

The coordinator (the calling process) sends every worker the same job ("module:function" +
payload); workers run it SPMD and stream messages back (records, progress). A worker that
dies, raises, or stays silent for `timeout_s` ends the job: the pool is torn down and
`WorkerFailure` carries every message received so far, so what was measured is kept.
"""

from __future__ import annotations

import importlib
import os
import queue
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch.multiprocessing as mp

from harness.errors import UserError, check

BACKENDS = ("gloo", "nccl")
SHARED_COUNTERS = 8
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True, slots=True)
class MiniCluster:
    """`runner.*` settings of harness/conf/runner/: how the cluster's workers are started."""

    num_workers: int                 # processes = the cluster's "GPUs"
    threads_per_worker: int = 1      # torch intra-op threads per worker
    backend: str = "gloo"
    device: str = "cpu"
    timeout_s: float = 120.0         # a worker silent this long ends the job

    def __post_init__(self) -> None:
        check(self.num_workers >= 1, "cluster.num_gpus", f"must be >= 1, got {self.num_workers}")
        check(self.threads_per_worker >= 1, "runner.threads_per_worker", "must be >= 1")
        check(self.backend in BACKENDS, "runner.backend", f"'{self.backend}' not in {', '.join(BACKENDS)}")
        check(self.device in DEVICES, "runner.device", f"'{self.device}' not in {', '.join(DEVICES)}")
        check(self.timeout_s > 0, "runner.timeout_s", "must be > 0")


class WorkerFailure(UserError):
    """A worker died, raised or hung; `messages` holds what was received before."""

    def __init__(self, message: str, messages: list) -> None:
        super().__init__(message)
        self.messages = messages


@dataclass(slots=True)
class WorkerContext:
    """What a job function sees on a worker."""

    rank: int
    world: int
    cluster: MiniCluster
    emit: Callable[[Any], None]       # stream a message to the coordinator
    cache: dict                       # survives across jobs (weights, groups)
    shared: Any = None                # int64 counters in shared memory, zeroed per job (gloo
                                      # cannot poll a pending receive: WAA's "batch ready" flag)

    @property
    def device(self) -> str:
        if self.cluster.device == "cuda":
            import torch
            return f"cuda:{self.rank % torch.cuda.device_count()}"
        return "cpu"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_main(rank: int, mc: MiniCluster, port: int, inbox, outbox, shared) -> None:
    os.environ.update(OMP_NUM_THREADS=str(mc.threads_per_worker), MKL_NUM_THREADS=str(mc.threads_per_worker))
    import torch
    import torch.distributed as dist
    torch.set_num_threads(mc.threads_per_worker)
    ctx = WorkerContext(rank, mc.num_workers, mc, lambda m: outbox.put(("msg", rank, m)), {}, shared)
    if mc.device == "cuda":
        torch.cuda.set_device(ctx.device)
        torch.set_default_device(ctx.device)
    dist.init_process_group(mc.backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=mc.num_workers, timeout=timedelta(seconds=mc.timeout_s))
    outbox.put(("ready", rank, os.getpid()))
    while (job := inbox.get()) is not None:
        target, payload = job
        try:
            module, _, fn = target.partition(":")
            with torch.inference_mode():
                result = getattr(importlib.import_module(module), fn)(ctx, payload)
            outbox.put(("done", rank, result))
        except BaseException:
            outbox.put(("error", rank, traceback.format_exc(limit=8)))
            break
    dist.destroy_process_group()


# Workers keep freed memory instead of returning it to the kernel: KV caches are rewritten
# every iteration (compaction, joins), and with glibc's defaults tensors above its (moving)
# mmap threshold came back from the kernel as fresh pages every time. Measured here (one
# process, opt-20m, 8 layers, join of 32 sequences x 96 cached tokens): 8.7 ms per layer by
# default, 2.8 ms with these settings, and page faults made the cost jump nonlinearly
# between neighbouring sizes (the profile could not interpolate it). Profiles and runs both
# use the pool, so both see the same allocator. 32 MiB is glibc's largest mmap threshold.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 36),
              "MALLOC_TOP_PAD_": str(256 << 20)}


class WorkerPool:
    """`with WorkerPool(mc) as pool: for msg in pool.run("mod:fn", payload): ...`"""

    def __init__(self, mc: MiniCluster, start_timeout_s: float = 120.0) -> None:
        self.mc = mc
        ctx = mp.get_context("spawn")
        port = _free_port()
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(mc.num_workers)]
        self.shared = ctx.Array("q", SHARED_COUNTERS, lock=False)
        self.procs = [ctx.Process(target=_worker_main, args=(r, mc, port, self.inboxes[r], self.outbox,
                                                             self.shared),
                                  daemon=True, name=f"harness-worker-{r}") for r in range(mc.num_workers)]
        saved = {k: os.environ.get(k) for k in MALLOC_ENV}
        os.environ.update(MALLOC_ENV)           # read by glibc when a worker starts (spawn)
        try:
            for p in self.procs:
                p.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.pids: dict[int, int] = {}
        deadline = time.monotonic() + start_timeout_s
        while len(self.pids) < mc.num_workers:
            what, rank, value = self._get(deadline, [])
            if what != "ready":
                self.close()
                raise WorkerFailure(f"runner: worker {rank} failed to start: {value}", [])
            self.pids[rank] = value

    def _get(self, deadline: float, got: list):
        while True:
            try:
                return self.outbox.get(timeout=0.2)
            except queue.Empty:
                dead = [(r, p.exitcode) for r, p in enumerate(self.procs) if not p.is_alive()]
                if dead:
                    self.close(graceful=False)
                    r, code = dead[0]
                    raise WorkerFailure(f"runner: worker {r} died (exit code {code}); kept "
                                        f"{len(got)} messages", got) from None
                if time.monotonic() > deadline:
                    self.close(graceful=False)
                    raise WorkerFailure(f"runner: no message from the workers for "
                                        f"{self.mc.timeout_s:.0f} s (runner.timeout_s): a worker hangs; "
                                        f"kept {len(got)} messages", got) from None

    def run(self, target: str, payload: Any) -> Iterator[tuple[int, Any]]:
        """Start `target(ctx, payload)` on every worker; yield (rank, message) as they arrive,
        then ("result", [per-rank results]) as the last item."""
        for i in range(SHARED_COUNTERS):
            self.shared[i] = 0
        for q in self.inboxes:
            q.put((target, payload))
        results: dict[int, Any] = {}
        got: list = []
        while len(results) < self.mc.num_workers:
            what, rank, value = self._get(time.monotonic() + self.mc.timeout_s, got)
            if what == "msg":
                got.append((rank, value))
                yield rank, value
            elif what == "done":
                results[rank] = value
            elif what == "error":
                self.close(graceful=False)
                last = value.strip().splitlines()[-1]
                raise WorkerFailure(f"runner: worker {rank} failed: {last}; kept {len(got)} messages "
                                    f"(traceback: {' | '.join(value.strip().splitlines()[-4:-1])})", got)
        yield -1, [results[r] for r in range(self.mc.num_workers)]

    def close(self, graceful: bool = True) -> None:
        """Stop the workers: ask them to exit (graceful), then kill what is left after 1 s."""
        if graceful:
            for q in self.inboxes:
                try:
                    q.put_nowait(None)
                except Exception:   # noqa: BLE001 - best effort on a broken queue
                    pass
            deadline = time.monotonic() + 1.0
            for p in self.procs:
                p.join(timeout=max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.kill()
        for p in self.procs:
            p.join(timeout=2.0)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_job(pool: WorkerPool, target: str, payload: Any,
            on_message: Callable[[int, Any], None] | None = None) -> list:
    """Run a job to completion; per-rank results."""
    for rank, msg in pool.run(target, payload):
        if rank == -1:
            return msg
        if on_message:
            on_message(rank, msg)
    raise AssertionError("unreachable")
