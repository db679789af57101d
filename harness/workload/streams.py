"""Request streams as structs of arrays: what a simulator or runner plays (ExeGPT §5, §7).

The paper has no arrival process (ExeGPT §5: saturated supply, `offline`); `poisson` and
`replay` (a real trace's own arrival times) go beyond it (ExeGPT §9: no queueing model).
Seeds are explicit: input lengths, output lengths and arrivals each come from their own child
of `np.random.SeedSequence(seed)`, so one never shifts the draws of another, the first `k`
requests of a stream do not depend on its length, and `offline` and `poisson` with the same
seed give the same lengths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from harness.errors import UserError, check, unknown_name
from harness.workload.tasks import Workload
from harness.workload.traces import Trace

STREAM_KINDS = ("offline", "poisson", "replay")


@dataclass(frozen=True, slots=True)
class Request:
    request_id: int
    arrival_s: float      # seconds from the start of the stream
    input_len: int        # tokens (encoder / prompt)
    output_len: int       # tokens to generate (decoding runs exactly this many; ExeGPT §7)


@dataclass(frozen=True, slots=True, eq=False)
class Requests:
    """A stream of requests in arrival order; request `i` has id `first_id + i`."""

    arrival_s: np.ndarray     # float64 seconds, non-decreasing, >= 0
    input_len: np.ndarray     # int64 tokens, >= 1
    output_len: np.ndarray    # int64 tokens, >= 1
    first_id: int = 0

    def __post_init__(self) -> None:
        cols = {"arrival_s": np.float64, "input_len": np.int64, "output_len": np.int64}
        arrays = {}
        for name, dtype in cols.items():
            arr = np.array(getattr(self, name), dtype=dtype, copy=True)
            check(arr.ndim == 1, f"requests.{name}", f"must be 1-D, got shape {arr.shape}")
            arr.setflags(write=False)
            arrays[name] = arr
        n = arrays["arrival_s"].size
        check(arrays["input_len"].size == n and arrays["output_len"].size == n, "requests",
              f"arrays differ in length: arrival_s {n}, input_len {arrays['input_len'].size}, "
              f"output_len {arrays['output_len'].size}")
        a = arrays["arrival_s"]
        check(bool(np.all(np.isfinite(a)) and np.all(a >= 0)), "requests.arrival_s",
              "must be finite and >= 0")
        check(bool(np.all(np.diff(a) >= 0)), "requests.arrival_s", "must be non-decreasing")
        for name in ("input_len", "output_len"):
            check(bool(np.all(arrays[name] >= 1)), f"requests.{name}", "must be >= 1")
        for name, arr in arrays.items():
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    def __iter__(self) -> Iterator[Request]:
        ids = range(self.first_id, self.first_id + len(self))
        for rid, a, i, o in zip(ids, self.arrival_s.tolist(), self.input_len.tolist(),
                                self.output_len.tolist(), strict=True):
            yield Request(rid, a, i, o)

    def __getitem__(self, key: int | slice) -> Request | Requests:
        """`r[i]` is one Request; `r[a:b]` a contiguous sub-stream keeping request ids."""
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            check(step == 1, "requests", f"only contiguous slices are supported, got step {step}")
            stop = max(start, stop)
            return Requests(self.arrival_s[start:stop], self.input_len[start:stop],
                            self.output_len[start:stop], self.first_id + start)
        i = int(key)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"request index {i} out of range for {n} requests")
        i %= n
        return Request(self.first_id + i, float(self.arrival_s[i]), int(self.input_len[i]),
                       int(self.output_len[i]))

    @property
    def duration_s(self) -> float:
        """Time from the first to the last arrival (0 for an offline stream)."""
        return float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) else 0.0

    def __repr__(self) -> str:
        return (f"Requests(n={len(self)}, span={self.duration_s:.3g} s, "
                f"mean input={self.input_len.mean() if len(self) else 0:.1f}, "
                f"mean output={self.output_len.mean() if len(self) else 0:.1f})")


def _check_count(num_requests: int) -> int:
    check(isinstance(num_requests, int | np.integer) and num_requests >= 1, "num_requests",
          f"must be an integer >= 1, got {num_requests!r}")
    return int(num_requests)


def _lengths(workload: Workload, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    g_in, g_out, g_arr = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    return workload.input.sample(n, g_in), workload.output.sample(n, g_out), g_arr


def offline(workload: Workload, num_requests: int, seed: int) -> Requests:
    """Saturated supply: every request is there at t = 0 (ExeGPT §5, the paper's setting).

    Input and output lengths are drawn independently (ExeGPT §6 assumes P_E, P_D independent).
    """
    n = _check_count(num_requests)
    inp, out, _ = _lengths(workload, n, seed)
    return Requests(np.zeros(n), inp, out)


def poisson(workload: Workload, num_requests: int, rate_per_s: float, seed: int) -> Requests:
    """Poisson arrivals at `rate_per_s`: exponential gaps, first request at t = 0."""
    n = _check_count(num_requests)
    check(rate_per_s is not None and np.isfinite(rate_per_s) and rate_per_s > 0, "rate_per_s",
          f"must be a finite number > 0, got {rate_per_s!r}")
    inp, out, g_arr = _lengths(workload, n, seed)
    gaps = g_arr.exponential(1.0 / float(rate_per_s), n - 1)
    return Requests(np.concatenate(([0.0], np.cumsum(gaps))), inp, out)


def replay(trace: Trace, num_requests: int | None = None, time_scale: float = 1.0) -> Requests:
    """A trace's own lengths and arrivals, shifted to start at 0 and divided by `time_scale`.

    `time_scale` 2 plays the trace twice as fast (double the load).
    """
    if trace.arrival_s is None:
        raise UserError(f"replay: trace '{trace.name}' has no arrival times (no 'arrived_at' "
                        "column); use stream kind 'offline' or 'poisson' with trace.workload()")
    check(np.isfinite(time_scale) and time_scale > 0, "time_scale",
          f"must be a finite number > 0, got {time_scale!r}")
    n = len(trace) if num_requests is None else _check_count(num_requests)
    check(n <= len(trace), "num_requests",
          f"{n} exceeds the {len(trace)} requests of trace '{trace.name}'")
    arr = trace.arrival_s[:n]
    return Requests((arr - arr[0]) / float(time_scale), trace.input_len[:n], trace.output_len[:n])


def make_stream(kind: str, *, workload: Workload | None = None, trace: Trace | None = None,
                num_requests: int | None = None, rate_per_s: float | None = None,
                seed: int = 0, time_scale: float = 1.0) -> Requests:
    """Dispatch on `kind` in offline | poisson | replay; missing inputs name the field."""
    if kind not in STREAM_KINDS:
        raise unknown_name("stream.kind", kind, STREAM_KINDS)
    if kind == "replay":
        check(trace is not None, "stream.trace", "stream kind 'replay' needs a trace")
        return replay(trace, num_requests, time_scale)
    check(workload is not None, "stream.workload", f"stream kind '{kind}' needs a workload")
    check(num_requests is not None, "stream.num_requests", f"stream kind '{kind}' needs num_requests")
    if kind == "offline":
        return offline(workload, num_requests, seed)
    check(rate_per_s is not None, "stream.rate_per_s", "stream kind 'poisson' needs rate_per_s")
    return poisson(workload, num_requests, rate_per_s, seed)
