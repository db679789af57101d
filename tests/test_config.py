"""Every YAML under harness/conf/ composes into a Scenario; config mistakes are one-line UserErrors."""

from __future__ import annotations

import pytest

from harness.config import GROUPS, Scenario, build_scenario, compose, conf_dir, group_options
from harness.errors import UserError
from harness.specs.models import MODELS


def scenario(*overrides: str) -> Scenario:
    return build_scenario(compose(list(overrides)))


def test_every_group_has_options() -> None:
    assert {p.name for p in conf_dir().iterdir() if p.is_dir()} >= set(GROUPS)
    assert set(MODELS) <= set(group_options("model"))


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


# ---- the schema (harness/schema): every YAML extends its group's, types and ranges in one line
SCHEMA_GROUPS = (*GROUPS, "runner")
SCHEMA_FILES = [(g, name) for g in SCHEMA_GROUPS for name in group_options(g)]


def _yaml(path) -> dict:
    from omegaconf import OmegaConf
    return OmegaConf.to_container(OmegaConf.load(path))


def one_line_error(*overrides: str) -> str:
    with pytest.raises(UserError) as e:
        build_scenario(compose(list(overrides)))
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


@pytest.mark.parametrize(("group", "name"), SCHEMA_FILES, ids=[f"{g}={n}" for g, n in SCHEMA_FILES])
def test_every_yaml_extends_its_schema_and_builds_a_scenario(group: str, name: str) -> None:
    """The YAML names a schema of its group, then `_self_`; the composed group holds exactly
    the YAML's keys and values (the schema adds no default: every config hash is unchanged),
    and the scenario built from it carries the option chosen."""
    from omegaconf import OmegaConf

    from harness.schema import SCHEMAS
    raw = _yaml(conf_dir() / group / f"{name}.yaml")
    schema_name, self_ = raw.pop("defaults")
    assert schema_name in SCHEMAS[group] and self_ == "_self_"
    cfg = compose([f"{group}={name}"])
    assert OmegaConf.to_container(cfg[group], resolve=True) == raw
    s = build_scenario(cfg)
    built = {"model": s.model.name, "cluster": s.cluster.name, "task": s.workload.name,
             "cost_model": s.cost_model_name, "policy": s.policy_name, "search": s.search.name,
             "mode": s.mode.name, "runner": name}
    assert built[group] == name


def test_the_root_extends_its_schema() -> None:
    assert _yaml(conf_dir() / "config.yaml")["defaults"][:2] == ["base_config", "_self_"]


@pytest.mark.parametrize("name", group_options("experiment"))
def test_every_experiment_composes_against_the_schema(name: str) -> None:
    """An experiment (`# @package _global_`) sets root keys, `study`, `hydra.sweeper.params`
    and, for fidelity_*, `runner.fidelity.{size,configs}`: all accepted and checked."""
    from harness.config import build_runner
    cfg = compose([f"experiment={name}"])
    build_scenario(cfg)
    runs = build_runner(cfg).fidelity.configs
    assert (len(runs) > 0) == name.startswith("fidelity_")
    assert all(r.num_requests >= 1 and r.knobs for r in runs)


# (overrides, key named first): for each group a type error (from the schema, at composition)
# and a range or name error (its check_<group>, before any work)
BAD = [
    (("model=llama2-7b", "model.hidden_size=abc"), "model.hidden_size"),
    (("model=llama2-7b", "model.gated_mlp=maybe"), "model.gated_mlp"),
    (("model=llama2-7b", "model.hidden_size=0"), "model.hidden_size"),
    (("model.name=opt-14b",), "model.name"),
    (("cluster.num_gpus=abc",), "cluster.num_gpus"),
    (("cluster.num_gpus=0",), "cluster.num_gpus"),
    (("cluster.gpu=b100",), "cluster.gpu"),
    (("task.name=[S,T]",), "task.name"),
    (("task.name=X",), "task"),
    (("cost_model.attention_bw_fraction=[1]",), "cost_model.attention_bw_fraction"),
    (("cost_model.name=exact",), "cost_model.name"),
    (("policy.encode_batch_size=abc",), "policy.encode_batch_size"),
    (("policy.name=rr",), "policy.name"),
    (("search.eps_latency_s=abc",), "search.eps_latency_s"),
    (("search.eps_latency_s=-1",), "search.eps_latency_s"),
    (("mode.latency=[a]",), "mode.latency"),
    (("mode.latency=worst",), "mode.latency"),
    (("runner.timeout_s=abc",), "runner.timeout_s"),
    (("runner.progress=maybe",), "runner.progress"),
    (("runner.profile.batch_sizes=[a]",), "runner.profile.batch_sizes[0]"),
    (("runner.dtype=float16",), "runner.dtype"),
    (("runner.device=tpu",), "runner.device"),
    (("runner.backend=mpi",), "runner.backend"),
    (("runner.num_requests=0",), "runner.num_requests"),
    (("runner.fidelity.repeats=0",), "runner.fidelity.repeats"),
    (("runner.fidelity.size=huge",), "runner.fidelity.size"),
    (("+runner.fidelity.configs=[{model: opt-20m, task: T-cpu, policy: ft, num_requests: x}]",),
     "runner.fidelity.configs[0].num_requests"),
    (("seed=1.5",), "seed"),
    (("num_requests=0",), "num_requests"),
    (("simulator=exact",), "simulator"),
    (("bound_s=abc",), "bound_s"),
    (("bound_s=-1",), "bound_s"),
    (("bound=p50",), "bound"),
    (("arrivals.kind=burst",), "arrivals.kind"),
    (("sla.output_len=x",), "sla.output_len"),
    (("workload.input_len=0", "workload.output_len=3"), "workload.input_len"),
    (("paths.shared=null",), "paths.shared"),
]


@pytest.mark.parametrize(("overrides", "key"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_type_and_range_errors_name_the_key_in_one_line(overrides: tuple[str, ...], key: str) -> None:
    msg = one_line_error(*overrides)
    assert msg.startswith(f"{key}: "), msg
    assert "must " in msg or "valid:" in msg, msg      # what the value must be, or the valid values


def test_a_name_error_lists_the_valid_values() -> None:
    msg = one_line_error("runner.dtype=float46")
    assert msg == "runner.dtype: unknown 'float46' (did you mean 'float64'?); valid: float16, float32, float64"
    assert one_line_error("runner.dtype=float16") == ("runner.dtype: 'float16' must be one of float32, float64 on "
                                                      "runner.device=cpu (float16 needs runner.device=cuda)")
    assert one_line_error("cluster.num_gpus=abc") == "cluster.num_gpus: must be an integer, got 'abc'"


def test_a_knob_range_is_its_policy_s() -> None:
    """A knob's range needs the scenario: the policy's KnobSpec says it, in one line."""
    from harness.policies import Context, get_policy
    s = scenario("policy.encode_batch_size=0")
    with pytest.raises(UserError, match=r"^policy\.encode_batch_size: 0 not in \[1, "):
        get_policy("rra").validate(Context.of(s), dict(s.policy_knobs))


def test_a_bad_yaml_names_the_key_and_the_file(tmp_path, monkeypatch) -> None:
    """Also for a tree outside the package (a plugin's): the message names its file."""
    import harness.config as config
    (tmp_path / "conf" / "cluster").mkdir(parents=True)
    head = "defaults:\n  - base_cluster\n  - _self_\nname: bad\ngpu: a40\n"
    (tmp_path / "conf" / "cluster" / "bad.yaml").write_text(head + "num_gpus: four\ngpus_per_node: 8\n")
    (tmp_path / "conf" / "cluster" / "typo.yaml").write_text(head + "num_gpus: 4\ngpus_per_nod: 8\n")
    monkeypatch.setattr(config, "plugin_conf_dirs", lambda: [tmp_path / "conf"])
    with pytest.raises(UserError) as e:
        compose(["cluster=bad"])
    assert str(e.value) == f"cluster.num_gpus: must be an integer, got 'four' (in {tmp_path}/conf/cluster/bad.yaml)"
    with pytest.raises(UserError) as e:
        compose(["cluster=a40x4", "cluster.num_gpus=four"])
    assert str(e.value).startswith("cluster.num_gpus: must be an integer, got 'four'")
    with pytest.raises(UserError) as e:
        compose(["cluster=typo"])
    assert str(e.value).startswith("config key: unknown 'cluster.gpus_per_nod' (did you mean "
                                   "'cluster.gpus_per_node'?); valid: cluster.gpu, ")


def test_open_nodes_take_their_extra_keys_and_stay_closed_to_typos() -> None:
    """`+key=` adds a key (a knob, a root key); a plain override of a key the config lacks is
    an error with the `+` hint, as before the schema. Every ModelSpec field takes a plain
    override (issue 19); a typo of one is named with the nearest field."""
    assert scenario("model=llama2-7b", "+model.num_kv_heads=8").model.num_kv_heads == 8
    assert scenario("model=llama2-7b", "model.num_kv_heads=8").model.num_kv_heads == 8
    assert compose(["+study.x=1"]).study.x == 1
    for o in ("policy.foo=1", "study.x=1"):
        with pytest.raises(UserError, match=r"^config key: unknown .*; add a new key with \+"):
            compose([o])
    with pytest.raises(UserError, match=r"^config key: unknown 'model.num_kv_head' \(did you mean "
                                        r"'model.num_kv_heads'\?\)"):
        scenario("model.num_kv_head=8")


def test_runner_settings_are_validated_and_frozen() -> None:
    from harness.config import build_runner
    r = build_runner(compose([]))
    assert (r.dtype, r.device, r.backend, r.num_requests, r.timeout_s) == ("float32", "cpu", "gloo", 48, 120.0)
    assert r.fidelity.size == "full" and r.fidelity.configs == ()      # configs: from the experiment
    assert r.profile["batch_sizes"] == [1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 24, 32]
    with pytest.raises(UserError, match="^runner.fidelity.repeats: "):
        build_runner(compose(["runner.fidelity.repeats=0"]))


@pytest.mark.parametrize("argv", [["run", "runner.dtype=float16"], ["fidelity", "runner.fidelity.repeats=0"],
                                  ["profile", "runner.threads_per_worker=0"]])
def test_the_runner_group_fails_before_any_worker_starts(argv, monkeypatch, capsys) -> None:
    import harness.cli.real as real
    import harness.engine.pool as pool
    from harness.cli.main import main

    def no_worker(*args, **kwargs):
        raise AssertionError("a worker was about to start")
    monkeypatch.setattr(pool.WorkerPool, "__init__", no_worker)
    monkeypatch.setattr(real, "mini_cluster", no_worker)
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"harness: error: {argv[1].split('=')[0]}: "), err
