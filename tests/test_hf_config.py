"""`model.hf_config=<config.json>`: a ModelSpec from a local Hugging Face config (harness.specs.hf_config).

The fixtures under tests/fixtures/hf_configs/<model>/config.json are the published configs of
those Hugging Face repositories; each built spec is held against the model's published
parameter count (model card or paper), a number independent of the code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest

from harness.config import build_scenario, compose
from harness.errors import UserError
from harness.specs.hf_config import MODEL_TYPES, spec_from_hf_config
from harness.specs.models import MODELS, ModelSpec

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"

# folder -> (published parameters, relative tolerance, source). 1% unless said otherwise.
PUBLISHED = {
    "opt-13b": (12.85e9, 0.01, "facebook/opt-13b (OPT paper, Zhang et al. 2022: 13B)"),
    "gpt2": (124e6, 0.01, "gpt2 model card: 124M"),
    "gpt-j-6b": (6.05e9, 0.01, "EleutherAI/gpt-j-6b model card: 6,053,381,344"),
    "gpt-neox-20b": (20.55e9, 0.01, "GPT-NeoX-20B paper (Black et al. 2022): 20,554,567,680"),
    "Llama-2-7b-hf": (6.74e9, 0.01, "meta-llama/Llama-2-7b-hf: 6.74B"),
    "Mistral-7B-v0.1": (7.24e9, 0.01, "mistralai/Mistral-7B-v0.1: 7.24B"),
    "Qwen2-7B": (7.62e9, 0.01, "Qwen/Qwen2-7B model card: 7.62B"),
    "t5-11b": (11.3e9, 0.01, "t5-11b (T5 paper, Raffel et al. 2020: 11B; HF 11.3B)"),
    # Only a nominal "11B" is published for T5 v1.1 XXL (google/t5-v1_1-xxl, t5x's table), a
    # rounded figure: the built 4096-wide, gated, untied shape comes to ~11.1B, hence 2%.
    "t5-v1_1-xxl": (11e9, 0.02, "google/t5-v1_1-xxl: 11B (nominal)"),
}


def fixture(name: str) -> Path:
    return FIXTURES / name / "config.json"


def scenario(*overrides: str):
    return build_scenario(compose(list(overrides)))


def one_line(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


def test_every_fixture_has_a_published_count_and_every_model_type_a_fixture() -> None:
    assert {p.name for p in FIXTURES.iterdir()} == set(PUBLISHED)
    types = {json.loads(fixture(name).read_text())["model_type"] for name in PUBLISHED}
    assert types == set(MODEL_TYPES)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_param_count_matches_the_published_one(name: str) -> None:
    published, rel, source = PUBLISHED[name]
    got = spec_from_hf_config(fixture(name)).num_params()
    assert got == pytest.approx(published, rel=rel), f"{name}: {got / 1e9:.3f}B vs {source}"


# folder -> ModelSpec fields that the config says (read off the fixture by hand)
MAPPED = {
    "opt-13b": dict(family="opt", num_decoder_layers=40, hidden_size=5120, num_heads=40, head_dim=128,
                    ffn_size=20480, vocab_size=50272, learned_positions=2048 + 2, bias=True, tied_embeddings=True),
    "gpt2": dict(family="gpt", num_decoder_layers=12, hidden_size=768, num_heads=12, ffn_size=4 * 768,
                 vocab_size=50257, learned_positions=1024, bias=True, tied_embeddings=True),
    "gpt-j-6b": dict(family="gpt", num_decoder_layers=28, hidden_size=4096, num_heads=16, head_dim=256,
                     ffn_size=4 * 4096, vocab_size=50400, learned_positions=0, tied_embeddings=False),
    "gpt-neox-20b": dict(family="gpt", num_decoder_layers=44, hidden_size=6144, num_heads=64, head_dim=96,
                         ffn_size=24576, vocab_size=50432, learned_positions=0, tied_embeddings=False),
    "Llama-2-7b-hf": dict(family="llama", num_decoder_layers=32, num_heads=32, kv_heads=32, ffn_size=11008,
                          gated_mlp=True, bias=False, tied_embeddings=False),
    "Mistral-7B-v0.1": dict(family="llama", num_decoder_layers=32, num_heads=32, num_kv_heads=8, head_dim=128,
                            ffn_size=14336, vocab_size=32000, gated_mlp=True, bias=False, tied_embeddings=False),
    "Qwen2-7B": dict(family="llama", num_decoder_layers=28, hidden_size=3584, num_heads=28, num_kv_heads=4,
                     head_dim=128, ffn_size=18944, vocab_size=152064, gated_mlp=True, bias=False),
    "t5-11b": dict(family="t5", num_encoder_layers=24, num_decoder_layers=24, hidden_size=1024, num_heads=128,
                   head_dim=128, ffn_size=65536, gated_mlp=False, bias=False, tied_embeddings=True),
    "t5-v1_1-xxl": dict(family="t5", num_encoder_layers=24, num_decoder_layers=24, hidden_size=4096,
                        num_heads=64, head_dim=64, ffn_size=10240, gated_mlp=True, tied_embeddings=False),
}


@pytest.mark.parametrize("name", list(MAPPED))
def test_each_family_maps_its_fields(name: str) -> None:
    m = spec_from_hf_config(fixture(name))
    assert {k: getattr(m, k) for k in MAPPED[name]} == MAPPED[name]
    assert m.dtype_bytes == 2 and m.num_encoder_layers == (24 if m.family == "t5" else 0)


def test_the_paper_models_equal_the_registry_s() -> None:
    """The registry's OPT-13B and T5-11B (typed from the papers) are what their HF configs say;
    harness/conf/model/llama2-7b.yaml is Llama-2-7b-hf's config."""
    assert spec_from_hf_config(fixture("opt-13b")) == MODELS["opt-13b"]
    assert spec_from_hf_config(fixture("t5-11b")) == MODELS["t5-11b"]
    assert spec_from_hf_config(fixture("Llama-2-7b-hf"), name="llama2-7b") == scenario("model=llama2-7b").model


def test_the_name_is_given_or_the_config_s_or_the_folder_s() -> None:
    assert spec_from_hf_config(fixture("Llama-2-7b-hf")).name == "Llama-2-7b-hf"   # _name_or_path's last part
    assert spec_from_hf_config(FIXTURES / "Mistral-7B-v0.1").name == "Mistral-7B-v0.1"  # the folder
    assert spec_from_hf_config(FIXTURES / "gpt2", name="mine").name == "mine"
    assert spec_from_hf_config(FIXTURES / "gpt2") == spec_from_hf_config(fixture("gpt2"))


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_the_cli_builds_the_same_spec(name: str) -> None:
    """`model.hf_config=` on the default model (a registry model, whose name is not kept)."""
    assert scenario(f"model.hf_config={fixture(name)}").model == spec_from_hf_config(fixture(name))


def test_the_cli_takes_a_folder_a_name_and_plus() -> None:
    folder = FIXTURES / "Mistral-7B-v0.1"
    assert scenario(f"model.hf_config={folder}").model.name == "Mistral-7B-v0.1"
    assert scenario(f"model.hf_config={folder}", "model.name=my-mistral").model.name == "my-mistral"
    assert scenario(f"model.hf_config={folder}", "+model.dtype_bytes=1").model.dtype_bytes == 1  # + still works


def test_a_yaml_extending_hf_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model YAML (here a plugin's) naming a config.json, with a field of its own."""
    import harness.config as config
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "mistral.yaml").write_text(
        f"defaults:\n  - hf_model\n  - _self_\nhf_config: {FIXTURES / 'Mistral-7B-v0.1'}\ndtype_bytes: 1\n")
    monkeypatch.setattr(config, "plugin_conf_dirs", lambda: [tmp_path / "conf"])
    expected = spec_from_hf_config(fixture("Mistral-7B-v0.1"), dtype_bytes=1)
    assert scenario("model=mistral").model == expected
    assert scenario("model=mistral", "model.num_kv_heads=4").model == replace(expected, num_kv_heads=4)


# Plain overrides (no `+`) of every ModelSpec field; each tuple is valid on all three bases below.
PLAIN = [
    {"name": "my-model"}, {"family": "opt"}, {"family": "t5", "num_encoder_layers": 6},
    {"num_decoder_layers": 2}, {"hidden_size": 2048}, {"num_heads": 16}, {"head_dim": 32},
    {"ffn_size": 1024}, {"vocab_size": 1000}, {"num_kv_heads": 8}, {"gated_mlp": False}, {"bias": True},
    {"learned_positions": 512}, {"tied_embeddings": True}, {"dtype_bytes": 1}, {"published_params_b": 1.5},
]
BASES = {"hf_config": [f"model.hf_config={fixture('Llama-2-7b-hf')}"], "shaped": ["model=llama2-7b"],
         "registry": ["model=gpt3-39b"]}


def test_plain_overrides_cover_every_field() -> None:
    assert {k for o in PLAIN for k in o} == {f.name for f in fields(ModelSpec) if f.init}


# A registry model's name is what selects it (`model.name=opt-14b` is an unknown model), not an override.
CASES = [(base, o) for base in BASES for o in PLAIN if not (base == "registry" and "name" in o)]


@pytest.mark.parametrize(("base", "changes"), CASES, ids=[f"{b}:{','.join(o)}" for b, o in CASES])
def test_every_field_takes_a_plain_override(base: str, changes: dict) -> None:
    before = scenario(*BASES[base]).model
    after = scenario(*BASES[base], *(f"model.{k}={v}" for k, v in changes.items())).model
    assert {k: getattr(after, k) for k in changes} == changes
    follows = {"head_dim"} if {"hidden_size", "num_heads"} & set(changes) else set()
    rest = {f.name for f in fields(ModelSpec) if f.compare} - set(changes) - follows - {"name"}
    assert {k: getattr(after, k) for k in rest} == {k: getattr(before, k) for k in rest}


def test_head_dim_and_the_published_count_follow_the_shape() -> None:
    m = scenario(f"model.hf_config={fixture('Llama-2-7b-hf')}", "model.num_heads=16").model
    assert m.head_dim == 4096 // 16
    t5 = scenario("model=t5-11b", "model.num_heads=64").model
    assert t5.head_dim == 128                          # d_kv is T5's own (not d_model / heads)
    opt = MODELS["opt-13b"]
    assert scenario("model=opt-13b", "model.dtype_bytes=1").model == replace(opt, dtype_bytes=1)
    assert scenario("model=opt-13b", "model.dtype_bytes=1").model.published_params_b == opt.published_params_b
    assert scenario("model=opt-13b", "model.num_decoder_layers=2").model.published_params_b == 0.0
    assert scenario("model=gpt3-175b").model is MODELS["gpt3-175b"]


def test_a_typo_or_a_bad_type_beside_an_hf_config_is_one_line() -> None:
    hf = f"model.hf_config={fixture('gpt2')}"
    with pytest.raises(UserError) as e:
        scenario(hf, "model.num_kv_head=8")
    assert one_line(e).startswith("config key: unknown 'model.num_kv_head' (did you mean 'model.num_kv_heads'?)")
    with pytest.raises(UserError) as e:
        scenario(hf, "model.num_kv_heads=abc")
    assert one_line(e) == "model.num_kv_heads: must be an integer, got 'abc'"
    with pytest.raises(UserError) as e:
        scenario(hf, "model.num_kv_heads=5")
    assert one_line(e).startswith("model.num_kv_heads: 5 must divide num_heads=12")


def _bad(tmp_path: Path, text: str) -> Path:
    (tmp_path / "m").mkdir(exist_ok=True)
    (tmp_path / "m" / "config.json").write_text(text)
    return tmp_path / "m" / "config.json"


@pytest.mark.parametrize(("text", "needles"), [
    (None, ("cannot read",)),                                         # no such file
    ("{", ("is not valid JSON",)),
    ("[1, 2]", ("is not a JSON object",)),
    ('{"hidden_size": 8}', ("has no model_type", "gpt2, gpt_neox, gptj, llama, mistral, opt, qwen2, t5")),
    ('{"model_type": "bert"}', ("model_type: unknown 'bert'", "valid: gpt2, gpt_neox, gptj, llama, mistral, "
                                "opt, qwen2, t5")),
    ('{"model_type": "gpt2", "n_embd": "wide"}', ("is not a valid gpt2 config", "n_embd")),
], ids=["missing", "json", "array", "no-model-type", "bert", "bad-value"])
def test_bad_input_is_one_line_naming_the_key_and_the_path(tmp_path: Path, text: str | None, needles) -> None:
    path = tmp_path / "nowhere" / "config.json" if text is None else _bad(tmp_path, text)
    with pytest.raises(UserError) as e:
        spec_from_hf_config(path)
    assert one_line(e, str(path), *needles).startswith("model.hf_config: ")
    with pytest.raises(UserError) as e:                                # the same through the CLI
        scenario(f"model.hf_config={path}")
    assert one_line(e, str(path), *needles).startswith("model.hf_config: ")


def test_a_folder_without_config_json_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError) as e:
        spec_from_hf_config(tmp_path)
    one_line(e, f"model.hf_config: cannot read '{tmp_path / 'config.json'}'")


def test_importing_the_harness_does_not_import_transformers() -> None:
    code = ("import sys, harness.config, harness.scenario, harness.specs.hf_config; "
            "print('transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_a_job_counts_its_config_json_by_content_not_by_path(tmp_path: Path) -> None:
    """The sweep's job identity (results.config_hash): the same file in two places is one job;
    the file edited is another (its path alone would have kept the stale result)."""
    import shutil

    from omegaconf import OmegaConf

    from harness.config import compose
    from harness.results import config_hash
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        shutil.copytree(FIXTURES / "Llama-2-7b-hf", d)

    def job(folder: Path) -> str:
        return config_hash(OmegaConf.to_container(compose([f"model.hf_config={folder}"]), resolve=True))
    assert job(a) == job(b)
    raw = json.loads((b / "config.json").read_text())
    (b / "config.json").write_text(json.dumps({**raw, "num_hidden_layers": 16}))
    assert job(a) != job(b)
