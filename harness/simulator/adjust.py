"""Runtime adjustment's decisions (ExeGPT §3, XRunner), shared by the discrete-event
simulator (`harness.simulator.discrete_event`) and the real runner (`harness.runner`), so
both choose the same encoder batch from the same observed decoding batch.

The rules (thresholds *unknown* in the paper, here config knobs of `RuntimeAdjustment`,
`runtime_adjustment.*` in harness/conf/config.yaml, default off):
- input rule: an encoder batch is the arrival-order prefix of the waiting requests whose
  total input length lies within `input_tolerance_rel` of the expected total (target count
  x E[input], the schedule's workload); it grows or shrinks one request at a time from the
  rounded target count, stopping at the band, and, where one request would jump over the
  band, at the count closer to the expected total;
- decode rule: before each encoding the decoding batch is compared with the schedule's
  expected B_D (`evaluate(plan, workload).decode_batch_size`; RRA: mean batch of the last
  phase, WAA: the live batch); outside `decode_tolerance_rel` the target count becomes
  B_E * expected / observed (a proportional correction: under a persistent ratio r the
  target settles at B_E / sqrt(r)), inside it returns to B_E;
- the count stays within B_E * (1 +- `max_step_rel`) (at least 1) and within what has
  arrived and what memory (`max_decode_batch`) admits.
An `Adjuster` is plain data (picklable): the runner ships one to every worker in its job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.errors import check
from harness.policies.base import Plan
from harness.simulator.expected import evaluate
from harness.workload.tasks import Workload


@dataclass(frozen=True, slots=True)
class RuntimeAdjustment:
    """Runtime batch adjustment knobs (ExeGPT §3; the paper gives no values). Default off."""

    enabled: bool = False
    input_tolerance_rel: float = 0.1    # encoder batch total input within +-10% of count x E[input]
    decode_tolerance_rel: float = 0.1   # decoding batch drift tolerated before B_E moves
    max_step_rel: float = 0.5           # encoder batch count within B_E * (1 +- this)

    def __post_init__(self) -> None:
        for name in ("input_tolerance_rel", "decode_tolerance_rel", "max_step_rel"):
            v = getattr(self, name)
            check(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
                  f"runtime_adjustment.{name}", f"must be a number >= 0, got {v!r}")


OFF = RuntimeAdjustment()


class Adjuster:
    """Chooses each encoder batch's size (module docstring). `observe` then `size`, once per
    encoder batch; `target` is the count the decode rule asks for."""

    def __init__(self, adj: RuntimeAdjustment, plan: Plan, workload: Workload) -> None:
        self.adj, self.b_e = adj, plan.encode_batch_size
        self.mean_in = float(workload.input.mean)
        self.b_d = float(evaluate(plan, workload).decode_batch_size)
        self.target = float(self.b_e)
        self.n_min = max(1, math.floor(self.b_e * (1 - adj.max_step_rel)))
        self.n_max = max(self.b_e, math.ceil(self.b_e * (1 + adj.max_step_rel)))

    def observe(self, decode_batch: float) -> None:
        """Decode rule: move the target count when the decoding batch left its band (an empty
        decoding batch is a drift of -100%: the target goes to the largest count)."""
        if self.b_d <= 0:
            return
        if abs(decode_batch / self.b_d - 1) > self.adj.decode_tolerance_rel:
            ratio = self.b_d / decode_batch if decode_batch > 0 else math.inf
            self.target = float(np.clip(self.b_e * ratio, self.n_min, self.n_max))
        else:
            self.target = float(self.b_e)

    def size(self, inputs: np.ndarray, available: int) -> int:
        """Input rule: how many of the waiting requests (`inputs`, arrival order) to encode."""
        hi = min(self.n_max, available)
        if hi <= 0:
            return 0
        lo = min(self.n_min, hi)
        s = np.cumsum(inputs[:hi], dtype=np.float64)
        goal, tol = self.target * self.mean_in, self.adj.input_tolerance_rel
        m = int(np.clip(round(self.target), lo, hi))
        while m > lo and s[m - 1] > goal * (1 + tol):
            m -= 1
            if s[m - 1] < goal * (1 - tol) and goal - s[m - 1] > s[m] - goal:
                return m + 1                        # the band lies inside one request
        while m < hi and s[m - 1] < goal * (1 - tol):
            if s[m] > goal * (1 + tol) and goal - s[m - 1] < s[m] - goal:
                break
            m += 1
        return m
