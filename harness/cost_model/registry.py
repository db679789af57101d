"""Cost models by name: `analytic` (fitted roofline), `profiled` (tables measured by `harness profile`)."""

from __future__ import annotations

from harness.cost_model.base import CostModel
from harness.registry import Registry
from harness.specs.hardware import ClusterSpec

COST_MODELS: Registry = Registry("cost_model", entry_point_group="harness.cost_models")
COST_MODELS.register("analytic", "harness.cost_model.analytic:AnalyticCostModel")
COST_MODELS.register("profiled", "harness.cost_model.profiled:ProfiledCostModel")


def get_cost_model(name: str, cluster: ClusterSpec, **options) -> CostModel:
    """`options`: the `cost_model.*` keys besides `name` (model-specific, validated by the model)."""
    return COST_MODELS.get(name)(cluster, **options)
