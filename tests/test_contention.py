"""Contention-aware profiles (issue 20 point 2): a pipeline stage's decode is priced from the
`decode_pipe` points (timed inside a 2-stage pipeline), everything else as before; the per-kind
drift table. Synthetic profiles with hand-chosen times."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import cpu_scenario as scenario
from helpers import synthetic_profile

from harness.cost_model.profiled import ProfiledCostModel, profile_path
from harness.policies.pipeline import Stage, stage_decode_s
from harness.runner.drift import CALL_COLUMNS, decode_layout, predicted_s
from harness.studies.fidelity import DRIFT_BAND, drift_by_kind


def _profile(tmp_path, pipe_factor: float):
    """The helpers' synthetic profile with every decode_pipe point `pipe_factor` x decode_layer."""
    s = scenario("model=opt-20m", "task=T-cpu")
    path = profile_path(tmp_path, s.model, s.cluster)
    synthetic_profile(s.model, s.cluster, path)
    df = pd.read_parquet(path)
    df.loc[df.op == "decode_pipe", "time_s"] *= pipe_factor
    df.to_parquet(path)
    return s


def test_a_pipeline_stage_is_priced_from_the_pipeline_points(tmp_path) -> None:
    s = _profile(tmp_path, 1.5)
    pipe, cm = ProfiledCostModel(s.cluster, tmp_path, contention_aware=True), ProfiledCostModel(s.cluster, tmp_path)
    layer = 1e-3 + 4e-4 + 1.28e-4                 # decode_layer(4, 32) of the synthetic profile, by hand
    assert pipe.pipelined_decode_layer(s.model, 4, 32, 1).total_s == pytest.approx(1.5 * layer)
    assert cm.pipelined_decode_layer(s.model, 4, 32, 1).total_s == pytest.approx(layer)       # the default
    assert pipe.pipelined_decode_layer(s.model, 4, 32, 2).total_s == pytest.approx(layer / 2)  # TP 2: no pipe points
    n = s.model.num_decoder_layers
    half = Stage(1, 0, n // 2, False, True)
    whole = Stage(1, 0, n, True, True)
    head = pipe.lm_head_s(s.model, 4, 1)
    assert stage_decode_s(pipe, s.model, half, 4, 32, 0.0) == pytest.approx(n // 2 * 1.5 * layer + head)
    assert stage_decode_s(pipe, s.model, whole, 4, 32, 0.0) == pytest.approx(n * layer + head)
    assert stage_decode_s(cm, s.model, half, 4, 32, 0.0) == pytest.approx(n // 2 * layer + head)


def test_drift_prices_a_call_on_part_of_the_decoder_as_a_pipeline_stage(tmp_path) -> None:
    s = _profile(tmp_path, 2.0)
    n = s.model.num_decoder_layers
    layer = 1e-3 + 4e-4 + 1.28e-4
    calls = np.array([[0, 4, 32, 0, n // 2, 1, 0.0], [0, 4, 32, 0, n, 1, 0.0]])
    assert list(CALL_COLUMNS) == ["rank", "batch", "cached_len", "input_len", "layers", "tp_degree", "seconds"]
    got = predicted_s(ProfiledCostModel(s.cluster, tmp_path, contention_aware=True), s.model, calls)
    assert got == pytest.approx([n // 2 * 2 * layer, n * layer])
    assert decode_layout(s.model, calls[:1]) == "2-stage pipeline"
    assert decode_layout(s.model, calls[1:]) == "whole stack"
    assert decode_layout(s.model, np.array([[0, 4, 32, 0, n, 2, 0.0]])) == "TP 2"
    assert decode_layout(s.model, np.zeros((0, 7))) == ""


def test_drift_by_kind_takes_each_kinds_median_both_ways() -> None:
    runs = pd.DataFrame({"config": ["a", "a", "a", "b", "b"], "policy": ["rra"] * 3 + ["ft"] * 2,
                         "decode_layout": ["2-stage pipeline"] * 3 + ["TP 2"] * 2,
                         "speed_drift": [0.8, 0.9, 1.0, 1.2, 1.3],
                         "speed_drift_pipeline": [1.0, 1.02, 1.1, 1.2, 1.3]})
    out = {r["policy"]: r for r in drift_by_kind(runs)}
    assert out["rra"]["drift_whole_stack"] == pytest.approx(0.9) and out["rra"]["drift_pipeline_points"] == pytest.approx(1.02)
    assert not out["rra"]["within_band"] and out["rra"]["within_band_pipeline_points"]
    assert out["rra"]["runs"] == 3 and out["rra"]["configs"] == 1
    assert out["ft"]["drift_whole_stack"] == pytest.approx(1.25) and not out["ft"]["within_band"]
    assert DRIFT_BAND == 0.05
    assert drift_by_kind(runs.drop(columns="speed_drift_pipeline")) == []
