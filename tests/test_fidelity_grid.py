"""The fidelity study's configurations live in harness/conf/experiment/fidelity_<size>.yaml: the grids
must reproduce, in order, the list the Python `configs(size)` returned before it was removed
(captured by hand below: label and request count of every configuration)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cli.real import fidelity_config, fidelity_settings
from harness.config import build_runner, build_scenario, conf_dir
from harness.errors import UserError
from harness.studies.fidelity import CONFIG_KEYS, configs_from

EXPECTED = {
    "tiny": [
        ("opt-20m/T-cpu/ft batch_size=4", 8),
        ("opt-20m/T-cpu/rra decode_iters=4,encode_batch_size=4,tp_degree=1", 12),
        ("opt-20m/T-cpu/waa-c encode_batch_size=2,micro_batches=1", 12),
    ],
    "full": [
        ("opt-20m/T-cpu/ft batch_size=8", 32),
        ("opt-20m/T-cpu/rra decode_iters=4,encode_batch_size=4,tp_degree=1", 48),
        ("opt-20m/T-cpu/rra decode_iters=8,encode_batch_size=8,tp_degree=1", 64),
        ("opt-20m/T-cpu/rra decode_iters=2,encode_batch_size=4,tp_degree=2", 48),
        ("opt-20m/T-cpu/waa-c encode_batch_size=2,micro_batches=1", 48),
        ("opt-20m/T-cpu/waa-m encode_batch_size=1,micro_batches=2", 48),
        ("opt-20m/S-cpu/ft batch_size=4", 32),
        ("opt-20m/S-cpu/rra decode_iters=4,encode_batch_size=8,tp_degree=1", 48),
        ("opt-20m/S-cpu/waa-c encode_batch_size=4,micro_batches=1", 48),
        ("gpt2-20m/T-cpu/ft batch_size=8", 32),
        ("gpt2-20m/T-cpu/rra decode_iters=4,encode_batch_size=4,tp_degree=1", 48),
        ("gpt2-20m/T-cpu/rra decode_iters=8,encode_batch_size=8,tp_degree=1", 64),
        ("gpt2-20m/T-cpu/rra decode_iters=2,encode_batch_size=4,tp_degree=2", 48),
        ("gpt2-20m/T-cpu/waa-c encode_batch_size=2,micro_batches=1", 48),
        ("gpt2-20m/T-cpu/waa-m encode_batch_size=1,micro_batches=2", 48),
        ("gpt2-20m/S-cpu/ft batch_size=4", 32),
        ("gpt2-20m/S-cpu/rra decode_iters=4,encode_batch_size=8,tp_degree=1", 48),
        ("gpt2-20m/S-cpu/waa-c encode_batch_size=4,micro_batches=1", 48),
        ("t5-20m/T-cpu/ft batch_size=8", 32),
        ("t5-20m/T-cpu/rra decode_iters=4,encode_batch_size=4,tp_degree=1", 48),
        ("t5-20m/T-cpu/rra decode_iters=8,encode_batch_size=8,tp_degree=1", 64),
        ("t5-20m/T-cpu/rra decode_iters=2,encode_batch_size=4,tp_degree=2", 48),
        ("t5-20m/T-cpu/waa-c encode_batch_size=2,micro_batches=1", 48),
        ("t5-20m/T-cpu/waa-m encode_batch_size=1,micro_batches=2", 48),
        ("t5-20m/S-cpu/ft batch_size=4", 32),
        ("t5-20m/S-cpu/rra decode_iters=4,encode_batch_size=8,tp_degree=1", 48),
        ("t5-20m/S-cpu/waa-c encode_batch_size=4,micro_batches=1", 48),
    ],
    "large": [
        ("opt-100m/T-cpu/ft batch_size=8", 16),
        ("opt-100m/T-cpu/rra decode_iters=4,encode_batch_size=4,tp_degree=1", 24),
        ("gpt2-100m/T-cpu/ft batch_size=8", 16),
        ("gpt2-100m/T-cpu/rra decode_iters=4,encode_batch_size=4,tp_degree=1", 24),
        ("t5-100m/T-cpu/ft batch_size=8", 16),
        ("t5-100m/T-cpu/rra decode_iters=4,encode_batch_size=4,tp_degree=1", 24),
    ],
}


def _configs(overrides: list[str]):
    cfg = fidelity_config(overrides)
    return fidelity_settings(build_scenario(cfg), build_runner(cfg), Path("unused"))


@pytest.mark.parametrize("size", ["tiny", "full", "large"])
def test_each_size_runs_the_grid_the_python_list_held(size) -> None:
    st = _configs([f"runner.fidelity.size={size}"])
    assert st.size == size
    assert [(c.label, c.num_requests) for c in st.configs] == EXPECTED[size]
    assert len(st.configs) == {"full": 27, "large": 6, "tiny": 3}[size]
    # the experiment named directly is the same grid
    assert _configs([f"experiment=fidelity_{size}"]).configs == st.configs


def test_the_default_size_is_full_with_ratio_and_ctranslate2() -> None:
    st = _configs([])
    assert st.size == "full" and len(st.configs) == 27 and st.ratio and st.ct2
    tiny = _configs(["runner.fidelity.size=tiny"])
    assert not tiny.ratio and not tiny.ct2


@pytest.mark.parametrize("size", ["tiny", "full", "large"])
def test_grid_files_have_exactly_the_schema_keys(size) -> None:
    path = conf_dir() / "experiment" / f"fidelity_{size}.yaml"
    text = path.read_text()
    assert text.startswith("# @package _global_\n")
    fid = yaml.safe_load(text)["runner"]["fidelity"]
    assert set(fid) == {"size", "configs"} and fid["size"] == size
    for entry in fid["configs"]:
        assert tuple(entry) == CONFIG_KEYS
        assert isinstance(entry["num_requests"], int) and all(isinstance(v, int) for v in entry["knobs"].values())


def test_an_experiment_contradicting_the_size_is_refused() -> None:
    with pytest.raises(UserError, match="runner.fidelity.size: 'full', but experiment=fidelity_tiny"):
        _configs(["experiment=fidelity_tiny", "runner.fidelity.size=full"])


@pytest.mark.parametrize(("entries", "key"), [
    ([], "runner.fidelity.configs"),
    ([{"model": "opt-20m", "task": "T-cpu", "policy": "ft", "knobs": {"batch_size": 4}}], "runner.fidelity.configs[0]"),
    ([{"model": "opt-20m", "task": "T-cpu", "policy": "ft", "num_requests": 0, "knobs": {}}],
     "runner.fidelity.configs[0].num_requests"),
    ([{"model": "opt-20m", "task": "T-cpu", "policy": "ft", "num_requests": 8, "knobs": {"batch_size": "4"}}],
     "runner.fidelity.configs[0].knobs"),
])
def test_a_bad_grid_entry_is_a_one_line_error_naming_it(entries, key) -> None:
    with pytest.raises(UserError) as e:
        configs_from(entries)
    assert str(e.value).startswith(key + ":") and "\n" not in str(e.value)
