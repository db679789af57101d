"""The dataclasses of the schema: one per config group (or YAML kind), one per section of the
root; OmegaConf types the composed config by them (harness/schema/__init__.py registers them)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

# A true/false switch. Not `bool`: OmegaConf's BooleanNode reads any integer as a bool (3 ->
# true), so switches are typed here as Any and checked to be real booleans by checks.boolean.
Flag = Any

# ---- groups -----------------------------------------------------------------------------


@dataclass
class RegistryModel:
    """A model of harness.specs.models.MODELS, by name (ModelFields set beside it override its
    shape; `hf_config` replaces it by that config's model)."""

    name: str = MISSING


@dataclass
class ShapedModel:
    """A model declared by shape (harness.specs.models.ModelSpec): these fields, and any other
    ModelFields it sets (absent = ModelSpec's default)."""

    name: str = MISSING
    family: str = MISSING
    num_decoder_layers: int = MISSING
    hidden_size: int = MISSING
    num_heads: int = MISSING
    ffn_size: int = MISSING
    vocab_size: int = MISSING


@dataclass
class HFModel:
    """A model from a Hugging Face config.json (harness.specs.hf_config), and any ModelFields
    set beside it (they override the config's; `name` absent: the config's name)."""

    hf_config: str = MISSING


@dataclass
class ModelFields:
    """The keys a `model` node may hold (every ModelSpec field, and `hf_config`), typed by
    check_model: a model node is open (model_node), so each takes a plain override
    (`model.num_kv_heads=8`) and a composed config holds only the keys set."""

    name: str | None = None
    hf_config: str | None = None            # a config.json (or its folder): harness.specs.hf_config
    family: str | None = None
    num_encoder_layers: int | None = None
    num_decoder_layers: int | None = None
    hidden_size: int | None = None
    num_heads: int | None = None
    head_dim: int | None = None
    ffn_size: int | None = None
    vocab_size: int | None = None
    num_kv_heads: int | None = None
    gated_mlp: Flag = None
    bias: Flag = None
    learned_positions: int | None = None
    tied_embeddings: Flag = None
    dtype_bytes: int | None = None
    published_params_b: int | float | None = None


@dataclass
class Cluster:
    name: str | None = None             # null: <gpu>x<num_gpus>
    gpu: str = MISSING                  # a key of harness.specs.hardware.GPUS
    num_gpus: int = MISSING
    gpus_per_node: int = MISSING


@dataclass
class Named:
    """task, cost_model=profiled, and the base of policy (whose knobs are extra keys)."""

    name: str = MISSING


@dataclass
class AnalyticCostModel(Named):
    attention_bw_fraction: str | int | float | None = None   # a name of ATTENTION_BW_FRACTIONS or a number
    comm: str | None = None
    engine_override: str | None = None


@dataclass
class Search:
    name: str = MISSING
    method: str = MISSING
    policies: list[str] | None = None    # null: harness.policies.EXEGPT_POLICIES
    resolution: str = MISSING
    eps_throughput_rel: int | float = MISSING
    eps_latency_s: int | float = MISSING


@dataclass
class Mode:
    """harness.specs.mode.OPTIONS; null = the named mode's reading."""

    name: str = MISSING
    rra_decode_batch: str | None = None
    latency: str | None = None
    bnb_split: str | None = None
    eps_throughput: str | None = None
    monotone_axes: str | None = None
    waa_tp_side: str | None = None


@dataclass
class Profile:
    out_dir: str = MISSING
    batch_sizes: list[int] = MISSING
    encode_lengths: list[int] = MISSING
    decode_contexts: list[int] = MISSING
    input_lengths: list[int] = MISSING
    tp_degrees: list[int] = MISSING
    message_bytes: list[int] = MISSING
    warmup: int = MISSING
    repeats: int = MISSING


@dataclass
class FidelityConfig:
    """One entry of `runner.fidelity.configs`: a configuration run for real and simulated."""

    model: str = MISSING
    task: str = MISSING
    policy: str = MISSING
    num_requests: int = MISSING
    knobs: dict[str, int] = field(default_factory=dict)


@dataclass
class Fidelity:
    """Open: `configs` (a list of FidelityConfig; absent = none) comes from the experiment."""

    size: str = MISSING
    out_dir: str = MISSING
    reprofile: Flag = MISSING
    repeats: int = MISSING
    ct2: Flag = None
    ratio: Flag = None


@dataclass
class Runner:
    name: str = MISSING
    device: str = MISSING
    backend: str = MISSING
    threads_per_worker: int = MISSING
    timeout_s: int | float = MISSING    # seconds
    dtype: str = MISSING
    num_requests: int = MISSING
    progress: Flag = MISSING
    out_dir: str = MISSING
    profile: Profile = field(default_factory=Profile)
    fidelity: Any = MISSING             # an open Fidelity node (runner_node)


# ---- root -------------------------------------------------------------------------------


@dataclass
class RuntimeAdjustment:
    enabled: Flag = MISSING
    input_tolerance_rel: int | float = MISSING
    decode_tolerance_rel: int | float = MISSING
    max_step_rel: int | float = MISSING


@dataclass
class Arrivals:
    kind: str = MISSING
    rate_per_s: int | float | None = None


@dataclass
class SLA:
    kind: str = MISSING
    output_len: int | None = None


@dataclass
class FTBaseline:
    max_batch: int | None = None
    kv_reservation: str = MISSING


@dataclass
class Paths:
    shared: str = MISSING
    profiles: str = MISSING
    ft_calibration: str = MISSING
    traces: str = MISSING


@dataclass
class Workload:
    trace: str | None = None
    input_len: int | None = None
    output_len: int | None = None


@dataclass
class Root:
    """harness/conf/config.yaml. Open: an experiment may add `study` (harness.studies.modern checks it)."""

    experiment_name: str | None = MISSING   # null: adhoc
    runs_dir: str | None = MISSING          # null: <repo>/runs
    use_paper_cluster: Flag = MISSING
    seed: int = MISSING
    simulator: str = MISSING
    num_requests: int = MISSING
    runtime_adjustment: RuntimeAdjustment = field(default_factory=RuntimeAdjustment)
    arrivals: Arrivals = field(default_factory=Arrivals)
    bound: str | int | float | None = None   # p10|p30|p70|inf (Hydra reads `inf` as a float)
    bound_s: int | float | None = None
    sla: SLA = field(default_factory=SLA)
    ft_baseline: FTBaseline = field(default_factory=FTBaseline)
    paths: Paths = field(default_factory=Paths)
    workload: Workload = field(default_factory=Workload)
    model: Any = MISSING
    cluster: Cluster = field(default_factory=Cluster)
    task: Named = field(default_factory=Named)
    cost_model: Any = MISSING
    policy: Any = MISSING
    search: Search = field(default_factory=Search)
    mode: Mode = field(default_factory=Mode)
    runner: Any = MISSING               # a runner_node


def open_node(schema: type) -> DictConfig:
    """`schema`'s typed fields in an untyped mapping: a YAML extending it may add keys (closed,
    like the rest, once Hydra has composed the root)."""
    typed, node = OmegaConf.structured(schema), OmegaConf.create({})
    for f in fields(schema):
        node[f.name] = typed._get_node(f.name)      # the typed node itself (copied), not its value
    return node


def model_node(schema: type) -> DictConfig:
    """An open_node that stays open after Hydra closes the root (its own struct flag, false,
    wins over the root's): `model.<field>=` adds the field without `+`; check_model types and
    names the keys instead (ModelFields)."""
    node = open_node(schema)
    OmegaConf.set_struct(node, False)
    return node


def runner_node() -> DictConfig:
    """Runner, closed, with an open `fidelity`."""
    node = OmegaConf.structured(Runner)
    node.fidelity = open_node(Fidelity)
    return node
