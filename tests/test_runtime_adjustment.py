"""Runtime adjustment (ExeGPT §3) in the discrete-event simulator: off is the plain timeline
bit for bit (golden values from the simulator before adjustment existed), on keeps each
encoder batch's total input within its threshold and pulls a drifted decoding batch back."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cost_model import get_cost_model
from harness.errors import UserError
from harness.policies import Context, get_policy
from harness.simulator.discrete_event import OFF, RuntimeAdjustment, simulate
from harness.simulator.expected import evaluate
from harness.simulator.metrics import sla_a_latency_s, sla_b_latency_s
from harness.specs import get_cluster, get_model
from harness.workload import get_task, offline, poisson, shifted_output


@pytest.fixture(scope="module")
def cm():
    return get_cost_model("analytic", get_cluster("a40x4"))


def ctx(cm, task: str) -> Context:
    return Context(get_model("opt-13b"), get_cluster("a40x4"), get_task(task), cm)


# (task, policy, knobs, stream) -> throughput, latency_p99len, e2e_p99, sum of finish times:
# printed by the simulator at commit 1a5102c (before runtime adjustment), repr precision.
GOLDEN = [
    ("S", "ft", {"batch_size": 16}, "offline", (6.168551019679376, 3.1602974932236236, 96.3042387777894, 29171.03690509878)),
    ("S", "ft", {"batch_size": 16}, "poisson", (2.910303854930855, 2.6784995493280306, 9.463194267937604, 16028.754729706365)),
    ("T", "rra", {"encode_batch_size": 42, "decode_iters": 42, "tp_degree": 4}, "offline",
     (13.847850993025492, 21.829974981828887, 47.041621362618336, 16378.675270132222)),
    ("S", "rra", {"encode_batch_size": 16, "decode_iters": 4, "tp_degree": 2}, "poisson",
     (2.886743625489883, 3.0677248283546916, 3.032553963802602, 15141.181334212288)),
    ("T", "waa-c", {"encode_batch_size": 2, "micro_batches": 2, "tp_degree": 2}, "offline",
     (15.455605569997832, 29.946727093851052, 46.195339875488315, 16033.951632940749)),
    ("S", "waa-m", {"encode_batch_size": 8, "tp_degree": 2}, "poisson",
     (2.8922927432608416, 2.947792184155091, 2.7946505971010223, 15110.002143593189)),
]


def _stream(kind: str, w):
    return offline(w, 600, 5) if kind == "offline" else poisson(w, 300, 3.0, 7)


@pytest.mark.parametrize(("task", "policy", "knobs", "kind", "golden"), GOLDEN,
                         ids=[f"{g[1]}-{g[0]}-{g[3]}" for g in GOLDEN])
def test_off_is_the_previous_simulator_exactly(cm, task, policy, knobs, kind, golden):
    c = ctx(cm, task)
    plan = get_policy(policy).plan(c, knobs)
    reqs = _stream(kind, c.workload)
    res = simulate(plan, reqs)
    m = res.metrics
    got = (m.throughput_seq_s, m.latency_p99len_s, m.e2e_p99_s, float(res.records.finish_s.sum()))
    assert got == pytest.approx(golden, rel=1e-12)
    assert simulate(plan, reqs, OFF, c.workload).to_frame().equals(res.to_frame())
    # enabled with no freedom (count fixed at B_E, bands infinite) is the same timeline too
    frozen = RuntimeAdjustment(True, float("inf"), float("inf"), 0.0)
    assert simulate(plan, reqs, frozen, c.workload).to_frame().equals(res.to_frame())


def _batches(rec):
    """(start, count, total input) of every encoder batch (contiguous equal encode starts)."""
    starts, idx = np.unique(rec.encode_start_s, return_index=True)
    bounds = [*np.sort(idx), len(rec)]
    return [(rec.encode_start_s[a], b - a, int(rec.input_len[a:b].sum())) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@pytest.mark.parametrize(("policy", "knobs", "tol"), [
    ("rra", {"encode_batch_size": 16, "decode_iters": 16, "tp_degree": 4}, 0.1),
    ("waa-c", {"encode_batch_size": 4, "micro_batches": 2, "tp_degree": 2}, 0.25),
])
def test_on_keeps_encoder_batch_input_within_threshold(cm, policy, knobs, tol):
    """Decode rule off (infinite band): every full encoder batch's total input is within `tol`
    of B_E x E[input]; the band (2 tol B_E 128 tokens for T: 410 and 256) is at least as wide
    as any one request (<= 256), so it is always reachable. Plain batching misses it often."""
    c = ctx(cm, "T")
    plan = get_policy(policy).plan(c, knobs)
    b_e, goal = plan.encode_batch_size, plan.encode_batch_size * c.workload.input.mean
    reqs = offline(c.workload, 1500, 3)
    adj = RuntimeAdjustment(True, input_tolerance_rel=tol, decode_tolerance_rel=float("inf"), max_step_rel=1.0)
    on = _batches(simulate(plan, reqs, adj, c.workload).records)[:-1]      # last one: leftovers
    off = _batches(simulate(plan, reqs).records)[:-1]
    on_dev = np.array([abs(tot / goal - 1) for _, _, tot in on])
    off_dev = np.array([abs(tot / goal - 1) for _, _, tot in off])
    assert on_dev.max() <= tol + 1e-9
    assert (off_dev > tol).mean() > 0.2
    assert {n for _, n, _ in on} != {b_e}                                    # sizes did move


def test_on_pulls_a_drifted_decoding_batch_back(cm):
    """Outputs 30% longer than tuned for: B_D drifts up; the decode rule shrinks the encoder
    batches, so B_D ends nearer the plan's and the p99-length latency falls."""
    c = ctx(cm, "T")
    plan = get_policy("rra").plan(c, {"encode_batch_size": 42, "decode_iters": 42, "tp_degree": 4})
    w = shifted_output(c.workload, mean_factor=1.3)
    reqs = offline(w, 1500, 0)
    expected_bd = evaluate(plan, c.workload).decode_batch_size
    off = simulate(plan, reqs)
    on = simulate(plan, reqs, RuntimeAdjustment(True), c.workload)
    assert abs(on.metrics.decode_batch_mean - expected_bd) < abs(off.metrics.decode_batch_mean - expected_bd)
    assert on.metrics.latency_p99len_s < off.metrics.latency_p99len_s
    assert np.mean([n for _, n, _ in _batches(on.records)]) < plan.encode_batch_size


def test_enabled_needs_the_schedules_workload(cm):
    c = ctx(cm, "S")
    plan = get_policy("rra").plan(c, {"encode_batch_size": 8, "decode_iters": 8})
    with pytest.raises(UserError, match="workload"):
        simulate(plan, offline(c.workload, 10, 0), RuntimeAdjustment(True))
    with pytest.raises(UserError, match="input_tolerance_rel"):
        RuntimeAdjustment(True, input_tolerance_rel=-0.1)


def test_sla_helpers_match_paper_latency(cm):
    c = ctx(cm, "T")
    plan = get_policy("waa-c").plan(c, {"encode_batch_size": 2, "micro_batches": 2, "tp_degree": 2})
    res = simulate(plan, offline(c.workload, 800, 1))
    rec, m = res.records, res.metrics
    assert sla_b_latency_s(rec, m.latency_len) == m.latency_p99len_s
    assert sla_a_latency_s(rec) == pytest.approx(np.quantile(rec.finish_s - rec.encode_start_s, 0.99))
    assert sla_a_latency_s(rec, origin="arrival") == pytest.approx(m.e2e_p99_s)
    assert np.isnan(sla_b_latency_s(rec, 10_000))
