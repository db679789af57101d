"""Every YAML under conf/ composes into a Scenario; config mistakes are one-line UserErrors."""

from __future__ import annotations

import pytest

from harness.config import GROUPS, Scenario, build_scenario, compose, conf_dir, group_options
from harness.errors import UserError
from harness.specs.models import MODELS

GROUP_FILES = [(g, name) for g in GROUPS for name in group_options(g)]


def scenario(*overrides: str) -> Scenario:
    return build_scenario(compose(list(overrides)))


def test_every_group_has_options() -> None:
    assert {p.name for p in conf_dir().iterdir() if p.is_dir()} >= set(GROUPS)
    assert set(MODELS) <= set(group_options("model"))


@pytest.mark.parametrize(("group", "name"), GROUP_FILES, ids=[f"{g}={n}" for g, n in GROUP_FILES])
def test_every_yaml_builds_a_scenario(group: str, name: str) -> None:
    s = scenario(f"{group}={name}")
    built = {"model": s.model.name, "cluster": s.cluster.name, "task": s.workload.name,
             "cost_model": s.cost_model_name, "policy": s.policy_name, "search": s.search.name, "mode": s.mode.name}
    assert built[group] == name


def test_defaults() -> None:
    s = scenario()
    assert (s.model.name, s.cluster.name, s.workload.name, s.seed) == ("opt-13b", "a40x4", "S", 0)
    assert s.cluster.num_gpus == 4 and s.cluster.gpu.name == "a40"
    assert s.paths.profiles == s.paths.shared / "profiles" / "vidur"
    assert s.paths.ft_calibration.name == "ft-published-calibration.csv"


def test_registry_model_comes_from_the_registry() -> None:
    assert scenario("model=gpt3-175b").model is MODELS["gpt3-175b"]


def test_model_declared_by_shape() -> None:
    m = scenario("model=llama2-7b").model
    assert (m.family, m.num_decoder_layers, m.gated_mlp, m.tied_embeddings) == ("llama", 32, True, False)
    assert m.num_params() / 1e9 == pytest.approx(6.74, abs=0.01)


def test_shared_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("HARNESS_SHARED_DIR", str(tmp_path))
    s = scenario()
    assert s.paths.shared == tmp_path.resolve()
    assert s.paths.traces == tmp_path.resolve() / "traces"


def test_unknown_model_names_group_and_valid_options() -> None:
    with pytest.raises(UserError) as e:
        compose(["model=opt-14b"])
    msg = str(e.value)
    assert msg.startswith("model:") and "opt-13b" in msg and "did you mean" in msg
    assert "\n" not in msg


def test_unknown_cluster_lists_valid_names() -> None:
    with pytest.raises(UserError) as e:
        compose(["cluster=a40x5"])
    msg = str(e.value)
    assert msg.startswith("cluster:")
    assert all(name in msg for name in group_options("cluster"))


def test_unknown_key_is_one_line_with_suggestion() -> None:
    with pytest.raises(UserError) as e:
        compose(["workload.input_length=128"])
    msg = str(e.value)
    assert "workload.input_length" in msg and "did you mean 'workload.input_len'" in msg
    assert "\n" not in msg


def test_fixed_lengths_replace_the_task() -> None:
    w = scenario("workload.input_len=128", "workload.output_len=32").workload
    assert (w.input.mean, w.output.mean, w.output_p99, w.output_max) == (128, 32, 32, 32)


def test_only_one_length_names_the_missing_one() -> None:
    with pytest.raises(UserError, match="output_len"):
        scenario("workload.input_len=128")
    with pytest.raises(UserError, match="input_len"):
        scenario("workload.output_len=32")


def test_non_integer_seed_is_rejected() -> None:
    with pytest.raises(UserError, match="seed"):
        scenario("seed=abc")


def test_trace_file_becomes_the_workload(tmp_path) -> None:
    csv = tmp_path / "tiny.csv"
    csv.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,5\n1,20,7\n")
    w = scenario(f"workload.trace={csv}").workload
    assert (w.input.max, w.output.max) == (20, 7)
