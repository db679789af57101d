"""Length distributions, tasks, traces and request streams (ExeGPT §6-§7)."""

from harness.workload.distributions import LengthDistribution, empirical, fixed, truncated_normal
from harness.workload.tasks import TASKS, TaskSpec, Workload, fixed_workload, get_task

__all__ = [
    "TASKS", "LengthDistribution", "TaskSpec", "Workload", "empirical", "fixed",
    "fixed_workload", "get_task", "truncated_normal",
]
