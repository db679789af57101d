"""Branch-and-bound against the exhaustive oracle on the same grids (ExeGPT §5)."""

from __future__ import annotations

import pytest

from harness.cost_model import get_cost_model
from harness.policies import Context, get_policy
from harness.scheduler import find_schedule
from harness.scheduler.bnb import Point, branch_and_bound, exhaustive
from harness.scheduler.space import build_space, ladder
from harness.specs import get_cluster, get_model
from harness.workload import get_task

EPS_T = 0.01


def ctx_of(model: str, cluster: str, task: str) -> Context:
    c = get_cluster(cluster)
    return Context(get_model(model), c, get_task(task), get_cost_model("analytic", c))


def test_ladder_is_dense_then_geometric_and_keeps_the_ends():
    assert ladder(1, 10, 8, 2) == (1, 2, 3, 4, 5, 6, 7, 8, 10)
    lad = ladder(1, 512, 32, 16)
    assert lad[:32] == tuple(range(1, 33)) and lad[-1] == 512 and list(lad) == sorted(set(lad))


def test_n_d_axis_is_oriented_so_index_up_raises_throughput():
    space = build_space(get_policy("rra"), ctx_of("opt-13b", "a40x4", "S"), "coarse")
    axes = {a.name: a.values for a in space.axes}
    assert axes["encode_batch_size"][0] < axes["encode_batch_size"][-1]
    assert axes["decode_iters"][0] > axes["decode_iters"][-1]      # fewer iterations = more throughput


def test_bnb_on_a_hand_made_monotone_surface():
    """throughput = x + y, latency = x * y: best with x * y < 20 on a 10 x 10 grid is x + y = 11
    ((1, 10)... limited by the grid to x, y <= 9: (2, 9) or (9, 2) -> 11; hand enumerated)."""
    def f(idx):
        x, y = idx[0] + 1, idx[1] + 1
        return Point(float(x + y), float(x * y), True)
    res = branch_and_bound(f, (9, 9), 20.0, eps_throughput_rel=0.0)
    assert res.best_throughput_seq_s == 11.0
    assert exhaustive(f, (9, 9), 20.0).best_throughput_seq_s == 11.0
    assert res.evaluations < 81


def test_bnb_returns_nothing_when_nothing_fits():
    res = branch_and_bound(lambda idx: Point(1.0, 99.0, True), (5, 5), 1.0)
    assert res.best is None


SCENARIOS = [(m, c, t, b) for m, c in (("opt-13b", "a40x4"), ("t5-11b", "a40x8"), ("gpt3-39b", "a40x16"))
             for t in ("S", "T", "C1") for b in ("p10", "p30", "p70", "inf")]


@pytest.fixture(scope="module")
def oracle_rows():
    from harness.scheduler.bounds import derive_bounds
    rows = []
    for m, c, t, b in SCENARIOS:
        ctx = ctx_of(m, c, t)
        bound_s = derive_bounds(ctx).by_label()[b]
        assert bound_s is not None, f"FT infeasible for {m}/{c}/{t}: no derived bound"
        bb = find_schedule(ctx, bound_s, resolution="coarse", eps_throughput_rel=EPS_T)
        ex = find_schedule(ctx, bound_s, resolution="coarse", use_exhaustive=True)
        rows.append((f"{m}/{c}/{t}/{b}", bb, ex))
    return rows


def test_branch_and_bound_is_within_eps_of_the_exhaustive_optimum(oracle_rows):
    assert len(oracle_rows) >= 30
    assert sum(ex.best is not None for _, _, ex in oracle_rows) >= 30, "too few scenarios with a schedule"
    for name, bb, ex in oracle_rows:
        if ex.best is None:
            assert bb.best is None, name
            continue
        assert bb.best is not None, name
        assert bb.best.latency_s < bb.bound_s
        assert bb.best.throughput_seq_s >= (1 - EPS_T) * ex.best.throughput_seq_s, name


def test_branch_and_bound_needs_fewer_evaluations(oracle_rows):
    bb = sum(r[1].evaluations for r in oracle_rows)
    ex = sum(r[2].evaluations for r in oracle_rows)
    assert bb < ex / 3


def test_a_stepped_knob_is_searched_only_on_its_steps() -> None:
    """A knob of step 25 over [25, 100] accepts 25, 50, 75, 100 (KnobSpec.validate): the
    search grid is exactly those, monotone or not; a long stepped range keeps its ends and
    only on-step values (the powers of two 32 and 64 are not multiples of 24 from 24)."""
    from harness.policies.base import KnobSpec
    from harness.scheduler.space import knob_grid
    for dirs in ((0, 0), (+1, +1)):
        assert knob_grid(KnobSpec("pct", 25, 100, 25, *dirs), None, 4, 2) == [25, 50, 75, 100]
    long = knob_grid(KnobSpec("tokens", 24, 24 * 40, 24, 0, 0), None, 4, 2)
    assert long[0] == 24 and long[-1] == 960 and all(v % 24 == 0 for v in long)
