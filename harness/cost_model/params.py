"""Fitted efficiency constants of the analytic cost model, with their provenance.

The default constants are not typed in by hand: `harness calibrate --fit` fits every number
to measured data (harness.cost_model.fit) and writes `fitted/analytic-v1.json`, which records
the data files (with sha256), the fit residuals and the date. This module loads that file.

It also holds the named alternatives of the analytic cost model's options (`cost_model.*`,
harness.cost_model.analytic): each value was derived from the data its `source` names by a
function of harness.cost_model.fit, which `harness calibrate` and the tests rerun to check it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

from harness.errors import unknown_name
from harness.specs.hardware import GPUS

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


# ---- named alternatives of the options (harness.cost_model.analytic) -----------------------
@dataclass(frozen=True, slots=True)
class AttentionAlternative:
    """Decode-attention KV streaming as a fraction of gemm_bw_fraction (None: the fitted one)."""

    value: float | None
    source: str


ATTENTION_BW_FRACTIONS: dict[str, AttentionAlternative] = {
    "ft-a100": AttentionAlternative(None, "fitted to FasterTransformer's published A100 GPT latencies "
                                    "(TP=1 rows; fitted/analytic-v1.json framework), transferred to every GPU"),
    # fit.attention_fraction_h100_probe: least squares (log) of the 12 decode rows of
    # harness/cost_model/measured/h100_layer_probe.csv (PyTorch 2.11 SDPA/flash-decoding, FP16, lent H100).
    "sdpa-h100": AttentionAlternative(0.9390607898244216, "PyTorch SDPA decode on a lent H100 (cost_model/"
                                      "measured/h100_layer_probe.csv, 12 decode rows; fit.attention_fraction_h100_probe)"),
    # fit.attention_fraction_vllm: DistServe's vLLM fit for OPT-13B TP=1 on A100-80GB,
    # decoding_largebs per-cached-token coefficient -> KV bytes/s; / (A100 peak x gemm_bw_fraction).
    # Its decoding_smallbs coefficient gives 0.835 (reference/engines/PROVENANCE.md: fits, not raw).
    "vllm-a100": AttentionAlternative(1.0092133821622453, "vLLM paged attention, OPT-13B TP=1, A100-80GB "
                                      "(DistServe fit, reference/engines; fit.attention_fraction_vllm)"),
}
DEFAULT_ATTENTION = "ft-a100"


@dataclass(frozen=True, slots=True)
class P2PFit:
    """Send/recv t = latency_s + bytes / (link_Bps * bw_fraction), as fit_comm models it."""

    latency_s: float
    bw_fraction: float       # of the link the cost model uses for that scope (see `link`)
    link: str
    source: str


# fit.fit_a40_p2p: the same log least squares as fit_comm, on the 993 sizes (2 KiB-64 MiB) of
# Vidur network/a40_pairwise_nvlink/send_recv.csv (2 workers, rank 0, median of each size).
A40_P2P_INTRA = P2PFit(2.1812308254406493e-06, 0.12911617540622072, "A40 intra_node_Bps (32 GB/s)",
                       "Vidur a40_pairwise_nvlink send_recv, devices_per_node=2 (two A40 in one node): "
                       "4.1 GB/s, median |error| 2.1%")
A40_P2P_INTER = P2PFit(5.533512749230923e-05, 1.6894646847372292, "100 Gb/s per node / 8 GPUs (1.56 GB/s)",
                       "Vidur a40_pairwise_nvlink send_recv, devices_per_node=1 (one A40 in each of "
                       "two nodes, one flow): 2.6 GB/s, median |error| 12.8%")
PCIE4_X16_BPS = 31.5e9   # PCIe 4.0 x16 per direction after 128b/130b encoding (PCI-SIG; A40 datasheet)


@dataclass(frozen=True, slots=True)
class CommAlternative:
    """GPU-to-GPU communication: p2p constants replacing the fitted ones (None: keep) and
    whether an all-reduce is a ring of 2(n-1) p2p steps of message/n instead of the fit."""

    p2p_intra: P2PFit | None
    p2p_inter: P2PFit | None
    ring_intra: bool
    ring_inter: bool
    gpus: tuple[str, ...]    # GPUs whose data ground it (empty: any)
    source: str


COMM_ALTERNATIVES: dict[str, CommAlternative] = {
    "transferred": CommAlternative(None, None, False, False, (), "Vidur DGX fits of the GPU, else the A100 "
                                   "DGX fractions on the GPU's own datasheet links (fitted JSON `sources`)"),
    "a40-ring": CommAlternative(A40_P2P_INTRA, None, True, False, ("a40",), "intra-node: A40 send/recv "
                                "measured in one node, ring all-reduce composed from it; inter-node: transferred"),
    "a40-measured": CommAlternative(A40_P2P_INTRA, A40_P2P_INTER, True, True, ("a40",), "intra- and inter-node "
                                    "A40 send/recv as measured (Vidur's A40 nodes), rings composed from them"),
    "pcie4-peak": CommAlternative(
        P2PFit(A40_P2P_INTRA.latency_s, PCIE4_X16_BPS / GPUS["a40"].intra_node_Bps, "A40 intra_node_Bps (32 GB/s)",
               "PCIe 4.0 x16 datasheet rate (31.5 GB/s), A40-measured p2p latency"),
        None, True, False, ("a40",), "lower bound on intra-node time over the paper's PCIe 4.0 x16: ring "
        "at the full datasheet rate with the A40-measured p2p latency; inter-node: transferred"),
}
DEFAULT_COMM = "transferred"
