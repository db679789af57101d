"""Cost models by name: `analytic` (fitted roofline); a `profiled` model joins later."""

from __future__ import annotations

from harness.cost_model.base import CostModel
from harness.registry import Registry
from harness.specs.hardware import ClusterSpec

COST_MODELS: Registry = Registry("cost_model", entry_point_group="harness.cost_models")
COST_MODELS.register("analytic", "harness.cost_model.analytic:AnalyticCostModel")


def get_cost_model(name: str, cluster: ClusterSpec) -> CostModel:
    return COST_MODELS.get(name)(cluster)
