"""Algorithm 1's readings (ExeGPT §5): corners vs bisect, slack vs gap, monotone axes, probes.

Every expected value below is worked out by hand from the function the test builds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.cost_model import get_cost_model
from harness.policies import Context, get_policy
from harness.scheduler.bnb import Point, Root, Rules, branch_and_bound, exhaustive, search_forest
from harness.scheduler.oracle_study import Oracle
from harness.scheduler.search import SearchOptions, _guillotine
from harness.scheduler.space import build_space
from harness.specs import get_cluster, get_model
from harness.specs.mode import make_mode
from harness.workload import get_task

PAPER_RULES = {"split": "corners", "prune": "slack"}
OURS_RULES = {"split": "bisect", "prune": "gap"}


def recording(f):
    """`f` wrapped so that the order of evaluated points is kept in `.calls`."""
    def ev(idx):
        ev.calls.append(idx)
        return f(idx)
    ev.calls = []
    return ev


def surface(thr, lat):
    return lambda idx: Point(float(thr(*idx)), float(lat(*idx)), True)


def test_corners_splits_along_the_axis_whose_lowering_gives_the_better_feasible_corner():
    """T = 10x + y, L = x + y < 4 on 4 x 4. Root: lo (0,0), hi (3,3) (L 6). Corners (0,3)
    (L 3, T 3) and (3,0) (L 3, T 30): (3,0) is hi with y lowered -> halve y at 1: children
    [(0,0),(3,1)] (new upper corner (3,1)) and [(0,2),(3,3)] (new lower corner (0,2))."""
    ev = recording(surface(lambda x, y: 10 * x + y, lambda x, y: x + y))
    res = branch_and_bound(ev, (4, 4), 4.0, eps_throughput_rel=0.0, **PAPER_RULES)
    assert ev.calls[:6] == [(0, 0), (3, 3), (0, 3), (3, 0), (3, 1), (0, 2)]
    assert res.best == (3, 0) and res.best_throughput_seq_s == 30.0


def test_corners_mirrored_surface_splits_the_other_axis():
    """T = x + 10y: now (0,3) (T 30) wins; it is hi with x lowered -> halve x at 1."""
    ev = recording(surface(lambda x, y: x + 10 * y, lambda x, y: x + y))
    res = branch_and_bound(ev, (4, 4), 4.0, eps_throughput_rel=0.0, **PAPER_RULES)
    assert ev.calls[:6] == [(0, 0), (3, 3), (0, 3), (3, 0), (1, 3), (2, 0)]
    assert res.best == (0, 3)


def test_corners_without_a_feasible_corner_halve_the_longest_side():
    """T = 10x + y, L = x + y < 2 on 4 x 6: corners (0,5) (L 5), (3,0) (L 3) both miss ->
    longest side y (5 > 3) halved at 2; the upper child's lower corner (0,3) (L 3) is dropped."""
    ev = recording(surface(lambda x, y: 10 * x + y, lambda x, y: x + y))
    res = branch_and_bound(ev, (4, 6), 2.0, eps_throughput_rel=0.0, **PAPER_RULES)
    assert ev.calls[:6] == [(0, 0), (3, 5), (0, 5), (3, 0), (3, 2), (0, 3)]
    assert res.best_throughput_seq_s == 10.0             # (1,0): L 1


def test_bisect_halves_the_longest_side_without_corner_evaluations():
    """Same 4 x 4 surface: equal sides -> the first axis, at 1: children [(0,0),(1,3)], [(2,0),(3,3)]."""
    ev = recording(surface(lambda x, y: 10 * x + y, lambda x, y: x + y))
    branch_and_bound(ev, (4, 4), 4.0, eps_throughput_rel=0.0, **OURS_RULES)
    assert ev.calls[:4] == [(0, 0), (3, 3), (1, 3), (2, 0)]


def test_slack_and_gap_at_a_hand_computed_margin():
    gap, slack = Rules(prune="gap", eps_throughput_rel=0.01), Rules(prune="slack", eps_throughput_rel=0.01)
    assert gap.drops(100.9, 100.0) and not slack.drops(100.9, 100.0)     # 100.9 <= 101; 101.909 >= 100
    assert gap.drops(99.5, 100.0) and not slack.drops(99.5, 100.0)       # 100.495 >= 100: kept
    assert gap.drops(98.0, 100.0) and slack.drops(98.0, 100.0)           # 98.98 < 100: dropped
    assert not gap.drops(101.5, 100.0) and not slack.drops(101.5, 100.0)


def test_gap_stops_within_eps_where_slack_searches_on():
    """1-D: T = 10, 20, 30, 40, 100, 100.3, 100.6, 100.9; L = index < 6.5. Root -> halves [0,3]
    (solved at 3, T* 40) and [4,7] (lower corner 4 gives T* 100; bound 100.9). gap: 100.9 <=
    101 -> dropped, result 100. slack: kept -> [4,5] solved at 100.3, [6,7]'s lower corner 100.6."""
    thr = (10, 20, 30, 40, 100, 100.3, 100.6, 100.9)
    f = lambda idx: Point(thr[idx[0]], float(idx[0]), True)      # noqa: E731
    assert branch_and_bound(f, (8,), 6.5, 0.01, prune="gap").best_throughput_seq_s == 100.0
    assert branch_and_bound(f, (8,), 6.5, 0.01, prune="slack").best_throughput_seq_s == 100.6
    assert exhaustive(f, (8,), 6.5).best_throughput_seq_s == 100.6


@pytest.mark.parametrize("rules", [PAPER_RULES, OURS_RULES])
@pytest.mark.parametrize("bound", [7.0, 13.5, 30.0, math.inf])
def test_bnb_matches_the_oracle_on_a_strictly_monotone_surface(rules, bound):
    """T = x + 2y + 3z + xyz/100, L = x*y + z on 7 x 6 x 5: strictly rising in every axis."""
    f = surface(lambda x, y, z: x + 2 * y + 3 * z + x * y * z / 100, lambda x, y, z: x * y + z)
    bb = branch_and_bound(f, (7, 6, 5), bound, eps_throughput_rel=0.0, **rules)
    ex = exhaustive(f, (7, 6, 5), bound)
    assert bb.best_throughput_seq_s == ex.best_throughput_seq_s
    assert bb.evaluations < ex.evaluations


def test_probe_finds_the_peak_a_falling_upper_corner_hides():
    """T = (x+1) * g(y), g = 1, 2, 5, 3, 1 (peak at y 2), L = x + y, no bound. Without a probe
    the feasible upper corner (4,4) (T 5) is taken as solved; the probe sees T(4,3) = 15 >= 5,
    so the box is split along y and the peak (4,2), T 25, is found."""
    g = (1, 2, 5, 3, 1)
    f = surface(lambda x, y: (x + 1) * g[y], lambda x, y: x + y)
    assert branch_and_bound(f, (5, 5), math.inf).best_throughput_seq_s == 5.0
    res = branch_and_bound(f, (5, 5), math.inf, probe_axes=(1,))
    assert res.best == (4, 2) and res.best_throughput_seq_s == 25.0


def test_forest_shares_the_incumbent_across_roots():
    """Two 1-D roots: key 0 solved at its upper corner (T 50); key 1's upper corner is
    infeasible with bound 40 <= 50: dropped after that one evaluation (lazy: no lower corner)."""
    def f(key, idx):
        i = idx[0]
        return Point(50.0, 1.0, True) if key == 0 else Point(0.0, math.inf, False, 40.0 + i)
    roots = [Root(0, (0,), (0,)), Root(1, (0,), (0,))]
    res = search_forest(f, roots, 10.0, Rules(), lazy=True)
    assert res.best == (0, (0,)) and res.evaluations == 2
    roots = [Root(0, (0,), (0,)), Root(1, (0,), (9,))]
    assert search_forest(f, roots, 10.0, Rules(), lazy=True).evaluations == 2
    assert search_forest(f, roots, 10.0, Rules(), lazy=False).evaluations == 3


def test_guillotine_cuts_a_regime_map_into_constant_boxes():
    codes = np.array([[0, 0, 1], [0, 0, 1], [2, 2, 2]])
    boxes = _guillotine(codes, (0, 0), (2, 2), 0)
    assert boxes == [((0, 0), (1, 1)), ((0, 2), (1, 2)), ((2, 0), (2, 2))]
    assert _guillotine(np.array([5, 5, 7, 7, 5]), (0,), (4,), 0) == [((0,), (1,)), ((2,), (3,)), ((4,), (4,))]


def _ctx(mode):
    c = get_cluster("a40x16")
    return Context(get_model("gpt3-39b"), c, get_task("S"), get_cost_model("analytic", c), mode=mode)


def _points(space):
    return {tuple(sorted(g.knobs(idx).items())) for g in space.groups for idx in np.ndindex(*g.shape)}


def test_paper_mode_makes_tp_gpus_and_micro_batches_axes():
    paper, ours = _ctx(make_mode("paper")), _ctx(make_mode("ours"))
    waa = build_space(get_policy("waa-c"), paper, "coarse")
    assert [a.name for a in waa.axes] == ["encode_batch_size", "micro_batches", "tp_gpus"]
    assert all(dict(f).keys() <= {"tp_degree", "tp_side"} for f in waa.fixed)
    by_degree = {dict(g.fixed)["tp_degree"]: g.axes[2].values for g in waa.groups}
    assert by_degree[1] == (0,) and by_degree[4] == (8, 4)          # 16 GPUs: 4, 8 (< 15), reversed
    assert waa.axes[1].values == (16, 8, 4, 2, 1)                    # §4: more B_m lowers both
    rra = build_space(get_policy("rra"), paper, "coarse")
    assert [a.name for a in rra.axes] == ["encode_batch_size", "decode_iters", "tp_gpus"]
    assert not any(a.quasi_concave for a in rra.axes)
    measured = build_space(get_policy("rra"), ours, "coarse")
    assert [a.name for a in measured.axes] == ["encode_batch_size", "decode_iters"]
    assert [a.quasi_concave for a in measured.axes] == [False, True]
    assert {k for f in measured.fixed for k, _ in f} == {"tp_degree", "tp_gpus"}


@pytest.mark.parametrize("policy", ["rra", "waa-m"])
def test_both_readings_search_the_same_grid_points(policy):
    ours = _ctx(make_mode("ours"))
    axes = _ctx(make_mode("ours", monotone_axes="paper"))
    a, b = build_space(get_policy(policy), ours, "coarse"), build_space(get_policy(policy), axes, "coarse")
    assert a.size() == b.size() and _points(a) == _points(b)


def test_mode_picks_the_search_options():
    assert SearchOptions.for_mode(make_mode("ours")) == SearchOptions(True, True, True)
    assert SearchOptions.for_mode(make_mode("paper")) == SearchOptions(False, False, False)


def test_oracle_reads_the_best_point_under_each_bound():
    o = Oracle(5, np.array([3.0, 7.0, 5.0]), np.array([1.0, 9.0, 4.0]), ("rra", "waa-c", "waa-m"), 0.0)
    assert o.best(math.inf) == (7.0, "waa-c") and o.best(5.0) == (5.0, "waa-m")
    assert o.best(4.0) == (3.0, "rra") and o.best(0.5) == (0.0, "")
