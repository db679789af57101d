"""A policy is a batching program (issue 17): what runs, when, on which worker group.

A policy's `run(plan, x)` drives an `Executor` `x` through one request stream: it decides
which requests prefill (whole prompts, or chunks of them), when the live batch of a group
decodes and for how many iterations, when KV caches move between groups and which
requests are preempted (their KV freed, recomputed later). The executor does the work and
keeps the clock:
- the discrete-event simulator (`harness.simulator.discrete_event.SimExecutor`) prices
  every call with the plan's `StepCosts` (the cost model) and records every request's
  timestamps;
- the real runner executes the same calls on the CPU mini-cluster: the simulator records
  them as `Op`s (`SimExecutor(trace=True)`) and the workers replay them on real models
  (`harness.runner`). Output lengths are forced (ExeGPT §7), so the finishes a program sees
  are the same in both; decisions that read the clock (arrivals, WAA's asynchronous merges)
  are taken on the simulated clock and enforced by the runner.

Nothing outside a policy's own file branches on what kind of policy it is: a policy's
timeline is its `run`, and, where the paper gives one, its closed form is its
`expected_timeline` (ExeGPT §6); a policy without one is estimated by the discrete-event
simulator (`Policy.estimator`), and the search works with either.

Conventions every executor keeps (the harness's since ExeGPT §6):
- a prefill processes the prompt; a request's first token comes from the first decode
  iteration after its prefill ends (decoder-only models: that iteration reads the last
  prompt token), and every later iteration adds one token;
- `group` names a set of workers: "all" (one pipeline over every GPU), or a policy's own
  names ("encode"/"decode", "prefill"/"decode"); prefills are priced on the plan's encode
  stages and decodes on its decode stages (`PipelineCosts`), so a one-pipeline policy uses
  the same stages for both;
- requests are indices into the stream (arrival order); `ids` are a (lo, hi) range or an
  int array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from harness.policies.base import StepCosts
    from harness.workload.streams import Requests

@dataclass(frozen=True, slots=True)
class Op:
    """One executed call, as the runner replays it (`SimExecutor(trace=True)`).
    ids: the requests it touches; tokens: prompt tokens each prefills (step chunks);
    iterations: decode iterations; hold: static batching (finished slots kept, prompts
    padded); dst: the receiving group of a transfer; start_s/end_s: the simulated clock."""

    op: str
    group: str
    ids: np.ndarray
    start_s: float
    end_s: float
    iterations: int = 0
    tokens: np.ndarray | None = None
    hold: bool = False
    dst: str = ""


def as_ids(ids) -> np.ndarray:
    """A (lo, hi) range or an index array as an int64 array."""
    if isinstance(ids, tuple):
        return np.arange(ids[0], ids[1], dtype=np.int64)
    return np.asarray(ids, dtype=np.int64)


class Executor(Protocol):
    """What a program drives. Times are seconds on the executor's clock; every call starts
    at `start_s` (the program keeps each group's clock) and returns when it ends."""

    reqs: Requests           # the stream: arrival_s, input_len (and output_len: forced)
    costs: StepCosts         # the plan's step times, for programs that plan ahead (WAA)
    adjuster: object | None  # runtime adjustment (ExeGPT §3), None when off

    def arrived(self, t_s: float) -> int:
        """How many requests have arrived by `t_s` (a prefix of the stream)."""
        ...

    def prefill(self, group: str, ids, start_s: float, *, join: bool = True, pad: bool = False) -> float:
        """Prefill the whole prompts of `ids` as one batch (a preempted request recomputes
        its prompt and the tokens it had generated). `join`: they join `group`'s live batch;
        else they wait there for a `transfer`. `pad`: prompts padded to the longest (static
        batching)."""
        ...

    def transfer(self, src: str, dst: str, ids, start_s: float) -> float:
        """Move the KV caches of `ids` from `src` to `dst` (WAA via host memory, §3; a
        disaggregated prefill pool to its decode pool)."""
        ...

    def join(self, group: str, ids) -> None:
        """`ids` (prefilled, their KV in `group`) join its live batch."""
        ...

    def decode(self, group: str, start_s: float, iterations: int = 1, *, hold: bool = False) -> float:
        """Up to `iterations` decoding iterations of `group`'s live batch (fewer if it
        empties); finished requests leave at once (early termination), or, `hold`, keep
        their slots until the whole batch has finished (static batching: runs to its end)."""
        ...

    def step(self, group: str, start_s: float, chunks: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[float, np.ndarray]:
        """One iteration-level step (ORCA, Sarathi-Serve): the live batch decodes one token
        while `chunks` = (ids, tokens) prefill that many more prompt tokens each in the same
        forward; a request whose prompt is complete joins the live batch. Returns the end
        time and the requests that finished."""
        ...

    def drain(self, group: str, start_s: float) -> float:
        """The pipeline bubble after `group`'s last decoding iteration (RRA's phase end)."""
        ...

    def preempt(self, group: str, ids) -> None:
        """Free the KV of live requests `ids` (vLLM's preemption by recompute): they leave
        the live batch keeping their generated tokens, and must be prefilled again."""
        ...

    def live(self, group: str) -> int:
        """Requests in `group`'s live batch."""
        ...

    def last_mean_batch(self, group: str) -> float:
        """Mean live batch over the iterations of `group`'s last `decode` call (0: none)."""
        ...
