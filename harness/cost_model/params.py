"""Fitted efficiency constants of the analytic cost model, with their provenance.

Nothing here is typed in by hand: `harness calibrate --fit` fits every number to measured
data (harness.cost_model.fit) and writes `fitted/analytic-v1.json`, which records the data
files (with sha256), the fit residuals and the date. This module only loads that file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

from harness.errors import unknown_name

FITTED_PATH = Path(__file__).with_name("fitted") / "analytic-v1.json"


@dataclass(frozen=True, slots=True)
class ComputeParams:
    """Achievable fractions of datasheet peaks + per-kernel fixed costs (one GPU type).

    Fitted to the Vidur operator profiles of that GPU (../shared/profiles/vidur/compute).
    GEMM compute efficiency ramps with the GEMM's row count M (tokens):
    eff(M) = gemm_peak_fraction * M / (M + gemm_half_tokens).
    """

    gemm_peak_fraction: float       # of FP16 dense tensor TFLOP/s, large M
    gemm_half_tokens: float         # M at which half of that is reached
    gemm_bw_fraction: float         # of memory bandwidth, weight-streaming (small M) GEMMs
    gemm_overhead_s: float          # fixed cost per GEMM kernel (launch + tail)
    pointwise_bw_fraction: float    # activation / residual / rotary kernels
    norm_bw_fraction: float         # layer norms
    pointwise_overhead_s: float     # fixed cost per element-wise kernel


@dataclass(frozen=True, slots=True)
class CommParams:
    """Collective model t = latency_s + algorithm_bytes / (link_Bps * bw_fraction).

    Fitted to the Vidur collective profiles (../shared/profiles/vidur/network). Ring
    all-reduce moves 2(n-1)/n of the message per GPU.
    """

    allreduce_latency_s: float
    allreduce_bw_fraction: float
    allreduce_inter_latency_s: float
    allreduce_inter_bw_fraction: float
    p2p_latency_s: float
    p2p_bw_fraction: float
    p2p_inter_latency_s: float
    p2p_inter_bw_fraction: float


@dataclass(frozen=True, slots=True)
class FrameworkParams:
    """Costs of the serving framework's loop, fitted to FT's published A100 latencies
    (../shared/reference/ft-published-calibration.csv)."""

    attention_bw_fraction: float    # decode attention (KV-cache streaming) vs gemm_bw_fraction
    per_iteration_overhead_s: float  # per forward pass: embedding, sampling, host loop
    per_layer_overhead_s: float     # per layer per forward pass: unfused kernels, bias adds


@dataclass(frozen=True, slots=True)
class GPUParams:
    compute: ComputeParams
    comm: CommParams
    sources: dict[str, str]          # which measured data each group came from


@dataclass(frozen=True, slots=True)
class FittedParams:
    version: str
    gpus: dict[str, GPUParams]
    framework: FrameworkParams
    provenance: dict

    def for_gpu(self, gpu: str) -> GPUParams:
        if gpu not in self.gpus:
            raise unknown_name("cost_model.gpu (fitted)", gpu, self.gpus)
        return self.gpus[gpu]

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "framework": asdict(self.framework),
                           "gpus": {g: {"compute": asdict(p.compute), "comm": asdict(p.comm),
                                        "sources": p.sources} for g, p in self.gpus.items()},
                           "provenance": self.provenance}, indent=2, sort_keys=True)


def _build(cls, d: dict):
    return cls(**{f.name: d[f.name] for f in fields(cls)})


def parse(text: str) -> FittedParams:
    d = json.loads(text)
    gpus = {g: GPUParams(_build(ComputeParams, v["compute"]), _build(CommParams, v["comm"]), v["sources"])
            for g, v in d["gpus"].items()}
    return FittedParams(d["version"], gpus, _build(FrameworkParams, d["framework"]), d["provenance"])


@lru_cache(maxsize=4)
def load(path: Path = FITTED_PATH) -> FittedParams:
    return parse(Path(path).read_text())
