"""Serving engines: whose kernels and executor a cost model prices (issue 17, item 6).

Decode attention and the per-iteration host cost depend on the engine that runs the model,
not only on the GPU. The analytic model is fitted to FasterTransformer (fused decode
attention over a contiguous, preallocated cache; C++ loop), so `ft` is its default and
gives today's numbers bit for bit. A policy states which engine prices it (`engine = "vllm"`
for vLLM, ORCA-emulation, Sarathi-Serve and DistServe, all built on vLLM's paged attention and
Python executor) and asks `with_engine(ctx.cost_model, policy.engine)` for that cost model.

Every constant is derived from data by harness.cost_model.fit (`derive_engines`, rerun by
`harness calibrate`, which also prints each engine against DistServe's vLLM fits):
- `ft`: the fitted framework constants (fitted/analytic-v1.json, FT's published A100 latencies).
- `vllm`: decode attention `vllm-a100` (params.ATTENTION_BW_FRACTIONS: the per-cached-token
  coefficient of DistServe's OPT-13B TP1 A100 fit) and a per-iteration executor overhead
  a + b * log2(TP) fitted to the intercepts of all seven (model, TP) fits
  (fit.engine_overhead_vllm). The overhead is host time (Python scheduler, input preparation,
  Ray/NCCL launch per worker), transferred in seconds to other GPUs.

The profiled cost model (`harness profile` tables of the harness's own runner, CPU here) is
its own engine: it measured one engine, so `with_engine` returns it unchanged for any name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.cost_model.params import ATTENTION_BW_FRACTIONS
from harness.errors import unknown_name


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """What an engine changes in the analytic cost model, with where each number comes from."""

    name: str
    description: str
    attention: str | None          # decode attention: a params.ATTENTION_BW_FRACTIONS name; None: fitted (FT)
    iteration_overhead_s: tuple[float, float] | None   # (a, b): a + b * log2(tp) s per forward; None: fitted (FT)
    source: str

    def overhead_s(self, tp_degree: int) -> float | None:
        """Host cost of one forward pass (embedding, sampling, scheduling) on a TP group of
        `tp_degree` GPUs; None: the cost model's fitted FT value."""
        if self.iteration_overhead_s is None:
            return None
        a, b = self.iteration_overhead_s
        return a + b * math.log2(max(tp_degree, 1))


ENGINES: dict[str, EngineSpec] = {
    "ft": EngineSpec(
        "ft", "FasterTransformer kernels: fused decode attention over a preallocated contiguous cache, "
        "C++ serving loop (the paper's engine; what the analytic model is fitted to)",
        None, None,
        "fitted/analytic-v1.json framework (FT's published A100 GPT latencies, TP=1 rows)"),
    # fit.engine_overhead_vllm (harness calibrate re-derives it): least squares over the 7 (model,
    # TP) fits of DistServe's profiler-a100-80g.vllm.json (OPT-13B TP 1/2/4, OPT-66B TP 2/3/4/8),
    # fit decode at (batch 1, context 1) minus our A100 iteration there (attention vllm-a100,
    # without FT's 1.38 ms per-iteration overhead). Residuals up to ~5 ms (OPT-13B TP4).
    "vllm": EngineSpec(
        "vllm", "vLLM: paged-attention decode kernels, Python executor (also ORCA-emulation, "
        "Sarathi-Serve and DistServe, all built on it)",
        "vllm-a100", (0.00734022927086117, 0.0025108666175346008),
        "DistServe's vLLM fits on A100-80GB (reference/engines/distserve-vllm-a100-80g.json, fits "
        "not raw measurements): attention " + ATTENTION_BW_FRACTIONS["vllm-a100"].source
        + "; per-iteration overhead a + b log2(TP) from the fits' intercepts (fit.engine_overhead_vllm)"),
}
DEFAULT_ENGINE = "ft"


def get_engine(name: str) -> EngineSpec:
    """The engine called `name`; an unknown one is a one-line UserError naming `engine`."""
    if not isinstance(name, str) or name not in ENGINES:
        raise unknown_name("engine", name, ENGINES)
    return ENGINES[name]


_WITH_ENGINE: dict[tuple[int, str], tuple[object, object]] = {}


def with_engine(cost_model, engine: str):
    """`cost_model` as priced by `engine`: the same object for the same inputs (policies
    memoise layouts by id(cost model)), and `cost_model` itself when it is already that
    engine's or has no engines (the profiled model: its own measured engine). One dict lookup
    after the first call. Unknown engine: UserError naming `engine` and the valid names."""
    key = (id(cost_model), engine)
    hit = _WITH_ENGINE.get(key)
    if hit is not None and hit[0] is cost_model:
        return hit[1]
    get_engine(engine)
    switch = getattr(cost_model, "with_engine", None)
    out = cost_model if switch is None else switch(engine)
    _WITH_ENGINE[key] = (cost_model, out)       # keeps `cost_model` alive, so its id stays unique
    return out


def engine_of(cost_model) -> str:
    """The engine that prices `cost_model` (`ft`, `vllm`, or `profiled` for measured tables)."""
    return str(getattr(cost_model, "engine", DEFAULT_ENGINE))
