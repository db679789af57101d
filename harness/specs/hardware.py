"""GPU and cluster specifications (ExeGPT §7: 48 x A40 and 16 x A100 clusters).

Datasheet numbers only; achievable fractions of them are *fitted* in harness.cost_model.
Bandwidths are per direction, in bytes/s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import UserError, check, unknown_name

GB = 1e9
MiB = 2**20


@dataclass(frozen=True, slots=True)
class GPUSpec:
    name: str
    fp16_tflops: float            # dense FP16 tensor-core peak, TFLOP/s
    mem_bandwidth_Bps: float      # HBM/GDDR bandwidth, bytes/s
    memory_bytes: int             # usable device memory as nvidia-smi reports it
    intra_node_link: str          # "pcie4" | "nvlink3" | "nvlink4"
    intra_node_Bps: float         # GPU<->GPU bandwidth inside a node, per direction
    host_link_Bps: float          # GPU<->host (PCIe) per direction: WAA KV transfer (ExeGPT §3)
    source: str

    @property
    def fp16_flops(self) -> float:
        return self.fp16_tflops * 1e12


GPUS: dict[str, GPUSpec] = {
    # NVIDIA A40 datasheet (2020): 149.7 TFLOP/s FP16 tensor (dense), 696 GB/s GDDR6,
    # 48 GB (46068 MiB in nvidia-smi); ExeGPT §7: PCIe 4.0 x16 inside a node (32 GB/s/dir).
    "a40": GPUSpec("a40", 149.7, 696 * GB, 46068 * MiB, "pcie4", 32 * GB, 32 * GB,
                   "NVIDIA A40 datasheet; PCIe 4.0 x16 = 32 GB/s per direction"),
    # NVIDIA A100 80GB SXM datasheet: 312 TFLOP/s FP16 dense, 2039 GB/s HBM2e, 81920 MiB;
    # NVLink 3.0 600 GB/s total = 300 GB/s per direction; host PCIe 4.0 x16.
    "a100": GPUSpec("a100", 312.0, 2039 * GB, 81920 * MiB, "nvlink3", 300 * GB, 32 * GB,
                    "NVIDIA A100 80GB SXM datasheet; NVLink3 300 GB/s per direction"),
    # NVIDIA H100 SXM5 datasheet: 989.4 TFLOP/s FP16 dense, 3.35 TB/s HBM3, 81559 MiB;
    # NVLink 4 900 GB/s total = 450 GB/s per direction; host PCIe 5.0 x16 = 64 GB/s.
    "h100": GPUSpec("h100", 989.4, 3350 * GB, 81559 * MiB, "nvlink4", 450 * GB, 64 * GB,
                    "NVIDIA H100 SXM datasheet; NVLink4 450 GB/s per direction"),
    # A CPU "GPU": one worker process (one core, 1 thread) of this 2-core VM (AMD EPYC, 23 GiB
    # RAM; issue 7, docs/real-execution.md). Nominal numbers only (not used for timing: the
    # `profiled` cost model reads tables measured on the machine); memory = half the RAM.
    "cpu": GPUSpec("cpu", 0.1, 20 * GB, 10 * 2**30, "loopback", 5 * GB, 5 * GB,
                   "this machine's CPU worker; nominal, timings come from harness profile"),
}

# Inter-node bandwidth per node, per direction (ExeGPT §7): the A40 cluster has one
# 100 Gb/s InfiniBand port per node; the A100 cluster 8 x 200 Gb/s HDR per node.
# H100: DGX H100 has 8 x 400 Gb/s NDR (NVIDIA DGX H100 user guide).
INTER_NODE_BPS: dict[str, float] = {"a40": 100e9 / 8, "a100": 8 * 200e9 / 8, "h100": 8 * 400e9 / 8,
                                    "cpu": 5e9}   # cpu: one machine, nominal
GPUS_PER_NODE = 8  # ExeGPT §7: 8 GPUs per node in both clusters


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    name: str
    gpu: GPUSpec
    num_gpus: int
    gpus_per_node: int
    inter_node_Bps_per_node: float

    def __post_init__(self) -> None:
        check(self.num_gpus >= 1, "cluster.num_gpus", f"must be >= 1, got {self.num_gpus}")
        check(self.gpus_per_node >= 1, "cluster.gpus_per_node", "must be >= 1")
        if self.num_gpus > self.gpus_per_node:
            check(self.num_gpus % self.gpus_per_node == 0, "cluster.num_gpus",
                  f"{self.num_gpus} is not a multiple of gpus_per_node={self.gpus_per_node}")

    @property
    def num_nodes(self) -> int:
        return max(1, self.num_gpus // self.gpus_per_node)

    @property
    def gpus_in_node(self) -> int:
        """GPUs that share one node (the TP domain of FT: max TP inside a node)."""
        return min(self.num_gpus, self.gpus_per_node)

    @property
    def inter_node_Bps_per_gpu(self) -> float:
        return self.inter_node_Bps_per_node / self.gpus_in_node


_CLUSTER_RE = re.compile(r"^(?P<gpu>[a-z0-9]+)x(?P<n>\d+)$")
PAPER_CLUSTERS = ("a40x4", "a40x8", "a40x16", "a40x32", "a40x48", "a100x16")


def make_cluster(gpu: str, num_gpus: int, gpus_per_node: int = GPUS_PER_NODE,
                 inter_node_Bps_per_node: float | None = None, name: str | None = None) -> ClusterSpec:
    if gpu not in GPUS:
        raise unknown_name("cluster.gpu", gpu, GPUS)
    bw = INTER_NODE_BPS[gpu] if inter_node_Bps_per_node is None else inter_node_Bps_per_node
    return ClusterSpec(name or f"{gpu}x{num_gpus}", GPUS[gpu], int(num_gpus), int(gpus_per_node), bw)


CLUSTERS: dict[str, ClusterSpec] = {n: make_cluster(n.split("x")[0], int(n.split("x")[1]))
                                    for n in PAPER_CLUSTERS}


def get_gpu(name: str) -> GPUSpec:
    if name not in GPUS:
        raise unknown_name("gpu", name, GPUS)
    return GPUS[name]


def get_cluster(name: str) -> ClusterSpec:
    """A paper cluster by name, or any `<gpu>x<N>` (e.g. `h100x8`, `a40x12`)."""
    if name in CLUSTERS:
        return CLUSTERS[name]
    m = _CLUSTER_RE.match(name)
    if m and m["gpu"] in GPUS:
        return make_cluster(m["gpu"], int(m["n"]))
    raise UserError(f"cluster: unknown '{name}'; valid: {', '.join(PAPER_CLUSTERS)} "
                    f"or <gpu>x<N> with gpu in {', '.join(GPUS)}")
