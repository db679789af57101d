"""Fault injection for the worker pool (tests and diagnosis): a worker that dies or hangs.

`harness.engine.pool` must end such a job within `timeout_s` with a clear error and keep
the messages that arrived before (tests/test_runner_dist.py).
"""

from __future__ import annotations

import os
import time


def die(ctx, payload: dict) -> None:
    """Every rank emits `payload["messages"]` messages; rank `payload["rank"]` then exits."""
    for i in range(payload.get("messages", 1)):
        ctx.emit(("tick", ctx.rank, i))
    if ctx.rank == payload.get("rank", 1):
        time.sleep(0.2)
        os._exit(3)
    time.sleep(payload.get("sleep_s", 30))


def hang(ctx, payload: dict) -> None:
    """Emit one message, then sleep silently for `payload["sleep_s"]`."""
    ctx.emit(("tick", ctx.rank, 0))
    time.sleep(payload.get("sleep_s", 30))
