"""mode=paper|ours: the option table, config errors, and each timeline option against hand
calculations (harness/specs/mode.py, harness/simulator/expected.py, harness/policies/waa.py)."""

from __future__ import annotations

import dataclasses

import pytest

from harness.config import build_scenario, compose
from harness.cost_model import get_cost_model
from harness.errors import UserError
from harness.policies import Context, get_policy
from harness.policies.closed_form import rra_decode_batches
from harness.simulator.expected import evaluate
from harness.specs import get_cluster, get_model
from harness.specs.mode import OURS, PAPER, make_mode, mode_from_dict
from harness.workload import fixed, get_task


def ctx_of(mode, model="opt-13b", cluster="a40x4", task="S") -> Context:
    c = get_cluster(cluster)
    return Context(get_model(model), c, get_task(task), get_cost_model("analytic", c), mode=mode)


def test_the_two_modes_differ_in_every_option_and_label_their_departures():
    assert all(getattr(PAPER, k) != getattr(OURS, k) for k in OURS.options())
    assert PAPER.label() == "paper" and OURS.label() == "ours"
    assert make_mode("paper", latency="expected").label() == "paper+latency=expected"


def test_config_selects_a_mode_and_rejects_unknown_names_in_one_line():
    assert build_scenario(compose(["mode=paper"])).mode == PAPER
    assert build_scenario(compose([])).mode == OURS            # the documented default
    s = build_scenario(compose(["mode=paper", "mode.latency=expected"]))
    assert s.mode == make_mode("paper", latency="expected")
    with pytest.raises(UserError, match=r"^mode: unknown 'papr' \(did you mean 'paper'\?\); valid: ours, paper$"):
        compose(["mode=papr"])
    with pytest.raises(UserError, match=r"^mode\.latency: unknown 'worst'.*valid: expected, worst-case$"):
        build_scenario(compose(["mode.latency=worst"]))
    with pytest.raises(UserError, match=r"^mode\.foo: not a mode option"):
        mode_from_dict({"name": "ours", "foo": "x"})


def test_rra_decode_batch_readings_by_hand():
    # Every query has 20 output tokens, N_D = 8: sum_U P_D(U) = 1/ceil(20/8) = 1/3, so the
    # paper's B_D = 3 B_E, constant. Steady state: a query is live in iterations j of its
    # k-th phase with 8k + j <= 20: 3 phases for j <= 4, 2 for j = 5..8 -> peak 3 B_E,
    # mean (4*3 + 4*2)/8 = 2.5 B_E = E[S]/N_D B_E (Little's law).
    assert rra_decode_batches(4, fixed(20), 8, PAPER) == pytest.approx((12.0, 12.0))
    assert rra_decode_batches(4, fixed(20), 8, OURS) == pytest.approx((12.0, 10.0))


def test_worst_case_latency_prices_the_phase_start_batch():
    ours, paper_lat = ctx_of(OURS), ctx_of(make_mode("ours", latency="worst-case"))
    knobs = {"encode_batch_size": 32, "decode_iters": 8, "tp_degree": 4}
    e_ours = evaluate(get_policy("rra").plan(ours, knobs), ours.workload)
    e_worst = evaluate(get_policy("rra").plan(paper_lat, knobs), paper_lat.workload)
    assert e_worst.throughput_seq_s == e_ours.throughput_seq_s     # throughput is not a latency reading
    plan = get_policy("rra").plan(ours, knobs)
    c, w = plan.costs, ours.workload
    from harness.policies.closed_form import live_context_len
    peak, mean = rra_decode_batches(32, w.output, 8, OURS)
    enc, ctxlen = c.encode_s(32, w.input.mean), live_context_len(w)
    drain = c.decode_drain_s(round(mean), ctxlen, w.input.mean)
    cycles = -(-w.output_p99 // 8)
    hand = cycles * enc + (cycles - 1) * drain + w.output_p99 * c.decode_iter_s(round(peak), ctxlen, w.input.mean)
    assert e_worst.latency_s == pytest.approx(hand, rel=1e-12)
    assert e_worst.latency_s > e_ours.latency_s


def test_waa_tp_side_is_a_knob_only_in_the_paper_reading():
    assert "tp_side" not in {k.name for k in get_policy("waa-c").knob_space(ctx_of(OURS))}
    ctx = ctx_of(PAPER)
    assert "tp_side" in {k.name for k in get_policy("waa-c").knob_space(ctx)}
    knobs = {"encode_batch_size": 16, "tp_degree": 2, "tp_gpus": 2, "micro_batches": 1}
    on_dec = get_policy("waa-m").plan(ctx, {**knobs, "tp_side": 0})
    on_enc = get_policy("waa-m").plan(ctx, {**knobs, "tp_side": 1})
    enc_deg = [st.tp_degree for st in on_enc.costs.encode_stages]
    dec_deg = [st.tp_degree for st in on_dec.costs.decode_stages]
    assert 2 in enc_deg and 2 in dec_deg
    assert all(st.tp_degree == 1 for st in on_enc.costs.decode_stages)
    assert all(st.tp_degree == 1 for st in on_dec.costs.encode_stages)


def test_ours_mode_plans_are_those_of_a_context_without_a_mode():
    c = get_cluster("a40x4")
    plain = Context(get_model("opt-13b"), c, get_task("S"), get_cost_model("analytic", c))
    assert dataclasses.replace(plain, mode=OURS) == plain
