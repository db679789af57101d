"""GPU cost models: time and memory of layers and communication (ExeGPT §2, §6)."""

from harness.cost_model.base import CostModel, LayerTime
from harness.cost_model.registry import COST_MODELS, get_cost_model

__all__ = ["COST_MODELS", "CostModel", "LayerTime", "get_cost_model"]
