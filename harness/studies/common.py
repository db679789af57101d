"""Shared plumbing of the studies: scenario contexts from the Hydra config, the load note."""

from __future__ import annotations

import os

from harness.config import Scenario, build_scenario, compose
from harness.policies import Context


def scenario(overrides: list[str] | tuple[str, ...]) -> tuple[Scenario, Context]:
    """The composed scenario (harness/conf/, `overrides` applied) and its policy context."""
    s = build_scenario(compose(list(overrides)))
    return s, Context.of(s)


def load_note() -> str:
    """This machine's load while timing (timings here are noisy: 2 shared cores)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"
