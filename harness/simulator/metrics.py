"""Per-request records of a discrete-event run and the metrics read off them.

Token timestamps are not stored one by one: every request generates its tokens in
consecutive decoding iterations (one token per iteration of the batch it is in, ExeGPT §3),
so a run keeps the end time of every decoding iteration and, per request, the index of its
first one; `SimRecords.token_times(i)` rebuilds request i's timestamps from the two.

Metric definitions (vLLM names, ExeGPT §5 for the latency bound):
- throughput: steady-state window between the 10th and 90th percentile completion times
  t10, t90 (order statistics, not interpolated: periodic completions give their exact
  rate); requests finishing in (t10, t90] (tokens generated in it) over t90 - t10. The
  window drops the warm-up (decoding batch still filling) and the tail (batch draining,
  FT's last partial batch), which a saturated, never-ending supply (ExeGPT §5) would not
  have. A short stream may not reach steady state at all (WAA with small B_E and long
  outputs fills its batch over the longest output's iterations). If every request ends at
  one instant the whole run (first encode -> last token) is used instead.
- latency_p99len_s: the paper's latency (§5), the worst time from encode start to the L-th
  token over all queries with output >= L, L = the plan's latency length (p99; FT: max)
  capped at the longest sampled output. A query of output > L is timed at its L-th token: up
  to there it ran exactly the schedule a query of length L would.
- encode_end_s is the end of encoding (WAA: before the KV transfer to the decode GPUs).
- e2e (arrival -> last token), TTFT (arrival -> first token), TPOT (finish - first token)
  / (output - 1) averaged over requests with output > 1.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

WINDOW_QUANTILES = (0.1, 0.9)   # steady-state window in completion-time quantiles


@dataclass(frozen=True, slots=True, eq=False)
class SimRecords:
    """Per-request timestamps (s) of one run, arrival order, plus the iteration timeline."""

    arrival_s: np.ndarray
    encode_start_s: np.ndarray
    encode_end_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    input_len: np.ndarray
    output_len: np.ndarray
    first_iter: np.ndarray       # index into iter_end_s of each request's first token
    iter_end_s: np.ndarray       # end time of every decoding iteration, in order
    iter_batch: np.ndarray       # sequences in the decoding batch per iteration (FT: slots B)
    iter_tokens: np.ndarray      # real tokens produced per iteration (FT: excludes finished slots)
    first_id: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            if isinstance(value := getattr(self, f.name), np.ndarray):
                value.setflags(write=False)

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    def token_times(self, i: int) -> np.ndarray:
        """Timestamps (s) of request i's tokens, first to last."""
        start = int(self.first_iter[i])
        return self.iter_end_s[start:start + int(self.output_len[i])]

    def token_time(self, k: int, which: np.ndarray) -> np.ndarray:
        """Time of the k-th token (1-based) of the requests selected by `which` (index or
        mask), each with output length >= k."""
        return self.iter_end_s[self.first_iter[which] + k - 1]

    def to_frame(self) -> pd.DataFrame:
        per_request = [f.name for f in fields(self) if f.name not in
                       ("iter_end_s", "iter_batch", "iter_tokens", "first_id")]
        df = pd.DataFrame({name: getattr(self, name) for name in per_request})
        df.insert(0, "request_id", np.arange(self.first_id, self.first_id + len(self)))
        return df


@dataclass(frozen=True, slots=True)
class SimMetrics:
    num_requests: int
    makespan_s: float             # first arrival -> last token
    window_s: float               # steady-state window duration (10th-90th pct completion)
    throughput_seq_s: float       # sequences/s in the window
    throughput_tok_s: float       # generated tokens/s in the window
    latency_p99len_s: float       # ExeGPT §5 worst-case latency of a p99-length query (see module doc)
    latency_len: int              # L the latency was measured at
    e2e_p50_s: float
    e2e_p99_s: float
    ttft_p50_s: float
    ttft_p99_s: float
    tpot_mean_s: float
    decode_batch_mean: float      # mean of iter_batch over iterations ending in the window


@dataclass(frozen=True, slots=True, eq=False)
class SimResult:
    policy: str
    knobs: tuple[tuple[str, int], ...]
    feasible: bool
    reason: str = ""
    records: SimRecords | None = None
    metrics: SimMetrics | None = None

    def to_frame(self) -> pd.DataFrame:
        """Per-request records (empty for an infeasible plan)."""
        if self.records is None:
            return pd.DataFrame(columns=["request_id", "arrival_s", "encode_start_s", "encode_end_s",
                                         "first_token_s", "finish_s", "input_len", "output_len",
                                         "first_iter"])
        return self.records.to_frame()


def compute_metrics(rec: SimRecords, latency_output_len: int) -> SimMetrics:
    """Metrics of a finished run; `latency_output_len` is the plan's L (p99, FT: max)."""
    fin = rec.finish_s
    t_lo, t_hi = np.quantile(fin, WINDOW_QUANTILES, method="inverted_cdf")   # order statistics
    if t_hi > t_lo:
        in_win = (fin > t_lo) & (fin <= t_hi)
        it_win = (rec.iter_end_s > t_lo) & (rec.iter_end_s <= t_hi)
        window = float(t_hi - t_lo)
        thr = float(in_win.sum()) / window
        thr_tok = float(rec.iter_tokens[it_win].sum()) / window
    else:   # every request finished at one instant: whole run instead of a window
        window = float(fin.max() - rec.encode_start_s.min())
        it_win = np.ones(rec.iter_end_s.size, dtype=bool)
        thr, thr_tok = len(rec) / window, float(rec.output_len.sum()) / window
    out = rec.output_len
    length = int(min(latency_output_len or out.max(), out.max()))
    long = out >= length
    lat = float((rec.token_time(length, long) - rec.encode_start_s[long]).max())
    e2e, ttft = fin - rec.arrival_s, rec.first_token_s - rec.arrival_s
    multi = out > 1
    tpot = (fin[multi] - rec.first_token_s[multi]) / (out[multi] - 1)
    return SimMetrics(
        num_requests=len(rec), makespan_s=float(fin.max() - rec.arrival_s.min()), window_s=window,
        throughput_seq_s=thr, throughput_tok_s=thr_tok, latency_p99len_s=lat, latency_len=length,
        e2e_p50_s=float(np.quantile(e2e, 0.5)), e2e_p99_s=float(np.quantile(e2e, 0.99)),
        ttft_p50_s=float(np.quantile(ttft, 0.5)), ttft_p99_s=float(np.quantile(ttft, 0.99)),
        tpot_mean_s=float(tpot.mean()) if tpot.size else 0.0,
        decode_batch_mean=float(rec.iter_batch[it_win].mean()) if it_win.any() else 0.0)


# ---- SLA variants (ExeGPT §5, §7.6) -------------------------------------------------------
# The paper's bound is on the worst case of a p99-length query (`latency_p99len_s`); §7.6 adds
# SLA-(a) "99% of all queries finish within the bound" and SLA-(b) "a query of a given length
# finishes within the bound". `origin` says where a query's clock starts: "encode" (encode
# start, the paper's execution latency: with a saturated offline supply every query arrives at
# 0, so arrival-based times would measure the queue, not the schedule) or "arrival" (e2e, the
# online/replay reading).
ORIGINS = ("encode", "arrival")


def _origin_s(rec: SimRecords, origin: str) -> np.ndarray:
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
    return rec.encode_start_s if origin == "encode" else rec.arrival_s


def sla_a_latency_s(rec: SimRecords, quantile: float = 0.99, origin: str = "encode") -> float:
    """SLA-(a): the `quantile` of whole-query latency (last token - origin) over all queries."""
    return float(np.quantile(rec.finish_s - _origin_s(rec, origin), quantile))


def sla_b_latency_s(rec: SimRecords, length: int, origin: str = "encode") -> float:
    """SLA-(b): worst time from origin to the `length`-th token over all queries with output
    >= `length` (a longer query is timed at that token: up to there it ran exactly what a
    query of that length runs); nan if no query is that long. At length = p99 this is the
    paper's main latency (`latency_p99len_s` with origin "encode")."""
    long = rec.output_len >= int(length)
    if not long.any():
        return float("nan")
    return float((rec.token_time(int(length), long) - _origin_s(rec, origin)[long]).max())


def goodput_rps(rec: SimRecords, bound_s: float, origin: str = "arrival") -> float:
    """Requests whose whole latency (last token - origin) is within `bound_s`, per second of
    the run (first arrival -> last token). Infinite bound: plain request throughput."""
    span = float(rec.finish_s.max() - rec.arrival_s.min())
    ok = (rec.finish_s - _origin_s(rec, origin)) <= bound_s
    return float(ok.sum()) / span if span > 0 else float("nan")
