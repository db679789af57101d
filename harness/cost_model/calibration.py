"""`harness calibrate`: the analytic cost model against every measured point it can model.

Sources: FasterTransformer's published A100 GPT latencies (end to end: context + decoding),
the Vidur operator profiles (per-layer time of the non-attention operators, A100/A40/H100)
and the Vidur collective profiles. The last line is the median |error| per source.
Then: where every constant of the A40 comes from (`a40_grounding`: measured on A40, datasheet,
or transferred from another GPU, beside what the A40's own data say), and the named
alternatives of the cost model's options re-derived from their data (fit.derive_alternatives).
Last, the serving engines (harness.cost_model.engines) against DistServe's vLLM fits on A100
(`engine_table`): decode iterations at batch x context and prefills, whole model, one TP group.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from harness.atomic import write_text
from harness.cost_model.analytic import AnalyticCostModel
from harness.cost_model.engines import ENGINES
from harness.cost_model.fit import (
    VLLM_FIT_MODELS,
    VLLM_FITS,
    derive_alternatives,
    derive_engines,
    fit_a40_p2p,
    fit_all,
    ft_rows_prediction,
    iteration_s,
    load_vllm_fits,
    vidur_kernel_rows,
    vllm_fit_decode_s,
    vllm_fit_prefill_s,
)
from harness.cost_model.measurements import (
    load_ft_calibration,
    load_vidur_compute,
    load_vidur_network,
)
from harness.cost_model.params import (
    A40_P2P_INTER,
    A40_P2P_INTRA,
    ATTENTION_BW_FRACTIONS,
    FITTED_PATH,
    FittedParams,
    load,
)
from harness.specs.hardware import GPUS, INTER_NODE_BPS, make_cluster


def ft_table(params: FittedParams, ft_csv: Path) -> pd.DataFrame:
    ft = load_ft_calibration(ft_csv)
    cm = AnalyticCostModel(make_cluster("a100", 8), params)
    ft["predicted_s"] = ft_rows_prediction(cm, ft)
    ft["abs_rel_err"] = (ft["predicted_s"] - ft["latency_s"]).abs() / ft["latency_s"]
    ft["split"] = np.where(ft["tp"] == 1, "fit", "held-out")
    return ft


def vidur_layer_table(params: FittedParams, profiles_dir: Path) -> pd.DataFrame:
    """Per-layer (sum of measured operators) predicted vs measured, every GPU/model/TP/tokens."""
    profiles = load_vidur_compute(profiles_dir)
    frames = []
    for gpu in sorted({p.gpu for p in profiles}):
        cm = AnalyticCostModel(make_cluster(gpu, 1), params)
        rows = vidur_kernel_rows(profiles, gpu)
        df = pd.DataFrame({"layer": [r[2] for r in rows], "measured_s": [r[1] for r in rows],
                           "predicted_s": [cm.kernel_s(r[0]) for r in rows]})
        per_layer = df.groupby("layer")[["measured_s", "predicted_s"]].sum()
        per_layer["gpu"] = gpu
        frames.append(per_layer)
    out = pd.concat(frames, ignore_index=True)
    out["abs_rel_err"] = (out["predicted_s"] - out["measured_s"]).abs() / out["measured_s"]
    return out


def collective_table(params: FittedParams, profiles_dir: Path) -> pd.DataFrame:
    net = load_vidur_network(profiles_dir)
    net = net[net["node"].str.endswith("_dgx")].copy()
    pred = []
    for r in net.itertuples(index=False):
        gpu = r.node.split("_")[0]
        cm = AnalyticCostModel(make_cluster(gpu, 16), params)
        inter = r.num_workers > r.devices_per_node
        pred.append(cm.allreduce_s(r.size_bytes, r.num_workers, inter) if r.collective == "all_reduce"
                    else cm.p2p_s(r.size_bytes, inter))
    net["predicted_s"] = pred
    net["abs_rel_err"] = (net["predicted_s"] - net["time_s"]).abs() / net["time_s"]
    return net


def summary(ft: pd.DataFrame, layers: pd.DataFrame, coll: pd.DataFrame) -> dict[str, float]:
    s = {"ft_all": ft["abs_rel_err"].median(),
         "ft_fit_rows": ft.loc[ft["split"] == "fit", "abs_rel_err"].median(),
         "ft_held_out": ft.loc[ft["split"] == "held-out", "abs_rel_err"].median()}
    for gpu, g in layers.groupby("gpu"):
        s[f"vidur_layer_{gpu}"] = g["abs_rel_err"].median()
    s["collectives"] = coll["abs_rel_err"].median()
    return {k: float(v) for k, v in s.items()}


# ---- A40 grounding ------------------------------------------------------------------------
_A40_PAIR = "Vidur a40_pairwise_nvlink send_recv"
_GROUNDING_COLUMNS = ["constant", "value", "source", "a40_data"]


def _a40_pair_Bps(net: pd.DataFrame | None) -> dict[bool, float | None]:
    """Median size/time of the A40 pair data over sizes >= 1 MiB, {inter_node: bytes/s}."""
    if net is None:
        return {False: None, True: None}
    d = net[(net["node"] == "a40_pairwise_nvlink") & (net["collective"] == "send_recv")
            & (net["size_bytes"] >= 2**20)]
    return {inter: float((g["size_bytes"] / g["time_s"]).median())
            for inter, g in d.groupby(d["devices_per_node"] == 1)}


def _datasheet_rows(params: FittedParams, bw: dict[bool, float | None]) -> list[tuple]:
    gpu, c = GPUS["a40"], params.for_gpu("a40").compute
    intra = ("no data" if bw[False] is None else f"{_A40_PAIR}, 2 GPUs in one node, >= 1 MiB: {bw[False] / 1e9:.1f}"
             f" GB/s = {bw[False] / gpu.intra_node_Bps:.0%} of it (neither P2P over PCIe x16 nor the NVLink"
             f" bridge, 56 GB/s/dir)")
    inter = ("no data" if bw[True] is None else f"{_A40_PAIR}, one GPU in each of 2 nodes, >= 1 MiB: "
             f"{bw[True] / 1e9:.1f} GB/s = {bw[True] / INTER_NODE_BPS['a40']:.0%} of it (Vidur's network)")
    return [
        ("gpu.fp16_tflops", gpu.fp16_tflops, "datasheet (A40)",
         f"Vidur A40 GEMMs reach gemm_peak_fraction {c.gemm_peak_fraction:.2f} of it"),
        ("gpu.mem_bandwidth_Bps", gpu.mem_bandwidth_Bps, "datasheet (A40)",
         f"Vidur A40 weight-streaming GEMMs reach gemm_bw_fraction {c.gemm_bw_fraction:.2f} of it"),
        ("gpu.memory_bytes", gpu.memory_bytes, "datasheet (A40), as nvidia-smi reports it", "no data"),
        ("gpu.intra_node_Bps", gpu.intra_node_Bps, "ExeGPT §7 PCIe 4.0 x16 (32 GB/s raw, 31.5 after "
         "128b/130b)", intra),
        ("gpu.host_link_Bps", gpu.host_link_Bps, "PCIe 4.0 x16 (A40 datasheet)", "no data"),
        ("cluster.inter_node_Bps_per_node", INTER_NODE_BPS["a40"], "ExeGPT §7: 100 Gb/s InfiniBand per node",
         inter),
    ]


def _comm_sources(params: FittedParams) -> dict[str, str]:
    """'send_recv/intra' -> its source, from the fitted JSON's `sources` (written by fit_comm)."""
    out = {}
    for note in params.for_gpu("a40").sources["comm"].split("; "):
        key, _, src = note.partition(": ")
        data = src.split(" (")[0]                          # e.g. "Vidur network/a100_dgx"
        gpu = data.rsplit("/", 1)[-1].split("_")[0].upper()
        out[key] = f"transferred from {gpu} DGX ({data})" if "transferred" in src else f"measured on A40 ({data})"
    return out


def _comm_rows(params: FittedParams, p2p: dict[bool, tuple[float, float]]) -> list[tuple]:
    """The A40's comm constants (transferred) beside the A40 pair fit; an all-reduce has no A40
    data, but a ring of n GPUs from the A40 p2p is latency 2(n-1) x p2p latency, fraction = p2p's."""
    c, notes = params.for_gpu("a40").comm, _comm_sources(params)
    where = {False: f"{_A40_PAIR}, 2 GPUs in one node", True: f"{_A40_PAIR}, 2 nodes, one flow"}
    rows = []
    for inter, tag, ns in ((False, "", (4, 8)), (True, "_inter", (16,))):
        lat, frac = p2p[inter]
        t_lat, t_frac = getattr(c, f"p2p{tag}_latency_s"), getattr(c, f"p2p{tag}_bw_fraction")
        a_lat, a_frac = getattr(c, f"allreduce{tag}_latency_s"), getattr(c, f"allreduce{tag}_bw_fraction")
        rings = ", ".join(f"n={n}: {2 * (n - 1) * lat:.3g} s" for n in ns)
        scope = "inter" if inter else "intra"
        p2p_src, ar_src = notes[f"send_recv/{scope}"], notes[f"all_reduce/{scope}"]
        rows += [(f"comm.p2p{tag}_latency_s", t_lat, p2p_src, f"{where[inter]}: {lat:.3g} s (A40/transferred "
                  f"{lat / t_lat:.2f})"),
                 (f"comm.p2p{tag}_bw_fraction", t_frac, p2p_src, f"{where[inter]}: {frac:.3g} (A40/transferred "
                  f"{frac / t_frac:.2f})"),
                 (f"comm.allreduce{tag}_latency_s", a_lat, ar_src, f"no A40 all-reduce; ring from the A40 p2p, "
                  f"2(n-1) x {lat:.3g} s: {rings}"),
                 (f"comm.allreduce{tag}_bw_fraction", a_frac, ar_src, f"no A40 all-reduce; ring from the A40 p2p: "
                  f"{frac:.3g} (A40/transferred {frac / a_frac:.2f})")]
    return rows


def _framework_rows(params: FittedParams) -> list[tuple]:
    f, src = params.framework, "fitted to FT's published A100 GPT latencies (TP=1 rows), transferred"
    alts = ", ".join(f"{k} {a.value:.2f}" for k, a in ATTENTION_BW_FRACTIONS.items() if a.value is not None)
    return [("framework.attention_bw_fraction", f.attention_bw_fraction, src,
             f"no A40 attention data (Vidur's attention profiles not shipped); other engines/GPUs: {alts}"),
            ("framework.per_iteration_overhead_s", f.per_iteration_overhead_s, src, "no data"),
            ("framework.per_layer_overhead_s", f.per_layer_overhead_s, src, "no data")]


def a40_grounding(params: FittedParams | None = None, net: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every constant the analytic cost model uses for the A40: value, source (measured on A40,
    datasheet, transferred from which GPU) and what the A40's own data say. `net`: the Vidur
    network profiles (load_vidur_network); without them the A40 p2p is the stored fit."""
    params = load() if params is None else params
    p2p = (fit_a40_p2p(net) if net is not None else
           {False: (A40_P2P_INTRA.latency_s, A40_P2P_INTRA.bw_fraction),
            True: (A40_P2P_INTER.latency_s, A40_P2P_INTER.bw_fraction)})
    res = params.provenance.get("residuals", {}).get("a40.compute_median_abs_rel_err")
    compute = [(f"compute.{k}", v, f"measured on A40: {params.for_gpu('a40').sources['compute']}",
                f"fit median |error| {res:.1%} per operator" if res is not None else "")
               for k, v in asdict(params.for_gpu("a40").compute).items()]
    rows = (_datasheet_rows(params, _a40_pair_Bps(net)) + compute + _comm_rows(params, p2p)
            + _framework_rows(params))
    return pd.DataFrame(rows, columns=_GROUNDING_COLUMNS)


def _print_grounding(params: FittedParams, profiles_dir: Path, ft_csv: Path, out) -> None:
    net = load_vidur_network(profiles_dir)
    out("\n# A40: where each constant comes from (and what the A40's own data say)")
    for r in a40_grounding(params, net).itertuples(index=False):
        out(f"{r.constant:<36} {r.value:>11.4g}  {r.source}\n{'':<50}A40 data: {r.a40_data}")
    engine_json = Path(ft_csv).parent / VLLM_FITS
    if engine_json.exists():
        out("\n# Named alternatives of the options (harness/cost_model/params.py) re-derived from their data")
        for r in derive_alternatives(params, net, engine_json).itertuples(index=False):
            out(f"{r.constant:<34} stored={r.stored:.6g} derived={r.derived:.6g} rel_diff={r.rel_diff:.1e}")
        _print_engines(params, engine_json, out)


# ---- serving engines vs DistServe's vLLM fits ------------------------------------------------
ENGINE_BATCHES = (1, 8, 32, 64)
ENGINE_CONTEXTS = (128, 512, 1024, 2048)
PREFILL_LENS = (128, 512, 1024, 2048)


def engine_table(params: FittedParams, engine_json: Path) -> pd.DataFrame:
    """One row per (model, TP, phase, batch, length): every engine's whole-model iteration
    (A100, no PP) beside the fit's (ms) and their ratio `<engine>_ratio` = ours / fit.
    Decode: batch x context over ENGINE_BATCHES x ENGINE_CONTEXTS; prefill: one prompt."""
    cluster = make_cluster("a100", 8)
    cms = {e: AnalyticCostModel(cluster, params, engine=e) for e in ENGINES}
    rows = []
    for (name, tp), coeffs in load_vllm_fits(engine_json).items():
        model = VLLM_FIT_MODELS[name]
        points = ([("decode", b, c, vllm_fit_decode_s(coeffs, b, c)) for b in ENGINE_BATCHES for c in ENGINE_CONTEXTS]
                  + [("prefill", 1, n, vllm_fit_prefill_s(coeffs, 1, n)) for n in PREFILL_LENS])
        for phase, b, n, fit_s in points:
            row = {"model": model.name, "tp": tp, "phase": phase, "batch": b, "length": n, "fit_ms": fit_s * 1e3}
            for e, cm in cms.items():
                row[f"{e}_ms"] = iteration_s(cm, model, b, n, tp, phase) * 1e3
                row[f"{e}_ratio"] = row[f"{e}_ms"] / row["fit_ms"]
            rows.append(row)
    return pd.DataFrame(rows)


def engine_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (model, TP, phase): median and max of ours / fit per engine, and for decode the
    per-cached-token cost ratio (slope over context at batch 32 vs the fit's coefficient)."""
    out = []
    for (model, tp, phase), g in table.groupby(["model", "tp", "phase"], sort=False):
        row = {"model": model, "tp": tp, "phase": phase}
        for e in ENGINES:
            row[f"{e}_median"] = g[f"{e}_ratio"].median()
            row[f"{e}_max"] = g[f"{e}_ratio"].max()
            row[f"{e}_min"] = g[f"{e}_ratio"].min()
            if phase == "decode":
                d = g[g["batch"] == 32].sort_values("length")
                dx = 32 * (d["length"].iloc[-1] - d["length"].iloc[0])
                row[f"{e}_per_token"] = ((d[f"{e}_ms"].iloc[-1] - d[f"{e}_ms"].iloc[0])
                                         / (d["fit_ms"].iloc[-1] - d["fit_ms"].iloc[0])) if dx else np.nan
        out.append(row)
    return pd.DataFrame(out)


def _print_engines(params: FittedParams, engine_json: Path, out) -> None:
    out("\n# Engines (harness/cost_model/engines.py) vs DistServe's vLLM fits, A100-80GB, whole model, "
        "one TP group (ms; ratio = ours / fit)")
    for r in derive_engines(params, engine_json).itertuples(index=False):
        out(f"{r.constant:<34} stored={r.stored:.6g} derived={r.derived:.6g} rel_diff={r.rel_diff:.1e}")
    table = engine_table(params, engine_json)
    names = list(ENGINES)
    out(f"{'model':<8} {'tp':>2} {'phase':<7} {'batch':>5} {'len':>5} {'fit_ms':>8} "
        + " ".join(f"{e + '_ms':>8} {e + '/fit':>8}" for e in names))
    shown = table[((table["model"] == "opt-13b") & (table["tp"] == 1)) | (table["model"] == "opt-66b")]
    for r in shown.itertuples(index=False):
        d = r._asdict()
        out(f"{r.model:<8} {r.tp:>2} {r.phase:<7} {r.batch:>5} {r.length:>5} {r.fit_ms:>8.1f} "
            + " ".join(f"{d[e + '_ms']:>8.1f} {d[e + '_ratio']:>8.2f}" for e in names))
    out("# per (model, TP, phase): ours/fit median [min, max]; decode: per-cached-token cost ratio at batch 32")
    for r in engine_summary(table).itertuples(index=False):
        d = r._asdict()
        cells = [f"{e} {d[e + '_median']:.2f} [{d[e + '_min']:.2f}, {d[e + '_max']:.2f}]"
                 + (f" per-token {d[e + '_per_token']:.2f}" if r.phase == "decode" else "") for e in names]
        out(f"{r.model:<8} tp={r.tp} {r.phase:<7} " + "; ".join(cells))


def run(profiles_dir: Path, ft_csv: Path, fit: bool = False, out=print) -> dict[str, float]:
    if fit:
        params = fit_all(profiles_dir, ft_csv)
        write_text(FITTED_PATH, params.to_json() + "\n")
        load.cache_clear()
        out(f"wrote {FITTED_PATH}")
    params = load()
    ft = ft_table(params, ft_csv)
    out("# FasterTransformer published latency (A100-80GB, FP16) vs analytic model")
    out(f"{'model':<9} {'tp':>2} {'batch':>5} {'in':>4} {'out':>4} {'published_ms':>12} "
        f"{'predicted_ms':>12} {'|err|':>6}  split")
    for r in ft.itertuples(index=False):
        out(f"{r.model:<9} {r.tp:>2} {r.batch:>5} {r.input_len:>4} {r.output_len:>4} "
            f"{r.latency_s * 1e3:>12.1f} {r.predicted_s * 1e3:>12.1f} {r.abs_rel_err:>6.1%}  {r.split}")
    layers = vidur_layer_table(params, profiles_dir)
    out("\n# Vidur per-layer time (non-attention operators) by GPU: |error| quantiles")
    for gpu, g in layers.groupby("gpu"):
        e = g["abs_rel_err"]
        out(f"{gpu:<5} layers={len(g):>5} median={e.median():.1%} p90={e.quantile(0.9):.1%} max={e.max():.1%}")
    coll = collective_table(params, profiles_dir)
    out("\n# Vidur collectives (DGX nodes): |error| median by node/collective/workers")
    for key, g in coll.groupby(["node", "collective", "num_workers", "devices_per_node"]):
        out(f"{key[0]:<9} {key[1]:<10} n={key[2]:<2} per_node={key[3]:<2} median={g['abs_rel_err'].median():.1%}")
    s = summary(ft, layers, coll)
    out("\nmedian |error|: " + ", ".join(f"{k}={v:.1%}" for k, v in s.items()))
    _print_grounding(params, profiles_dir, ft_csv, out)
    return s
