"""Options of the analytic cost model (`cost_model.*`): hand calculations, the default is the
fitted model bit for bit, bad options are one-line UserErrors, stored alternatives re-derive."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import pytest

from harness.config import build_scenario, compose
from harness.cost_model import get_cost_model
from harness.cost_model import kernels as K
from harness.cost_model.analytic import OPTIONS, AnalyticCostModel
from harness.cost_model.params import (
    A40_P2P_INTER,
    A40_P2P_INTRA,
    ATTENTION_BW_FRACTIONS,
    COMM_ALTERNATIVES,
    CommParams,
    ComputeParams,
    FrameworkParams,
    load,
)
from harness.errors import UserError
from harness.specs import get_cluster, get_model

OPT, A40X4, A40X16 = get_model("opt-13b"), get_cluster("a40x4"), get_cluster("a40x16")
SHARED = Path(os.environ.get("HARNESS_SHARED_DIR", Path(__file__).resolve().parents[1] / ".." / "shared"))
PROFILES = SHARED / "profiles" / "vidur"
VLLM_JSON = SHARED / "reference" / "engines" / "distserve-vllm-a100-80g.json"


def decode_attention() -> K.Kernel:
    """Bandwidth-bound: 64 sequences x 1024 cached tokens, TP 4 (1 FLOP per byte)."""
    return K.attention("attn", 64, 1, 1024, OPT, 4, causal=False)


# ---- the default is the fitted model ----------------------------------------------------
def test_default_is_bit_identical_to_the_fitted_constants():
    p, default = load(), get_cost_model("analytic", A40X4)
    explicit = get_cost_model("analytic", A40X4, comm="transferred", attention_bw_fraction="ft-a100")
    c, comp = p.for_gpu("a40").comm, p.for_gpu("a40").compute
    msg = 3.0e6
    assert default.allreduce_s(msg, 4) == c.allreduce_latency_s + 1.5 * msg / (32e9 * c.allreduce_bw_fraction)
    assert default.p2p_s(msg) == c.p2p_latency_s + msg / (32e9 * c.p2p_bw_fraction)
    k = decode_attention()
    assert default.kernel_s(k) == (k.bytes / (696e9 * (comp.gemm_bw_fraction * p.framework.attention_bw_fraction))
                                   + comp.gemm_overhead_s)
    for cm in (default, explicit):
        assert cm.id == "analytic-v1/a40" and cm.options == ()
    for args in ((OPT, 32, 700.0, 4), (OPT, 1, 10.0, 4)):
        assert default.decode_layer(*args) == explicit.decode_layer(*args)
    assert default.encode_layer(OPT, 8, 512.0, 4) == explicit.encode_layer(OPT, 8, 512.0, 4)


# ---- attention_bw_fraction ------------------------------------------------------------------
def test_attention_time_scales_exactly_with_the_fraction():
    comp, k = load().for_gpu("a40").compute, decode_attention()
    t = {f: get_cost_model("analytic", A40X4, attention_bw_fraction=f).kernel_s(k) - comp.gemm_overhead_s
         for f in (0.5, 1.0)}
    assert t[1.0] == pytest.approx(k.bytes / (696e9 * comp.gemm_bw_fraction), rel=1e-12)
    assert t[0.5] == pytest.approx(2 * t[1.0], rel=1e-12)
    gemm = K.gemm("mlp_up_proj", 64, 5120, 5120, 2)            # other kernels do not move
    assert get_cost_model("analytic", A40X4, attention_bw_fraction=1.0).kernel_s(gemm) == \
        get_cost_model("analytic", A40X4).kernel_s(gemm)


def test_named_attention_alternatives_resolve_to_their_stored_value():
    k = decode_attention()
    assert sum(alt.value is not None for alt in ATTENTION_BW_FRACTIONS.values()) >= 1, "no stored value to check"
    for name, alt in ATTENTION_BW_FRACTIONS.items():
        if alt.value is not None:
            named = get_cost_model("analytic", A40X4, attention_bw_fraction=name)
            assert named.kernel_s(k) == get_cost_model("analytic", A40X4, attention_bw_fraction=alt.value).kernel_s(k)
            assert named.id == f"analytic-v1/a40,attention_bw_fraction={name}"
        assert alt.source


# ---- comm ----------------------------------------------------------------------------------
def test_ring_allreduce_from_the_a40_p2p_is_the_hand_sum():
    cm, msg = get_cost_model("analytic", A40X4, comm="a40-ring"), 2.0**20
    step = A40_P2P_INTRA.latency_s + (msg / 4) / (32e9 * A40_P2P_INTRA.bw_fraction)
    assert cm.allreduce_s(msg, 4) == pytest.approx(6 * step, rel=1e-12)       # 2(n-1) = 6 steps
    assert cm.p2p_s(msg) == pytest.approx(A40_P2P_INTRA.latency_s + msg / (32e9 * A40_P2P_INTRA.bw_fraction))
    ring16, transferred = (get_cost_model("analytic", A40X16, **o) for o in ({"comm": "a40-ring"}, {}))
    for inter in (True, False):                                               # inter-node untouched
        assert (ring16.allreduce_s(msg, 16, inter) == transferred.allreduce_s(msg, 16, inter)) is inter
        assert (ring16.p2p_s(msg, inter) == transferred.p2p_s(msg, inter)) is inter
    assert ring16.kv_transfer_s(msg) == transferred.kv_transfer_s(msg)        # host copies untouched


def test_a40_measured_rings_inter_node_over_the_measured_flow():
    cm, msg = get_cost_model("analytic", A40X16, comm="a40-measured"), 8.0e6
    link = 100e9 / 8 / 8                                                      # per-GPU share, 8 GPUs/node
    step = A40_P2P_INTER.latency_s + (msg / 16) / (link * A40_P2P_INTER.bw_fraction)
    assert cm.allreduce_s(msg, 16, inter_node=True) == pytest.approx(30 * step, rel=1e-12)


def test_pcie4_peak_streams_at_the_datasheet_rate():
    cm = get_cost_model("analytic", A40X4, comm="pcie4-peak")
    assert cm.p2p_s(31.5e9) - A40_P2P_INTRA.latency_s == pytest.approx(1.0, rel=1e-12)
    assert cm.allreduce_s(4.0e6, 4) < get_cost_model("analytic", A40X4).allreduce_s(4.0e6, 4)


def test_id_records_every_non_default_option():
    cm = get_cost_model("analytic", A40X4, comm="a40-ring", attention_bw_fraction=1)
    assert cm.id == "analytic-v1/a40,attention_bw_fraction=1.0,comm=a40-ring"
    assert cm.options == (("attention_bw_fraction", "1.0"), ("comm", "a40-ring"))


# ---- bad options -----------------------------------------------------------------------------
@pytest.mark.parametrize("options, key", [
    ({"attention_bw": 1.0}, "attention_bw"),
    ({"comm": "nvlink"}, "comm"),
    ({"comm": 3}, "comm"),
    ({"attention_bw_fraction": 0.0}, "attention_bw_fraction"),
    ({"attention_bw_fraction": 1.4}, "attention_bw_fraction"),     # > 1 / gemm_bw_fraction (A40: 1.306)
    ({"attention_bw_fraction": True}, "attention_bw_fraction"),
    ({"attention_bw_fraction": "flash"}, "attention_bw_fraction"),
])
def test_bad_option_is_a_one_line_user_error_naming_the_key(options, key):
    with pytest.raises(UserError, match=rf"^cost_model\.{key}: ") as e:
        get_cost_model("analytic", A40X4, **options)
    assert "\n" not in str(e.value) and ("valid" in str(e.value) or "must be one of" in str(e.value))


def test_a40_grounded_comm_is_refused_on_another_gpu():
    with pytest.raises(UserError, match=r"^cost_model\.comm: 'a40-ring' is grounded in a40 data.*valid here"):
        get_cost_model("analytic", get_cluster("a100x16"), comm="a40-ring")


def test_options_are_declared_with_their_values():
    assert set(OPTIONS) == {"attention_bw_fraction", "comm", "engine_override"}
    assert all(a.source for a in COMM_ALTERNATIVES.values())
    assert all(name in OPTIONS["comm"] for name in COMM_ALTERNATIVES)


def test_engine_override_prices_every_policy_with_one_engine():
    """cost_model.engine_override=vllm: FT-engine policies (rra) and vLLM-engine ones (vllm) are
    priced by the same kernels; without it each policy keeps its own (Policy.engine)."""
    from harness.cost_model.engines import engine_of, with_engine
    from harness.policies import get_policy
    cl = get_cluster("a40x4")
    own, pinned = get_cost_model("analytic", cl), get_cost_model("analytic", cl, engine_override="vllm")
    assert engine_of(with_engine(own, get_policy("rra").engine)) == "ft"
    assert engine_of(with_engine(own, get_policy("vllm").engine)) == "vllm"
    assert with_engine(pinned, "ft") is pinned and engine_of(pinned) == "vllm" and "engine_override" in pinned.id
    with pytest.raises(UserError, match=r"^cost_model\.engine_override: unknown 'xx'"):
        get_cost_model("analytic", cl, engine_override="xx")


def test_config_keys_reach_the_cost_model():
    s = build_scenario(compose(["cost_model.attention_bw_fraction=1.0", "cost_model.comm=a40-ring"]))
    cm = get_cost_model(s.cost_model_name, s.cluster, **dict(s.cost_model_options))
    assert isinstance(cm, AnalyticCostModel) and cm.id.endswith(",attention_bw_fraction=1.0,comm=a40-ring")
    assert build_scenario(compose([])).cost_model_options == ()               # null keys: the default


# ---- stored alternatives and the A40 grounding (measured data in ../shared) ------------------
needs_data = pytest.mark.skipif(not (PROFILES.exists() and VLLM_JSON.exists()),
                                reason=f"needs {PROFILES} and {VLLM_JSON}")


@needs_data
def test_stored_alternatives_rederive_from_their_data():
    from harness.cost_model.fit import derive_alternatives
    from harness.cost_model.measurements import load_vidur_network
    df = derive_alternatives(load(), load_vidur_network(PROFILES), VLLM_JSON)
    assert len(df) == 6 and (df["rel_diff"] < 1e-6).all(), df.to_string()


def test_a40_grounding_states_every_constant_with_a_source():
    from harness.cost_model.calibration import a40_grounding
    g = a40_grounding()
    names = set(g["constant"])
    for cls, prefix in ((ComputeParams, "compute"), (CommParams, "comm"), (FrameworkParams, "framework")):
        assert {f"{prefix}.{f.name}" for f in fields(cls)} <= names
    assert g["source"].str.len().min() > 0
    comm = g[g["constant"].str.startswith("comm.")]
    assert comm["source"].str.contains("transferred from A100").all()
