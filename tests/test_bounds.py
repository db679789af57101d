"""Latency bounds from FT (ExeGPT §7): batch sweep, percentile rule, NS, resolution, CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from harness.config import compose
from harness.cost_model import get_cost_model
from harness.errors import UserError
from harness.policies import Context, get_policy
from harness.scheduler.bounds import derive_bounds, ft_batch_sizes, percentile_lower, resolve_bound
from harness.simulator.expected import evaluate
from harness.specs import get_cluster, get_model
from harness.workload import get_task


def ctx_of(model: str, cluster: str, task: str = "S") -> Context:
    c = get_cluster(cluster)
    return Context(get_model(model), c, get_task(task), get_cost_model("analytic", c))


@pytest.fixture(scope="module")
def opt() -> Context:
    return ctx_of("opt-13b", "a40x4")


def test_batch_sizes_step_4_up_to_the_largest_that_fits(opt):
    sizes = ft_batch_sizes(opt)
    assert sizes[:3] == [1, 4, 8]
    assert all(b - a == 4 for a, b in zip(sizes[1:], sizes[2:], strict=False))
    ft = get_policy("ft")
    assert ft.plan(opt, {"batch_size": sizes[-1]}).feasible
    assert not ft.plan(opt, {"batch_size": sizes[-1] + 4}).feasible


def test_bounds_are_sorted_ft_latencies(opt):
    """§7's rule worked from the sweep: FT's latency rises with its batch, so the bottom q% of
    the n latencies is the FT run at batch index floor(q/100 (n - 1)), priced on its own."""
    b = derive_bounds(opt)
    assert b.supported and len(b.batch_sizes) == len(b.ft_latencies_s) == len(b.ft_throughputs_seq_s)
    ft, n = get_policy("ft"), len(b.batch_sizes)
    lat = [evaluate(ft.plan(opt, {"batch_size": bs}), opt.workload).latency_s for bs in b.batch_sizes]
    assert list(b.ft_latencies_s) == lat and all(x < y for x, y in zip(lat, lat[1:], strict=False))
    for q, got in ((10, b.p10_s), (30, b.p30_s), (70, b.p70_s)):
        assert got == lat[math.floor(q / 100 * (n - 1))], q
    assert b.inf_s == math.inf and b.as_dict()["bounds_s"]["inf"] is None


def test_percentile_lower_hand_check():
    """Sorted 1..10: index floor(q/100 * 9) -> p10: 1, p30: 3 (2.7 -> 2), p70: 7 (6.3 -> 6)."""
    values = [5.0, 1.0, 3.0, 2.0, 4.0, 9.0, 7.0, 6.0, 8.0, 10.0]
    assert [percentile_lower(values, q) for q in (10, 30, 70)] == [1.0, 3.0, 7.0]


def test_infeasible_scenario_is_ns_not_an_exception():
    c = ctx_of("gpt3-341b", "a40x4")
    b = derive_bounds(c)
    assert not b.supported and b.batch_sizes == () and b.p10_s is None
    assert b.reason.startswith("NS") and "memory" in b.reason
    assert resolve_bound(c, "inf", None) == ("inf", math.inf)
    with pytest.raises(UserError, match="^bound: p10 undefined"):
        resolve_bound(c, "p10", None)


def test_resolve_bound_selects_or_takes_seconds(opt):
    assert resolve_bound(opt, "p30", None) == ("p30", derive_bounds(opt).p30_s)
    assert resolve_bound(opt, None, 9.8) == ("9.8s", 9.8)
    assert resolve_bound(opt, None, 3) == ("3s", 3.0)


@pytest.mark.parametrize("bound,bound_s,field", [
    ("p10", 3.0, "bound, bound_s: both set"), (None, None, "bound, bound_s: missing"),
    (None, 0.0, "bound_s:"), (None, -1.0, "bound_s:"), (None, "x", "bound_s:"),
    ("p20", None, "bound: unknown 'p20'"),
])
def test_resolve_bound_errors_are_one_line_naming_the_field(opt, bound, bound_s, field):
    with pytest.raises(UserError) as e:
        resolve_bound(opt, bound, bound_s)
    assert str(e.value).startswith(field) and "\n" not in str(e.value)


def test_config_has_bound_keys():
    cfg = compose(["bound=p30"])
    assert cfg.bound == "p30" and cfg.bound_s is None


def test_cli_bounds_prints_json_with_the_paper_values():
    r = subprocess.run([sys.executable, "-m", "harness.cli.main", "bounds", "model=opt-13b", "cluster=a40x4",
                        "task=S"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["inputs"]["model"] == "opt-13b" and d["inputs"]["cost_model"]
    assert d["batch_sizes"][:3] == [1, 4, 8] and len(d["ft_latencies_s"]) == len(d["batch_sizes"])
    assert set(d["bounds_s"]) == {"p10", "p30", "p70", "inf"} and d["bounds_s"]["inf"] is None
    assert [row["paper_s"] for row in d["paper"]["bounds"]] == [3.1, 5.9, 11.5]
