"""`harness calibrate`: the analytic cost model against every measured point it can model.

Sources: FasterTransformer's published A100 GPT latencies (end to end: context + decoding),
the Vidur operator profiles (per-layer time of the non-attention operators, A100/A40/H100)
and the Vidur collective profiles. The last line is the median |error| per source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.cost_model.analytic import AnalyticCostModel
from harness.cost_model.fit import fit_all, ft_rows_prediction, vidur_kernel_rows
from harness.cost_model.measurements import (
    load_ft_calibration,
    load_vidur_compute,
    load_vidur_network,
)
from harness.cost_model.params import FITTED_PATH, FittedParams, load
from harness.specs.hardware import make_cluster


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


def run(profiles_dir: Path, ft_csv: Path, fit: bool = False, out=print) -> dict[str, float]:
    if fit:
        params = fit_all(profiles_dir, ft_csv)
        FITTED_PATH.write_text(params.to_json() + "\n")
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
    return s
