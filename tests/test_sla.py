"""SLA variants (ExeGPT §5): main, (a) 99% of queries, (b) a query of a given length."""

from __future__ import annotations

import dataclasses

import pytest

from harness.config import build_scenario, compose
from harness.cost_model import get_cost_model
from harness.errors import UserError
from harness.policies import Context, get_policy
from harness.policies.base import SLA
from harness.scheduler import find_schedule
from harness.simulator.expected import evaluate
from harness.specs import get_cluster, get_model
from harness.workload import get_task


@pytest.fixture(scope="module")
def ctx():
    c = get_cluster("a40x4")
    return Context(get_model("opt-13b"), c, get_task("S"), get_cost_model("analytic", c))


KNOBS = {"rra": {"encode_batch_size": 52, "decode_iters": 13, "tp_degree": 4},
         "waa-c": {"encode_batch_size": 4, "tp_degree": 2}}


@pytest.mark.parametrize("policy", KNOBS)
def test_sla_b_at_the_p99_length_is_the_main_definition(ctx, policy):
    b = dataclasses.replace(ctx, sla=SLA("b", ctx.workload.output_p99))
    p = get_policy(policy)
    assert evaluate(p.plan(b, KNOBS[policy]), b.workload) == evaluate(p.plan(ctx, KNOBS[policy]), ctx.workload)


@pytest.mark.parametrize("policy", KNOBS)
def test_a_shorter_query_finishes_sooner_and_throughput_is_unchanged(ctx, policy):
    short = dataclasses.replace(ctx, sla=SLA("b", 16))
    p = get_policy(policy)
    e_main, e_short = (evaluate(p.plan(c, KNOBS[policy]), c.workload) for c in (ctx, short))
    assert e_short.latency_s < e_main.latency_s
    assert e_short.throughput_seq_s == e_main.throughput_seq_s


def test_sla_a_equals_main_in_the_expected_value_model(ctx):
    a = dataclasses.replace(ctx, sla=SLA("a"))
    for policy, knobs in KNOBS.items():
        p = get_policy(policy)
        assert evaluate(p.plan(a, knobs), a.workload).latency_s == evaluate(p.plan(ctx, knobs), ctx.workload).latency_s


def test_a_looser_sla_never_lowers_the_searched_throughput(ctx):
    main = find_schedule(ctx, 4.0, resolution="coarse").best
    short = find_schedule(dataclasses.replace(ctx, sla=SLA("b", 16)), 4.0, resolution="coarse").best
    assert short.throughput_seq_s >= main.throughput_seq_s * 0.99


@pytest.mark.parametrize("overrides, field", [(["sla.kind=c"], "sla.kind"), (["sla.kind=b"], "sla.output_len"),
                                              (["sla.output_len=5"], "sla.output_len"),
                                              (["sla.kind=b", "sla.output_len=0"], "sla.output_len")])
def test_bad_sla_config_is_a_one_line_error_naming_the_field(overrides, field):
    with pytest.raises(UserError, match=rf"^{field}:"):
        build_scenario(compose(overrides))


def test_sla_is_in_the_scenario():
    assert build_scenario(compose(["sla.kind=b", "sla.output_len=40"])).sla == SLA("b", 40)
    assert build_scenario(compose([])).sla == SLA()


def test_discrete_event_estimate_reads_each_sla():
    """In the discrete-event simulator the three SLAs differ: a query of 20 tokens finishes far
    sooner than the worst p99-length query; the p99 over all queries is at most that worst case."""
    import json
    import subprocess
    import sys
    lat = {}
    for k, extra in (("main", []), ("a", []), ("b", ["sla.output_len=20"])):
        r = subprocess.run([sys.executable, "-m", "harness.cli.main", "estimate", "simulator=discrete-event",
                            "num_requests=600", f"sla.kind={k}", *extra], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        assert d["inputs"]["sla"] == k
        lat[k] = d["estimate"]["latency_s"]
    assert lat["b"] < lat["a"] <= lat["main"]
