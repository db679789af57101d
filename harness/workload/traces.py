"""Real request traces in the Splitwise/Vidur CSV format (ExeGPT §7.5: real datasets).

Columns: `arrived_at` (optional, seconds from the start of the trace), `num_prefill_tokens`
(input length) and `num_decode_tokens` (output length); any other column is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import UserError, check
from harness.workload.distributions import empirical
from harness.workload.tasks import Workload

ARRIVAL_COLUMN = "arrived_at"
INPUT_COLUMN = "num_prefill_tokens"
OUTPUT_COLUMN = "num_decode_tokens"
REQUIRED_COLUMNS = (INPUT_COLUMN, OUTPUT_COLUMN)


def _frozen(a: np.ndarray, dtype: type) -> np.ndarray:
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class Trace:
    """Per-request input/output lengths (tokens) and, if recorded, arrival times (s)."""

    input_len: np.ndarray                # int64, tokens (P_E samples)
    output_len: np.ndarray               # int64, tokens (P_D samples)
    arrival_s: np.ndarray | None         # float64, seconds, non-decreasing; None if absent
    path: str = ""
    name: str = "trace"

    def __post_init__(self) -> None:
        inp, out = _frozen(self.input_len, np.int64), _frozen(self.output_len, np.int64)
        check(inp.ndim == 1 and inp.shape == out.shape, "trace",
              f"input_len and output_len must be equal-length 1-D, got {inp.shape} and {out.shape}")
        check(bool(np.all(inp >= 1) and np.all(out >= 1)), "trace", "lengths must be >= 1")
        object.__setattr__(self, "input_len", inp)
        object.__setattr__(self, "output_len", out)
        if self.arrival_s is not None:
            arr = _frozen(self.arrival_s, np.float64)
            check(arr.shape == inp.shape, "trace.arrival_s",
                  f"length {arr.size} differs from {inp.size} requests")
            object.__setattr__(self, "arrival_s", arr)

    def __len__(self) -> int:
        return int(self.input_len.size)

    def _take(self, idx: np.ndarray | slice, name: str) -> Trace:
        arr = None if self.arrival_s is None else self.arrival_s[idx]
        return Trace(self.input_len[idx], self.output_len[idx], arr, self.path, name)

    def head(self, n: int) -> Trace:
        """The first `n` requests in arrival (file) order."""
        check(n >= 1, "n", f"must be >= 1, got {n}")
        return self._take(slice(0, int(n)), self.name)

    def split(self, estimate_fraction: float = 0.1, seed: int = 0) -> tuple[Trace, Trace]:
        """Seeded random (estimate, evaluate) split, file order kept in each part.

        ExeGPT §7.5: 10% of each dataset estimates the length distributions, 90% is evaluated.
        """
        check(0.0 < estimate_fraction < 1.0, "estimate_fraction",
              f"must be in (0, 1), got {estimate_fraction}")
        n = len(self)
        check(n >= 2, "trace", f"need >= 2 requests to split, '{self.name}' has {n}")
        n_est = min(n - 1, max(1, round(estimate_fraction * n)))
        pick = np.zeros(n, dtype=bool)
        pick[np.random.default_rng(seed).permutation(n)[:n_est]] = True
        return (self._take(np.flatnonzero(pick), f"{self.name}[estimate]"),
                self._take(np.flatnonzero(~pick), f"{self.name}[evaluate]"))

    def workload(self) -> Workload:
        """Empirical (P_E, P_D) of this trace (ExeGPT §6 treats them as independent)."""
        return Workload(self.name, empirical(self.input_len, f"{self.name} input"),
                        empirical(self.output_len, f"{self.name} output"), source=self.path)

    def correlation(self) -> float:
        """Pearson correlation of input and output lengths; nan if either is constant.

        XSimulator assumes P_E and P_D independent (ExeGPT §6); this says how far off that is.
        """
        x = self.input_len.astype(np.float64) - self.input_len.mean()
        y = self.output_len.astype(np.float64) - self.output_len.mean()
        denom = float(np.sqrt((x @ x) * (y @ y)))
        return float(x @ y) / denom if denom > 0 else float("nan")

    def __repr__(self) -> str:
        arr = "with arrivals" if self.arrival_s is not None else "no arrivals"
        return f"Trace({self.name}: {len(self)} requests, {arr})"


def _first_bad(mask: np.ndarray) -> int:
    """1-based data-row number of the first True in `mask`."""
    return int(np.argmax(mask)) + 1


def _cell(raw: pd.Series, row: int) -> str:
    val = raw.iloc[row - 1]
    return "an empty cell" if pd.isna(val) else f"'{val}'"


def _lengths(df: pd.DataFrame, col: str, path: str) -> np.ndarray:
    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(vals) | (vals != np.round(vals)) | (vals < 1)
    if bad.any():
        row = _first_bad(bad)
        raise UserError(f"trace {path}: column '{col}' must hold integers >= 1; "
                        f"data row {row} has {_cell(raw, row)}")
    return vals.astype(np.int64)


def _arrivals(df: pd.DataFrame, path: str) -> np.ndarray:
    raw = df[ARRIVAL_COLUMN]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(vals) | (vals < 0)
    if bad.any():
        row = _first_bad(bad)
        raise UserError(f"trace {path}: column '{ARRIVAL_COLUMN}' must hold finite seconds >= 0; "
                        f"data row {row} has {_cell(raw, row)}")
    dec = np.diff(vals) < 0
    if dec.any():
        row = _first_bad(dec) + 1
        raise UserError(f"trace {path}: column '{ARRIVAL_COLUMN}' decreases at data row {row} "
                        f"({vals[row - 2]:g} -> {vals[row - 1]:g}); arrivals must be non-decreasing")
    return vals


def load_trace(path: str | Path, max_rows: int | None = None) -> Trace:
    """Read a Splitwise/Vidur trace CSV (optionally only its first `max_rows` data rows)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"trace: file not found: {p}")
    if max_rows is not None:
        check(max_rows >= 1, "max_rows", f"must be >= 1, got {max_rows}")
    wanted = {ARRIVAL_COLUMN, *REQUIRED_COLUMNS}
    try:
        df = pd.read_csv(p, usecols=lambda c: str(c).strip() in wanted, nrows=max_rows,
                         skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"trace {p}: file is empty (need a header with "
                        f"{', '.join(REQUIRED_COLUMNS)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        msg = " ".join(str(e).split())
        raise UserError(f"trace {p}: not a readable CSV: {msg}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"trace {p}: missing column(s) {', '.join(missing)}; required: "
                        f"{', '.join(REQUIRED_COLUMNS)} (optional: {ARRIVAL_COLUMN})")
    if len(df) == 0:
        raise UserError(f"trace {p}: no data rows")
    arrival = _arrivals(df, str(p)) if ARRIVAL_COLUMN in df.columns else None
    return Trace(_lengths(df, INPUT_COLUMN, str(p)), _lengths(df, OUTPUT_COLUMN, str(p)),
                 arrival, path=str(p), name=p.stem)
