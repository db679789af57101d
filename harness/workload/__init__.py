"""Length distributions, tasks, traces and request streams (ExeGPT §6-§7)."""

from harness.workload.distributions import LengthDistribution, empirical, fixed, truncated_normal
from harness.workload.shift import shifted_output, skew_normal
from harness.workload.streams import (
    STREAM_KINDS,
    Request,
    Requests,
    make_stream,
    offline,
    poisson,
    replay,
)
from harness.workload.tasks import TASKS, TaskSpec, Workload, fixed_workload, get_task
from harness.workload.traces import Trace, load_trace

__all__ = [
    "STREAM_KINDS", "TASKS", "LengthDistribution", "Request", "Requests", "TaskSpec", "Trace",
    "Workload", "empirical", "fixed", "fixed_workload", "get_task", "load_trace", "make_stream",
    "offline", "poisson", "replay", "shifted_output", "skew_normal", "truncated_normal",
]
