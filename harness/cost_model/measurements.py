"""Loaders for the measured data the cost model is fitted to and validated against.

- Vidur operator profiles (../shared/profiles/vidur/compute/<gpu>/<org>/<model>/mlp.csv):
  median time (ms) of each non-attention operator of one layer over token count and TP.
- Vidur collective profiles (../shared/profiles/vidur/network/<node>/{all_reduce,send_recv}.csv).
- FasterTransformer's published A100 latencies (../shared/reference/ft-published-calibration.csv).
The data are read from a path (config key `paths.*`), never copied into the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.data.manifest import missing_data
from harness.specs.models import ModelSpec

# Non-attention operators in the Vidur compute profiles (attention kernels were not shipped).
VIDUR_OPS = ("input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
             "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")


def _require(path: Path, what: str, dataset: str) -> Path:
    if not path.exists():
        raise missing_data(what, path, dataset)
    return path


@dataclass(frozen=True, slots=True)
class VidurComputeProfile:
    gpu: str                 # a100 | a40 | h100
    model_name: str          # e.g. meta-llama/Llama-2-7b-hf
    model: ModelSpec         # shape rebuilt from the profile's own columns
    table: pd.DataFrame      # num_tokens, tp, and one column per op: median seconds


def _spec_from_vidur_row(name: str, row: pd.Series) -> ModelSpec:
    heads, hidden = int(row["n_head"]), int(row["n_embd"])
    gated = str(row["use_gated_mlp"]).lower() == "true"
    return ModelSpec(name=name, family="llama" if gated else "gpt", num_encoder_layers=0,
                     num_decoder_layers=1, hidden_size=hidden, num_heads=heads,
                     head_dim=hidden // heads, ffn_size=int(row["n_expanded_embd"]),
                     vocab_size=int(row["vocab_size"]), num_kv_heads=int(row["n_kv_head"]),
                     gated_mlp=gated, bias=not gated)


def load_vidur_compute(profiles_dir: Path) -> list[VidurComputeProfile]:
    root = _require(Path(profiles_dir) / "compute", "Vidur compute profiles", "vidur-profiles")
    out = []
    for csv in sorted(root.glob("*/*/*/mlp.csv")):
        gpu, org, name = csv.parts[-4], csv.parts[-3], csv.parts[-2]
        df = pd.read_csv(csv)
        spec = _spec_from_vidur_row(f"{org}/{name}", df.iloc[0])
        table = pd.DataFrame({"num_tokens": df["num_tokens"].astype(int),
                              "tp": df["num_tensor_parallel_workers"].astype(int)})
        for op in VIDUR_OPS:
            col = f"time_stats.{op}.median"
            if col in df:
                table[op] = df[col].astype(float) * 1e-3
        # Duplicated measurements of one point: keep their median.
        table = table.groupby(["num_tokens", "tp"], as_index=False).median()
        out.append(VidurComputeProfile(gpu, f"{org}/{name}", spec, table))
    return out


def load_vidur_network(profiles_dir: Path) -> pd.DataFrame:
    """Rows: node (e.g. a100_dgx), collective, num_workers, devices_per_node, size_bytes, time_s."""
    root = _require(Path(profiles_dir) / "network", "Vidur network profiles", "vidur-profiles")
    frames = []
    for csv in sorted(root.glob("*/*.csv")):
        df = pd.read_csv(csv)
        coll = df["collective"].iloc[0]
        frames.append(pd.DataFrame({
            "node": csv.parent.name, "collective": coll,
            "num_workers": df["num_workers"].astype(int),
            "devices_per_node": df["devices_per_node"].astype(int),
            "size_bytes": df["size"].astype(float),
            "time_s": df[f"time_stats.{coll}.median"].astype(float) * 1e-3,
        }))
    net = pd.concat(frames, ignore_index=True)
    keys = ["node", "collective", "num_workers", "devices_per_node", "size_bytes"]
    return net.groupby(keys, as_index=False)["time_s"].median()


def load_ft_calibration(csv_path: Path) -> pd.DataFrame:
    """FT's published rows that this cost model can represent (GPT on A100, FP16, FT itself).

    Returns columns model, params_b, layers, hidden, heads, tp, pp, batch, input_len,
    output_len, latency_s. T5 rows are throughput over a test set with beam search/sampling
    (tokens/s, not a latency), and are not modelled.
    """
    df = pd.read_csv(_require(Path(csv_path), "FT calibration CSV", "ft-reference"))
    keep = (df["model"].str.startswith("GPT") & (df["precision"] == "FP16")
            & df["latency_ms"].notna() & df["notes"].str.contains("framework=FT"))
    df = df[keep].copy()
    out = pd.DataFrame({
        "model": df["model"], "params_b": df["params_b"].astype(float),
        "layers": df["layers"].astype(int), "hidden": df["hidden"].astype(int),
        "heads": df["heads"].astype(int), "tp": df["tp"].astype(int), "pp": df["pp"].astype(int),
        "batch": df["batch"].astype(int), "input_len": df["input_len"].astype(int),
        "output_len": df["output_len"].astype(int), "latency_s": df["latency_ms"].astype(float) * 1e-3,
    })
    out["vocab"] = df["notes"].str.extract(r"vocab (\d+)")[0].fillna(51200).astype(int)
    return out.reset_index(drop=True)


def ft_model_spec(row: pd.Series) -> ModelSpec:
    """GPT shape of an FT guide row (FFN 4h, learned positions; FT docs/gpt_guide.md)."""
    h, heads = int(row["hidden"]), int(row["heads"])
    return ModelSpec(name=str(row["model"]), family="gpt", num_encoder_layers=0,
                     num_decoder_layers=int(row["layers"]), hidden_size=h, num_heads=heads,
                     head_dim=h // heads, ffn_size=4 * h, vocab_size=int(row["vocab"]),
                     learned_positions=2048)


def geometric_errors(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    """|pred - meas| / meas."""
    return np.abs(np.asarray(pred) - np.asarray(meas)) / np.asarray(meas)
