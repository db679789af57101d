"""Speed drift: how fast a run's own decode-stack calls ran against the profile's prediction.

A profile is taken minutes away from the run it prices, and this VM's speed moves by up to
2x over minutes (docs/real-execution.md, "Timing hygiene"); /proc/stat does not see it (no
process of this VM takes the time). Every decode-stack call of a real run is timed by the
worker (`_Worker.decode`: `StageModel.decode`, the layers a profile `decode_layer` point
times, TP all-reduces included; on a first stage also the token embedding, microseconds,
which the profile prices with the LM head) together with its shape, and

    drift = sum(measured seconds) / sum(layers * decode_layer(batch, cached, TP, input))

over those calls, the profiled cost model (the table the simulators play) pricing each call
at its own shape. drift 1.0: the run's decode ran at the profile's speed; 1.3: 30% slower.
`harness fidelity` reports, beside the simulators' errors, the errors after scaling the
simulated times by the run's drift (throughput / drift, latency * drift). Those test how the
simulator composes op costs (pipelining, waits, merges, communication, encoding) at the
machine's momentary speed, not whether a profile predicts that speed: one scalar per run is
taken from the run itself.
"""

from __future__ import annotations

import numpy as np

from harness.cost_model.base import stage_decode_layer
from harness.specs.models import ModelSpec

CALL_COLUMNS = ("rank", "batch", "cached_len", "input_len", "layers", "tp_degree", "seconds")
_B, _CACHED, _INPUT, _LAYERS, _TP, _SECONDS = (CALL_COLUMNS.index(c) for c in CALL_COLUMNS[1:])


def predicted_s(cost, spec: ModelSpec, calls: np.ndarray) -> np.ndarray:
    """The profiled time of every call: its layers times one decode layer at its shape (a call
    on part of the decoder is a pipeline stage's: `stage_decode_layer`, as the simulators price it)."""
    return np.array([c[_LAYERS] * stage_decode_layer(cost, spec, int(c[_B]), float(c[_CACHED]), int(c[_TP]),
                                                     float(c[_INPUT]), c[_LAYERS] < spec.num_decoder_layers).total_s
                     for c in calls])


def decode_layout(spec: ModelSpec, calls: np.ndarray) -> str:
    """How a run decoded, from its calls: "TP <k>", "2-stage pipeline" (calls on part of the
    decoder at TP 1) or "whole stack" (TP 1); "" without calls."""
    if len(calls) == 0:
        return ""
    tp = int(calls[:, _TP].max())
    if tp > 1:
        return f"TP {tp}"
    return "2-stage pipeline" if (calls[:, _LAYERS] < spec.num_decoder_layers).any() else "whole stack"


def speed_drift(cost, spec: ModelSpec, calls: np.ndarray) -> float:
    """Measured over predicted decode-stack time of a run's calls (nan without calls)."""
    if len(calls) == 0:
        return float("nan")
    return float(calls[:, _SECONDS].sum() / predicted_s(cost, spec, calls).sum())
