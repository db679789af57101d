"""Fit the analytic cost model's constants to measured data (run: `harness calibrate --fit`).

- Compute fractions/overheads per GPU: Vidur operator profiles of that GPU, all models and
  TP degrees, least squares on log(predicted / measured) per operator.
- Collective latencies/fractions per GPU: Vidur all-reduce and send/recv profiles of DGX
  nodes. The A40 data have no all-reduce and were taken over an NVLink bridge, while the
  paper's A40 nodes use PCIe 4.0: A40 takes the A100 DGX fractions applied to its own PCIe
  link; H100 has no inter-node all-reduce and takes A100's (stated in the JSON `sources`).
- Framework loop costs: FT's published A100 GPT latencies, fitted on the TP=1 rows only; the
  TP 2/4/8 rows stay held out to test the collective model (harness.cost_model.calibration).
- The named alternatives of the cost model's options (harness.cost_model.params): the A40's own
  send/recv (fit_a40_p2p), decode attention under vLLM (attention_fraction_vllm) and under
  PyTorch SDPA on H100 (attention_fraction_h100_probe). `derive_alternatives` reruns them all.
- The serving engines' constants (harness.cost_model.engines): vLLM's per-iteration executor
  overhead from the intercepts of DistServe's vLLM fits (engine_overhead_vllm); `derive_engines`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize

from harness.cost_model import kernels as K
from harness.cost_model.analytic import AnalyticCostModel
from harness.cost_model.end_to_end import static_batch_latency_s
from harness.cost_model.measurements import (
    VIDUR_OPS,
    ft_model_spec,
    load_ft_calibration,
    load_vidur_compute,
    load_vidur_network,
)
from harness.cost_model.params import (
    A40_P2P_INTER,
    A40_P2P_INTRA,
    ATTENTION_BW_FRACTIONS,
    CommParams,
    ComputeParams,
    FittedParams,
    FrameworkParams,
    GPUParams,
)
from harness.specs import get_model
from harness.specs.hardware import GPUS, INTER_NODE_BPS, make_cluster
from harness.specs.models import ModelSpec

VERSION = "v1"
H100_PROBE_CSV = Path(__file__).resolve().parent / "measured" / "h100_layer_probe.csv"   # package data
VLLM_FITS = Path("engines") / "distserve-vllm-a100-80g.json"    # under the shared reference folder
_NEUTRAL_FRAMEWORK = FrameworkParams(attention_bw_fraction=1.0, per_iteration_overhead_s=0.0,
                                     per_layer_overhead_s=0.0)
_COMPUTE_FIELDS = list(ComputeParams.__dataclass_fields__)


def vidur_kernel_rows(profiles, gpu: str) -> list[tuple[K.Kernel, float, int]]:
    """(our kernel, measured seconds, layer id) for every measured Vidur operator of `gpu`."""
    rows, layer_id = [], 0
    for p in profiles:
        if p.gpu != gpu:
            continue
        for r in p.table.itertuples(index=False):
            ks = {k.name: k for k in K.encode_layer_kernels(p.model, r.num_tokens, 1, r.tp)}
            for op in VIDUR_OPS:
                t = getattr(r, op, np.nan)
                if op in ks and np.isfinite(t):
                    rows.append((ks[op], float(t), layer_id))
            layer_id += 1
    return rows


def _cm(gpu: str, compute: ComputeParams, comm: CommParams | None = None,
        framework: FrameworkParams = _NEUTRAL_FRAMEWORK) -> AnalyticCostModel:
    comm = comm or CommParams(*([1e-5, 1.0] * 4))
    fp = FittedParams(VERSION, {gpu: GPUParams(compute, comm, {})}, framework, {})
    return AnalyticCostModel(make_cluster(gpu, 1), fp)


def fit_compute(profiles, gpu: str) -> tuple[ComputeParams, float]:
    rows = vidur_kernel_rows(profiles, gpu)
    meas = np.array([t for _, t, _ in rows])

    def residual(x: np.ndarray) -> np.ndarray:
        cm = _cm(gpu, ComputeParams(*x))
        return np.log([cm.kernel_s(k) for k, _, _ in rows]) - np.log(meas)

    x0 = [0.7, 64.0, 0.7, 5e-6, 0.6, 0.5, 3e-6]
    lo = [0.05, 1.0, 0.05, 0.0, 0.02, 0.02, 0.0]
    hi = [1.0, 8192.0, 1.0, 1e-4, 1.0, 1.0, 1e-4]
    sol = optimize.least_squares(residual, x0, bounds=(lo, hi), x_scale=[0.1, 50, 0.1, 1e-6, 0.1, 0.1, 1e-6])
    return ComputeParams(*map(float, sol.x)), float(np.median(np.abs(np.expm1(sol.fun))))


def _fit_collective(df: pd.DataFrame, link_Bps: float) -> tuple[float, float]:
    n = df["num_workers"].to_numpy(float)
    factor = np.where(df["collective"] == "all_reduce", 2 * (n - 1) / n, 1.0)
    x, y = df["size_bytes"].to_numpy() * factor, df["time_s"].to_numpy()
    sol = optimize.least_squares(lambda p: np.log(p[0] + x / (link_Bps * p[1])) - np.log(y),
                                 [2e-5, 0.5], bounds=([0, 1e-3], [1e-3, 2.0]), x_scale=[1e-5, 0.1])
    return float(sol.x[0]), float(sol.x[1])


def fit_comm(net: pd.DataFrame, gpu: str) -> tuple[CommParams, str]:
    """Fit each (collective, intra/inter-node) pair on the GPU's own DGX data where it exists,
    else transfer the A100 DGX fit (the fractions are of the link, so they carry over)."""
    vals, notes = [], []
    for coll in ("all_reduce", "send_recv"):
        for scope in ("intra", "inter"):
            for src in (gpu, "a100"):
                d = net[net["node"] == f"{src}_dgx"]
                d = d[(d["collective"] == coll) & ((d["num_workers"] == d["devices_per_node"])
                                                    == (scope == "intra"))]
                if len(d):
                    break
            link = GPUS[src].intra_node_Bps if scope == "intra" else INTER_NODE_BPS[src] / 8
            vals += _fit_collective(d, link)
            notes.append(f"{coll}/{scope}: Vidur network/{src}_dgx"
                         + ("" if src == gpu else f" (transferred: no {gpu} data)"))
    return CommParams(*vals), "; ".join(notes)


def ft_rows_prediction(cm_by_gpu, ft: pd.DataFrame) -> np.ndarray:
    out = []
    for r in ft.itertuples(index=False):
        spec = ft_model_spec(pd.Series(r._asdict()))
        out.append(static_batch_latency_s(cm_by_gpu, spec, r.batch, r.input_len, r.output_len, r.tp, r.pp))
    return np.array(out)


def fit_framework(gpu_params: GPUParams, ft: pd.DataFrame) -> tuple[FrameworkParams, float]:
    fit_rows = ft[ft["tp"] == 1]
    cluster = make_cluster("a100", 8)

    def residual(x: np.ndarray) -> np.ndarray:
        fp = FittedParams(VERSION, {"a100": gpu_params}, FrameworkParams(*x), {})
        cm = AnalyticCostModel(cluster, fp)
        return np.log(ft_rows_prediction(cm, fit_rows)) - np.log(fit_rows["latency_s"].to_numpy())

    sol = optimize.least_squares(residual, [1.0, 2e-4, 2e-5], bounds=([0.1, 0, 0], [2.0, 5e-3, 5e-4]),
                                 x_scale=[0.1, 1e-4, 1e-5])
    return FrameworkParams(*map(float, sol.x)), float(np.median(np.abs(np.expm1(sol.fun))))


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fit_all(profiles_dir: Path, ft_csv: Path) -> FittedParams:
    profiles = load_vidur_compute(profiles_dir)
    net = load_vidur_network(profiles_dir)
    gpus, residuals = {}, {}
    for gpu in ("a40", "a100", "h100"):
        compute, res_c = fit_compute(profiles, gpu)
        comm, note = fit_comm(net, gpu)
        gpus[gpu] = GPUParams(compute, comm, {"compute": f"Vidur compute/{gpu} (all models, TP 1-8)",
                                              "comm": note})
        residuals[f"{gpu}.compute_median_abs_rel_err"] = round(res_c, 4)
    ft = load_ft_calibration(ft_csv)
    framework, res_f = fit_framework(gpus["a100"], ft)
    residuals["framework_median_abs_rel_err_fit_rows"] = round(res_f, 4)
    provenance = {
        "fitted_on": dt.date.today().isoformat(),
        "command": "harness calibrate --fit",
        "data": {"vidur_profiles": "profiles/vidur (microsoft/vidur @7d47513)",
                 "ft_calibration_sha256": _sha256(ft_csv)},
        "framework_fit_rows": "FT GPT rows with tp == 1 (tp 2/4/8 held out)",
        "residuals": residuals,
    }
    return FittedParams(VERSION, gpus, framework, provenance)


# ---- the named alternatives of the options (harness.cost_model.params) ----------------------
def fit_a40_p2p(net: pd.DataFrame) -> dict[bool, tuple[float, float]]:
    """A40 send/recv (Vidur a40_pairwise_nvlink) in fit_comm's model, {inter_node: (latency_s,
    bw_fraction)}: devices_per_node=2 (both GPUs in one node) against the A40's intra_node_Bps,
    devices_per_node=1 (two nodes, one flow) against 100 Gb/s / 8, as fit_comm's inter scope."""
    d = net[(net["node"] == "a40_pairwise_nvlink") & (net["collective"] == "send_recv")]
    return {False: _fit_collective(d[d["devices_per_node"] == 2], GPUS["a40"].intra_node_Bps),
            True: _fit_collective(d[d["devices_per_node"] == 1], INTER_NODE_BPS["a40"] / 8)}


def attention_fraction_vllm(engine_json: Path, params: FittedParams, regime: str = "decoding_largebs") -> float:
    """DistServe's vLLM fit, OPT-13B TP=1 on A100-80GB: its per-cached-token coefficient (ms,
    whole model) as KV bytes/s, over A100 peak bandwidth x A100 gemm_bw_fraction."""
    coeff_ms = json.loads(Path(engine_json).read_text())["facebook/opt-13b"]["1"][regime][1]
    kv_Bps = get_model("opt-13b").kv_bytes_per_token() / (coeff_ms * 1e-3)
    return kv_Bps / (GPUS["a100"].mem_bandwidth_Bps * params.for_gpu("a100").compute.gemm_bw_fraction)


def attention_fraction_h100_probe(probe_csv: Path, params: FittedParams) -> float:
    """Least squares (log) of the probe's decode rows (one layer, TP=1, lent H100, PyTorch SDPA)
    over attention_bw_fraction alone, every other constant as fitted."""
    dec = pd.read_csv(probe_csv).query("phase == 'decode'")
    cluster, measured = make_cluster("h100", 1), dec["measured_ms"].to_numpy() * 1e-3

    def residual(x: np.ndarray) -> np.ndarray:
        cm = AnalyticCostModel(cluster, params, attention_bw_fraction=float(x[0]))
        pred = [cm.decode_layer(get_model(r.model), r.batch, r.length, 1).total_s for r in dec.itertuples()]
        return np.log(pred) - np.log(measured)

    top = 1.0 / params.for_gpu("h100").compute.gemm_bw_fraction
    return float(optimize.least_squares(residual, [0.5], bounds=([0.05], [top])).x[0])


def derive_alternatives(params: FittedParams, net: pd.DataFrame, engine_json: Path,
                        probe_csv: Path = H100_PROBE_CSV) -> pd.DataFrame:
    """Every stored alternative (params.py) beside its value re-derived from its data now."""
    p2p = fit_a40_p2p(net)
    rows = [("A40_P2P_INTRA.latency_s", A40_P2P_INTRA.latency_s, p2p[False][0]),
            ("A40_P2P_INTRA.bw_fraction", A40_P2P_INTRA.bw_fraction, p2p[False][1]),
            ("A40_P2P_INTER.latency_s", A40_P2P_INTER.latency_s, p2p[True][0]),
            ("A40_P2P_INTER.bw_fraction", A40_P2P_INTER.bw_fraction, p2p[True][1]),
            ("attention_bw_fraction=sdpa-h100", ATTENTION_BW_FRACTIONS["sdpa-h100"].value,
             attention_fraction_h100_probe(probe_csv, params)),
            ("attention_bw_fraction=vllm-a100", ATTENTION_BW_FRACTIONS["vllm-a100"].value,
             attention_fraction_vllm(engine_json, params))]
    df = pd.DataFrame(rows, columns=["constant", "stored", "derived"])
    df["rel_diff"] = (df["stored"] - df["derived"]).abs() / df["derived"].abs()
    return df


# ---- the serving engines (harness.cost_model.engines) ---------------------------------------
# OPT-66B (HF facebook/opt-66b config.json): 64 layers, 9216 hidden, 72 heads of 128, FFN 36864,
# vocab 50272, 2048 (+2 offset) learned positions. Only to compare with the DistServe fits.
OPT_66B = ModelSpec(name="opt-66b", family="opt", num_encoder_layers=0, num_decoder_layers=64,
                    hidden_size=9216, num_heads=72, head_dim=128, ffn_size=36864, vocab_size=50272,
                    learned_positions=2050, published_params_b=66.0)
VLLM_FIT_MODELS: dict[str, ModelSpec] = {"facebook/opt-13b": get_model("opt-13b"), "facebook/opt-66b": OPT_66B}


def load_vllm_fits(engine_json: Path) -> dict[tuple[str, int], dict]:
    """{(model, tp): coefficients} of DistServe's vLLM fits (reference/engines/PROVENANCE.md)."""
    d = json.loads(Path(engine_json).read_text())
    return {(m, int(tp)): c for m, by_tp in d.items() for tp, c in by_tp.items()}


def vllm_fit_decode_s(coeffs: dict, batch: int, context_len: float) -> float:
    """One decode iteration of `batch` sequences of `context_len` cached tokens, as the fit
    prices it: a + b * sum(context + 1) + c * batch ms, small/large-batch coefficients."""
    regime = "decoding_smallbs" if batch < coeffs["decoding_large_small_bs_threshold"] else "decoding_largebs"
    a, b, c = coeffs[regime]
    return (a + b * batch * (context_len + 1) + c * batch) * 1e-3


def vllm_fit_prefill_s(coeffs: dict, batch: int, seq_len: float) -> float:
    """Prefill of `batch` prompts of `seq_len` tokens: a + b * sum(len) + c * sum(len^2) ms."""
    a, b, c = coeffs["prefill"]
    return (a + b * batch * seq_len + c * batch * seq_len**2) * 1e-3


def iteration_s(cm, model: ModelSpec, batch: int, length: float, tp: int, phase: str = "decode") -> float:
    """One whole-model forward on one TP group (no PP): every layer + LM head."""
    layer = (cm.decode_layer(model, batch, length, tp) if phase == "decode"
             else cm.encode_layer(model, batch, length, tp))
    return model.num_decoder_layers * layer.total_s + cm.lm_head_s(model, batch, tp)


def engine_overhead_vllm(engine_json: Path, params: FittedParams, attention_bw_fraction: float) -> tuple[float, float]:
    """vLLM's per-iteration executor overhead (s) as a + b * log2(tp): least squares over every
    (model, TP) of DistServe's fits of [fit decode at batch 1, context 1] minus [our iteration
    there, A100, decode attention at `attention_bw_fraction`, without FT's per-iteration
    overhead]. The intercepts are fits (weights streaming + executor), not raw measurements."""
    cm = AnalyticCostModel(make_cluster("a100", 8), params, attention_bw_fraction=attention_bw_fraction)
    ft_overhead = params.framework.per_iteration_overhead_s
    tps, gaps = [], []
    for (name, tp), coeffs in load_vllm_fits(engine_json).items():
        ours = iteration_s(cm, VLLM_FIT_MODELS[name], 1, 1, tp) - ft_overhead
        tps.append(tp)
        gaps.append(vllm_fit_decode_s(coeffs, 1, 1) - ours)
    x = np.vstack([np.ones(len(tps)), np.log2(tps)]).T
    a, b = np.linalg.lstsq(x, np.array(gaps), rcond=None)[0]
    return float(a), float(b)


def derive_engines(params: FittedParams, engine_json: Path) -> pd.DataFrame:
    """Every stored engine constant (engines.py) beside its value re-derived from its data now."""
    from harness.cost_model.engines import ENGINES
    vllm = ENGINES["vllm"]
    a, b = engine_overhead_vllm(engine_json, params, ATTENTION_BW_FRACTIONS[vllm.attention].value)
    rows = [("vllm.iteration_overhead_s[a]", vllm.iteration_overhead_s[0], a),
            ("vllm.iteration_overhead_s[b]", vllm.iteration_overhead_s[1], b)]
    df = pd.DataFrame(rows, columns=["constant", "stored", "derived"])
    df["rel_diff"] = (df["stored"] - df["derived"]).abs() / df["derived"].abs()
    return df
