"""The clock of real execution: one timestamp function for the profiler and the runner.

Times are `time.perf_counter()` (CLOCK_MONOTONIC, shared by all processes of the machine),
taken after the device finished the work queued so far, so a profile point and a run's
call are timed the same way.
"""

from __future__ import annotations

import time

import torch


def now() -> float:
    """A timestamp after the device finished the work queued so far (CUDA kernels are async)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()
