"""Cost of redeploying a schedule: weight bytes over host-DRAM and SSD bandwidth (ExeGPT §8,
Table 4: 0.9-3.5 s from DRAM, 2.1-15.1 s from SSD for GPT-3 39B-341B).

Model: every GPU loads its shard of the FP16 weights (WAA on a decoder-only model: two
copies, one per pipeline, ExeGPT §3) at the same time.
- DRAM, two brackets: `dram_s`, each GPU over its own PCIe 4.0 x16 link at
  `PCIE4_X16_EFFECTIVE_BPS`, GPUs in parallel (time = bytes per GPU / link: the lower
  bound); `dram_shared_s`, all GPUs of a node behind one x16 of host bandwidth (time = bytes
  per node / link: the upper bound, a node whose GPUs hang off one PCIe switch uplink).
- SSD: one NVMe drive per node feeds its GPUs: time = bytes per node / drive bandwidth
  (the DRAM hop overlaps); PCIe 3.0 and 4.0 drives bracket it.
Constants (not measured here):
- PCIe 4.0 x16: 16 GT/s x 16 lanes x 128b/130b = 31.5 GB/s per direction (PCI-SIG PCIe 4.0
  base specification); ~25 GB/s is the usual pinned host->device copy rate (CUDA samples
  `bandwidthTest` on PCIe 4.0 hosts reach 24-26 GB/s), taken as effective.
- NVMe SSD: 3.5 GB/s sequential read (PCIe 3.0 x4, e.g. Samsung 970 EVO Plus datasheet,
  3,500 MB/s) and 7.0 GB/s (PCIe 4.0 x4, e.g. Samsung 980 PRO datasheet, 7,000 MB/s).
"""

from __future__ import annotations

import math

import pandas as pd

from harness.specs import get_cluster, get_model
from harness.specs.paper import PAPER_CLUSTER, REDEPLOY_S

PCIE4_X16_EFFECTIVE_BPS = 25e9     # bytes/s over §7's PCIe 4.0 x16; the rate is not the paper's (module doc)
NVME_PCIE3_BPS = 3.5e9             # bytes/s, datasheets (module doc); not the paper's
NVME_PCIE4_BPS = 7.0e9
MODELS = ("opt-13b", "gpt3-39b", "gpt3-101b", "gpt3-175b", "gpt3-341b")


def redeploy_s(model_name: str, cluster_name: str, weight_copies: int = 1) -> dict:
    """Redeploy times (s) of one model on one cluster (module doc)."""
    m, c = get_model(model_name), get_cluster(cluster_name)
    total = m.num_params() * m.dtype_bytes * weight_copies
    per_gpu = total / c.num_gpus
    per_node = per_gpu * min(c.num_gpus, c.gpus_per_node)
    paper = REDEPLOY_S.get(model_name, (math.nan, math.nan))   # §8 (DRAM, SSD), ends of the range
    return {"model": model_name, "cluster": cluster_name, "weight_copies": weight_copies,
            "weights_GB": total / 1e9, "per_gpu_GB": per_gpu / 1e9, "per_node_GB": per_node / 1e9,
            "dram_s": per_gpu / PCIE4_X16_EFFECTIVE_BPS,
            "dram_shared_s": per_node / PCIE4_X16_EFFECTIVE_BPS,
            "ssd_pcie4_s": per_node / NVME_PCIE4_BPS, "ssd_pcie3_s": per_node / NVME_PCIE3_BPS,
            "paper_dram_s": paper[0], "paper_ssd_s": paper[1]}


def redeploy_table() -> pd.DataFrame:
    """Every paper model on its paper cluster (one weight copy), plus OPT-13B under WAA (two)."""
    rows = [redeploy_s(m, PAPER_CLUSTER[m]) for m in MODELS]
    rows.append(redeploy_s("opt-13b", PAPER_CLUSTER["opt-13b"], weight_copies=2))
    return pd.DataFrame(rows)
