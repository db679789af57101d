"""Profiled cost model: interpolation in tables measured by `harness profile` (ExeGPT §2, §6).

The XSimulator converts workloads to time "with the profiles" (§6); this model answers the
CostModel protocol from the profile table of (model, cluster), one table per model, loaded on
first use. This module owns the table's place and format (`profile_path`, `PROFILE_OPS`,
`require_profile`); harness/profiler writes it.

Profile table (parquet, `<profile_dir>/<model>-<cluster>.parquet`), one row per point:
op (`PROFILE_OPS`), tp_degree, batch_size, length, input_len, message_bytes, time_s (median of
`repeats` rounds), time_p10_s, time_p90_s (spread), other_cores / disturbed / remeasured (CPU
other processes took), plus model, cluster, device, torch version. A GPU profile has the same
columns. The model interpolates the medians:
- encode_layer(b, L): the runner encodes packed prompts, so the time is a function of the
  b * L tokens: piecewise-linear interpolation in log(tokens) over the medians.
- decode_layer(b, context[, input]): (tri)linear interpolation on the (batch, context
  [, input length]) grid, extrapolating linearly outside it (attention is linear in both).
- cross_kv(b, L) (T5) and lm_head(b): the same token / batch interpolation.
- mixed_layer (chunked prefill): base.mixed_layer_from_phases, decode plus the chunk's prefill
  increment, unfused (the profile has no hybrid step).
- decode_pipe(b, context[, input]): a decoder layer of a 2-stage pipeline's stage, timed inside
  one (`pipelined_decode_layer`; the stages of a pipeline are priced with it, `base.stage_decode_layer`).
- kv_select / kv_join(b, context[, input]): the runner's cache rewrite when queries leave
  (compaction) or join, interpolated like decode_layer (`kv_copy_s`).
- allreduce / p2p: log-log interpolation in the message size; kv_transfer = p2p of the
  bytes plus one small-message latency per tensor of the hand-over (2 per layer + 4).
All-reduce time is inside the measured TP layer times; `LayerTime.comm_s` reports the
table's all-reduces at the layer's message size, `compute_s` the rest.
The profile measured one engine (the harness's runner): `engine` is "profiled" and
`with_engine` is the identity for every engine name (harness.cost_model.engines).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.interpolate import RegularGridInterpolator

from harness.cost_model.base import LayerTime, mixed_layer_from_phases
from harness.errors import UserError
from harness.specs.hardware import ClusterSpec
from harness.specs.models import ModelSpec

KV_TENSORS_PER_LAYER = 2
PROFILE_OPS = ("encode_layer", "decode_layer", "decode_pipe", "kv_select", "kv_join", "cross_kv", "lm_head",
               "allreduce", "p2p")


def default_profile_dir() -> Path:
    """`$HARNESS_PROFILE_DIR`, else runs/profiles under the current directory."""
    return Path(os.environ.get("HARNESS_PROFILE_DIR", Path("runs") / "profiles"))


def profile_path(out_dir: str | Path, model: ModelSpec, cluster: ClusterSpec) -> Path:
    """Where the profile of `model` on `cluster` lives under `out_dir`."""
    return Path(out_dir) / f"{model.name}-{cluster.name}.parquet"


def require_profile(path: Path, model: ModelSpec, cluster: ClusterSpec) -> None:
    """A one-line error naming the command that makes the missing profile."""
    if not path.exists():
        raise UserError(f"cost_model=profiled: no profile of {model.name} on {cluster.name} at {path}; "
                        f"run `harness profile model={model.name} cluster={cluster.name}`")


def _interp1(x: np.ndarray, y: np.ndarray, q: float, log_x: bool = True) -> float:
    """Piecewise linear in (log) x, linear extrapolation from the end segments."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    if len(x) == 1:
        return float(y[0])
    fx = np.log(x) if log_x else x
    fq = np.log(max(q, 1e-9)) if log_x else q
    i = int(np.clip(np.searchsorted(fx, fq) - 1, 0, len(x) - 2))
    t = (fq - fx[i]) / (fx[i + 1] - fx[i])
    return float(max(y[i] + t * (y[i + 1] - y[i]), 0.25 * y.min()))


def _by_key(df: pd.DataFrame, key: str) -> tuple[np.ndarray, np.ndarray]:
    g = df.groupby(key)["time_s"].median()
    return g.index.to_numpy(dtype=float), g.to_numpy(dtype=float)


@dataclass(slots=True)
class _Tables:
    df: pd.DataFrame
    decode: dict = field(default_factory=dict)   # (op, tp) -> (axes kept, RegularGridInterpolator)
    curves: dict = field(default_factory=dict)   # (op, tp) -> (x, y) medians by key

    def curve(self, op: str, tp: int | None, key: str) -> tuple[np.ndarray, np.ndarray]:
        if (op, tp) not in self.curves:
            d = self.rows(op, tp)
            if key == "tokens":
                d = d.assign(tokens=d.batch_size * d.length)
            self.curves[(op, tp)] = _by_key(d, key)
        return self.curves[(op, tp)]

    def rows(self, op: str, tp: int | None = None) -> pd.DataFrame:
        d = self.df[self.df.op == op]
        if tp is not None:
            d = d[d.tp_degree == tp]
        if d.empty:
            raise UserError(f"cost_model=profiled: the profile of {self.df.model.iloc[0]} has no "
                            f"'{op}' points" + (f" at tp_degree {tp}" if tp else "") +
                            f"; profiled tp_degrees: {sorted(self.df.tp_degree.unique().tolist())}")
        return d

    def has(self, op: str) -> bool:
        return bool((self.df.op == op).any())

    def decode_interp(self, tp: int, op: str = "decode_layer") -> RegularGridInterpolator:
        """(Tri)linear interpolation of `op` (decode_layer, kv_select, kv_join) on the
        (batch, context[, input]) grid at TP `tp`."""
        if (op, tp) not in self.decode:
            d = self.rows(op, tp)
            axes = [np.sort(d[c].unique()).astype(float) for c in ("batch_size", "length", "input_len")]
            grid = d.pivot_table(index=["batch_size", "length", "input_len"], values="time_s",
                                 aggfunc="median").reindex(pd.MultiIndex.from_product(axes))
            vals = grid["time_s"].to_numpy().reshape([len(a) for a in axes])
            keep = [i for i, a in enumerate(axes) if len(a) > 1]
            self.decode[(op, tp)] = (keep, RegularGridInterpolator([axes[i] for i in keep], vals.squeeze(),
                                                                   bounds_error=False, fill_value=None))
        return self.decode[(op, tp)]


@dataclass(frozen=True, slots=True, eq=False)   # hashed by identity (lru caches key on it)
class ProfiledCostModel:
    cluster: ClusterSpec
    profile_dir: Path = field(default_factory=default_profile_dir)
    kv_receive_blocks: bool = True     # the runner's WAA hand-over: a blocking gloo receive
    cross_kv_on_encoder: bool = True   # the runner's WAA encode worker projects T5's cross K/V
    contention_aware: bool = False     # True: a pipeline stage's decode priced from `decode_pipe` points
    id: str = field(init=False)
    _tables: dict = field(init=False, repr=False)
    _memo: dict = field(init=False, repr=False)
    engine: ClassVar[str] = "profiled"  # the engine the tables were measured on

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"profiled/{self.cluster.name}")
        object.__setattr__(self, "_tables", {})
        object.__setattr__(self, "_memo", {})

    def tables(self, model: ModelSpec) -> _Tables:
        if model.name not in self._tables:
            path = profile_path(self.profile_dir, model, self.cluster)
            require_profile(path, model, self.cluster)
            self._tables[model.name] = _Tables(pd.read_parquet(path))
        return self._tables[model.name]

    def _comm(self, model: ModelSpec, tokens: float, n_ar: int, tp: int) -> float:
        return n_ar * self.allreduce_s(tokens * model.hidden_size * model.dtype_bytes, tp) if tp > 1 else 0.0

    def encode_layer(self, model: ModelSpec, batch_size: int, seq_len: float, tp_degree: int) -> LayerTime:
        key = ("e", model.name, batch_size, seq_len, tp_degree)
        if (hit := self._memo.get(key)) is None:
            tokens = batch_size * max(seq_len, 1.0)
            x, y = self.tables(model).curve("encode_layer", tp_degree, "tokens")
            total = _interp1(x, y, tokens)
            comm = min(self._comm(model, tokens, 2, tp_degree), total)
            hit = self._memo[key] = LayerTime(total - comm, comm)
        return hit

    def decode_layer(self, model: ModelSpec, batch_size: int, context_len: float, tp_degree: int,
                     input_len: float = 0.0) -> LayerTime:
        key = ("d", model.name, batch_size, context_len, tp_degree, input_len)
        if (hit := self._memo.get(key)) is None:
            total = max(self._grid(model, "decode_layer", batch_size, context_len, tp_degree, input_len), 1e-7)
            n_ar = 3 if model.is_encoder_decoder else 2
            comm = min(self._comm(model, batch_size, n_ar, tp_degree), total)
            hit = self._memo[key] = LayerTime(total - comm, comm)
        return hit

    def pipelined_decode_layer(self, model: ModelSpec, batch_size: int, context_len: float, tp_degree: int,
                               input_len: float = 0.0) -> LayerTime:
        """One decoder layer of a stage of a pipeline, timed under the condition it meets in a run
        (`decode_pipe`: both workers on their own stage, the neighbour's message arriving;
        harness/profiler/bench.py) when `contention_aware` is on. Else, at TP > 1 and for a profile
        without those points, `decode_layer` (both workers running the whole stack, barrier-aligned).
        Off by default: in `make fidelity` on this machine a pipeline stage's calls ran at 0.85 of
        the pipeline points' price and at 0.98 of the whole-stack points' (docs/real-execution.md);
        the fidelity study scores every run both ways."""
        if not (self.contention_aware and tp_degree == 1 and self.tables(model).has("decode_pipe")):
            return self.decode_layer(model, batch_size, context_len, tp_degree, input_len)
        key = ("dp", model.name, batch_size, context_len, input_len)
        if (hit := self._memo.get(key)) is None:
            hit = self._memo[key] = LayerTime(max(self._grid(model, "decode_pipe", batch_size, context_len, 1,
                                                             input_len), 1e-7), 0.0)
        return hit

    def with_engine(self, engine: str) -> ProfiledCostModel:
        """Itself: the tables are one measured engine's (harness.cost_model.engines)."""
        return self

    def mixed_layer(self, model: ModelSpec, decode_batch: int, context_len: float, chunk_tokens: int,
                    chunk_context_len: float, tp_degree: int) -> LayerTime:
        """Approximated from the decode and encode tables (base.mixed_layer_from_phases)."""
        key = ("m", model.name, decode_batch, context_len, chunk_tokens, chunk_context_len, tp_degree)
        if (hit := self._memo.get(key)) is None:
            hit = self._memo[key] = mixed_layer_from_phases(self, model, decode_batch, context_len, chunk_tokens,
                                                            chunk_context_len, tp_degree)
        return hit

    def kv_copy_s(self, model: ModelSpec, num_seqs: int, context_len: float, tp_degree: int,
                  input_len: float = 0.0, kind: str = "compact") -> float:
        """The runner's cache rewrite per layer (profile ops kv_select / kv_join); a profile
        taken before these ops existed prices it 0."""
        op = {"compact": "kv_select", "join": "kv_join"}[kind]
        if num_seqs <= 0 or not self.tables(model).has(op):
            return 0.0
        key = (op, model.name, num_seqs, context_len, tp_degree, input_len)
        if (hit := self._memo.get(key)) is None:
            hit = self._memo[key] = max(self._grid(model, op, num_seqs, context_len, tp_degree, input_len), 0.0)
        return hit

    def _grid(self, model: ModelSpec, op: str, batch: float, context_len: float, tp: int, input_len: float) -> float:
        """`op` interpolated on its (batch, context[, input]) grid (`_Tables.decode_interp`)."""
        keep, f = self.tables(model).decode_interp(tp, op)
        q = [float(batch), float(context_len), float(input_len)]
        return float(f([[q[i] for i in keep]])[0])

    def cross_kv_s(self, model: ModelSpec, batch_size: int, input_len: float, tp_degree: int) -> float:
        x, y = self.tables(model).curve("cross_kv", tp_degree, "tokens")
        return _interp1(x, y, batch_size * max(input_len, 1.0))

    def lm_head_s(self, model: ModelSpec, num_tokens: int, tp_degree: int) -> float:
        x, y = self.tables(model).curve("lm_head", None, "batch_size")
        return _interp1(x, y, max(num_tokens, 1))

    # ---- communication: measured on this cluster, any model's table has them ------------------
    def _comm_table(self, op: str) -> tuple[np.ndarray, np.ndarray]:
        if not self._tables:
            raise UserError("cost_model=profiled: communication times come from a model's profile; "
                            "ask a layer time first")
        return next(iter(self._tables.values())).curve(op, None, "message_bytes")

    def allreduce_s(self, message_bytes: float, num_gpus: int, inter_node: bool = False) -> float:
        if num_gpus <= 1:
            return 0.0
        x, y = self._comm_table("allreduce")
        return _interp1(x, y, max(message_bytes, 1.0))

    def p2p_s(self, message_bytes: float, inter_node: bool = False) -> float:
        x, y = self._comm_table("p2p")
        return _interp1(x, y, max(message_bytes, 1.0))

    def kv_transfer_s(self, kv_bytes: float) -> float:
        """WAA hand-over: one message of the bytes plus a small one per tensor (header, masks)."""
        return self.p2p_s(kv_bytes) + 8 * self.p2p_s(64)
