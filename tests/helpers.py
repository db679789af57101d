"""Helpers shared by several test files: fake step costs, the tiny models and the 2-worker CPU
cluster of the real-runner tests, a synthetic profile.

A plain module, not a test file (no test_ prefix, nothing collected from it): test files
import from it (`from helpers import ConstCosts`), never from each other
(tests/test_architecture_tests.py checks that). It is importable under pytest's default
`prepend` import mode whether pytest runs as `pytest` or `python -m pytest`: `tests/` has no
`__init__.py`, so pytest puts `tests/` itself on sys.path (as it does for `from conftest
import requires_shared`). Imports that pull in heavy or moving packages (config, profiler)
happen inside the functions that need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.cost_model.base import LayerTime
from harness.specs.hardware import make_cluster
from harness.specs.models import ModelSpec, model_from_dict
from harness.workload.distributions import truncated_normal
from harness.workload.tasks import Workload


# ---- fake step costs (simulator timelines by hand) ------------------------------------------
@dataclass(frozen=True, slots=True)
class ConstCosts:
    """StepCosts with constant times (s), whatever the batch."""

    enc: float = 1.0
    it: float = 0.1
    drain: float = 0.0
    period: float = 1.0
    kv: float = 0.0

    def encode_s(self, batch: int, mean_input_len: float) -> float:
        return self.enc

    def encode_period_s(self, batch: int, mean_input_len: float) -> float:
        return self.period

    def decode_iter_s(self, batch: int, mean_context_len: float, mean_input_len: float) -> float:
        return self.it

    def decode_drain_s(self, batch: int, mean_context_len: float, mean_input_len: float) -> float:
        return self.drain

    def kv_transfer_s(self, batch: int, mean_input_len: float) -> float:
        return self.kv


# ---- the real runner's tiny models and 2-worker CPU mini-cluster ----------------------------
TINY = {
    "t5": dict(name="t5-tiny", family="t5", num_encoder_layers=2, num_decoder_layers=2, hidden_size=64,
               num_heads=4, head_dim=16, ffn_size=128, vocab_size=512, bias=False, dtype_bytes=4),
    "opt": dict(name="opt-tiny", family="opt", num_decoder_layers=2, hidden_size=64, num_heads=4,
                ffn_size=128, vocab_size=512, learned_positions=130, dtype_bytes=4),
    "gpt": dict(name="gpt-tiny", family="gpt", num_decoder_layers=2, hidden_size=64, num_heads=4,
                ffn_size=128, vocab_size=512, learned_positions=128, dtype_bytes=4),
}


def tiny(family: str) -> ModelSpec:
    return model_from_dict(TINY[family])


CLUSTER = make_cluster("cpu", 2, 2, name="cpu-2w")
WORKLOAD = Workload("tiny", truncated_normal(10, 6, 20), truncated_normal(5, 3, 10))


class UnitCosts:
    """A cost model with round numbers: only the plans' layouts matter here."""

    id = "unit"

    def __init__(self, cluster) -> None:
        self.cluster = cluster

    def encode_layer(self, m, b, s, tp):
        return LayerTime(1e-4 * b * s / tp, 0.0)

    def decode_layer(self, m, b, c, tp, input_len=0.0):
        return LayerTime(1e-3 + 1e-4 * b / tp, 0.0)

    def cross_kv_s(self, m, b, s, tp):
        return 1e-5

    def lm_head_s(self, m, n, tp):
        return 1e-4

    def allreduce_s(self, nbytes, n, inter_node=False):
        return 1e-5

    def p2p_s(self, nbytes, inter_node=False):
        return 1e-5

    def kv_transfer_s(self, nbytes):
        return 1e-5


# ---- a synthetic profile of the CPU mini-cluster --------------------------------------------
PROFILE_GRID = {"batch_sizes": [1, 4, 16], "encode_lengths": [4, 16], "decode_contexts": [4, 32],
                "input_lengths": [4, 64], "tp_degrees": [1, 2], "message_bytes": [1024, 65536],
                "warmup": 0, "repeats": 1}


def cpu_scenario(*overrides: str):
    """The scenario of the default config on the 2-worker CPU cluster, with `overrides`."""
    from harness.config import build_scenario, compose

    return build_scenario(compose(["cluster=cpu-2w", *overrides]))


def synthetic_profile(model, cluster, path: Path) -> None:
    """A profile parquet on PROFILE_GRID with round times: 1 ms + 10 us * tokens (encode),
    1 ms + 0.1 ms * b + 1 us * b * ctx (decode), the rest linear in their sizes."""
    import pandas as pd

    from harness.profiler.bench import Point
    from harness.profiler.profile import build_grid, points

    g = build_grid(PROFILE_GRID, model, cluster)
    rows = []
    for p in points(g, model):
        t = {"encode_layer": 1e-3 + 1e-5 * p.batch_size * p.length,
             "decode_layer": 1e-3 + 1e-4 * p.batch_size + 1e-6 * p.batch_size * p.length,
             "decode_pipe": 1e-3 + 1e-4 * p.batch_size + 1e-6 * p.batch_size * p.length,   # = decode_layer
             "kv_select": 2e-5 + 1e-7 * p.batch_size * p.length, "kv_join": 4e-5 + 2e-7 * p.batch_size * p.length,
             "cross_kv": 2e-6 * p.batch_size * p.length, "lm_head": 5e-4 + 1e-5 * p.batch_size,
             "allreduce": 1e-4 + p.message_bytes * 1e-9, "p2p": 5e-5 + p.message_bytes * 1e-9}[p.op]
        rows.append({**{f: getattr(p, f) for f in Point.__dataclass_fields__}, "time_s": t / p.tp_degree})
    df = pd.DataFrame(rows).assign(model=model.name, cluster=cluster.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path)
