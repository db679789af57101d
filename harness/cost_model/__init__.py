"""GPU cost models: time and memory of layers and communication (ExeGPT §2, §6)."""

from harness.cost_model.base import CostModel, LayerTime

__all__ = ["CostModel", "LayerTime"]
