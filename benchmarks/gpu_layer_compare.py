"""Analytic cost model vs a layer timed on a real GPU (benchmarks/gpu_layer_probe.py).

    python -m benchmarks.gpu_layer_compare harness/cost_model/measured/h100_layer_probe.csv [gpu]
The probe is an independent check: its times were not used by any fit. The committed CSV was
measured on a lent NVIDIA H100 80GB HBM3 (PyTorch 2.11.0+cu130, SDPA attention, FP16).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from harness.cost_model import get_cost_model
from harness.specs import get_model
from harness.specs.hardware import make_cluster


def compare(csv_path: str, gpu: str = "h100") -> pd.DataFrame:
    df = pd.read_csv(csv_path)
    cm = get_cost_model("analytic", make_cluster(gpu, 1))
    pred = []
    for r in df.itertuples(index=False):
        m = get_model(r.model)
        lt = (cm.encode_layer(m, r.batch, r.length, 1) if r.phase == "prefill"
              else cm.decode_layer(m, r.batch, r.length, 1))
        pred.append(lt.total_s * 1e3)
    df["predicted_ms"] = pred
    df["abs_rel_err"] = np.abs(df["predicted_ms"] - df["measured_ms"]) / df["measured_ms"]
    return df


def run() -> dict:
    """Benchmark-runner entry: median |error| of the committed H100 probe."""
    from pathlib import Path
    df = compare(str(Path(__file__).resolve().parents[1] / "harness" / "cost_model" / "measured" / "h100_layer_probe.csv"))
    return {"h100_layer_median_abs_rel_err": float(df["abs_rel_err"].median()),
            "h100_layer_max_abs_rel_err": float(df["abs_rel_err"].max()), "points": len(df)}


if __name__ == "__main__":
    d = compare(*sys.argv[1:])
    print(d.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"median |error| {d['abs_rel_err'].median():.1%}, by phase:",
          d.groupby("phase")["abs_rel_err"].median().round(3).to_dict())
