"""Model, hardware and cluster specifications (ExeGPT §7)."""

from harness.specs.hardware import CLUSTERS, GPUS, ClusterSpec, GPUSpec, get_cluster, get_gpu
from harness.specs.models import MODELS, ModelSpec, get_model

__all__ = [
    "CLUSTERS", "GPUS", "MODELS", "ClusterSpec", "GPUSpec", "ModelSpec",
    "get_cluster", "get_gpu", "get_model",
]
