"""Monotonicity study (ExeGPT §5, Table 5): pair classification by hand, table shape, CLI."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest

from harness.cost_model import get_cost_model
from harness.policies import Context, get_policy
from harness.scheduler.bounds import derive_bounds
from harness.scheduler.monotonicity import (
    COLUMNS,
    is_monotone,
    layouts,
    monotone_shares,
    monotonicity_table,
    overall_shares,
    paper_models_table,
    shares_by_model,
)
from harness.simulator.expected import evaluate
from harness.specs import get_cluster, get_model
from harness.specs.paper import PAPER_DIRECTIONS
from harness.workload import get_task


def test_pair_classification_with_5_percent_tolerance():
    assert is_monotone(10, 9.6, +1) and not is_monotone(10, 9.4, +1)     # up: after >= 9.5
    assert is_monotone(10, 10.4, -1) and not is_monotone(10, 10.6, -1)   # down: after <= 10.5
    assert is_monotone(10, 10, +1) and is_monotone(10, 10, -1)


def test_shares_match_a_hand_count():
    """up-monotone: 12 y, 9.6 y, 9 n, 11 y, 10.6 y -> 4/5; down: n y y n n -> 2/5."""
    pairs = [(10, 12), (10, 9.6), (10, 9), (10, 11), (10, 10.6)]
    up = monotone_shares(pairs, +1)
    assert (up.paper, up.any_direction, up.data_dir) == (0.8, 0.8, +1)
    down = monotone_shares(pairs, -1)
    assert (down.paper, down.any_direction, down.data_dir) == (0.4, 0.8, +1)
    none = monotone_shares([], +1)
    assert math.isnan(none.paper) and none.data_dir == 0


def test_overall_shares_are_pair_weighted():
    nan = float("nan")
    sys_ = ["gpt3-39b", "a40x16", 10.0]
    t = pd.DataFrame([["rra", "S", "decode_iters", 3, 1.0, 2 / 3, 1.0, 2 / 3, -1, -1, *sys_, 1.0, 1.0],
                      ["rra", "S", "tp_gpus", 1, 0.0, 1.0, 1.0, 1.0, 1, -1, *sys_, 0.0, 0.0],
                      ["waa-c", "C2", "encode_batch_size", 0, *[nan] * 4, 0, 0, *sys_, nan, nan]], columns=COLUMNS)
    o = overall_shares(t)
    assert o["pairs"] == 4
    assert o["thr_monotone_share"] == pytest.approx(0.75) and o["lat_monotone_share"] == pytest.approx(0.75)
    assert o["lat_monotone_share_lb"] == pytest.approx(0.75)
    t.loc[1, "lat_monotone_share_lb"] = nan             # no L_B for that row: left out of the pool
    assert overall_shares(t)["lat_monotone_share_lb"] == pytest.approx(1.0)


def test_bound_tolerance_is_absolute_in_l_b():
    """Latency 10 s -> 10.4 s is within 5% of itself; with L_B = 4 s the slack is 0.2 s."""
    assert is_monotone(10, 10.4, -1) and not is_monotone(10, 10.4, -1, scale=4.0)
    assert is_monotone(10, 10.2, -1, scale=4.0) and is_monotone(1, 0.81, +1, scale=4.0)
    assert not is_monotone(1, 0.79, +1, scale=4.0)
    assert math.isnan(monotone_shares([(1, 2)], +1, scale=float("nan")).paper)


@pytest.fixture(scope="module")
def gpt3_s() -> Context:
    c = get_cluster("a40x16")
    return Context(get_model("gpt3-39b"), c, get_task("S"), get_cost_model("analytic", c))


def test_layouts_hold_each_tp_degree_on_its_multiples(gpt3_s):
    assert layouts(gpt3_s, 16) == [(1, 0), *[(2, g) for g in range(2, 17, 2)], (4, 4), (4, 8), (4, 12),
                                   (4, 16), (8, 8), (8, 16)]


def test_table_has_one_row_per_policy_task_knob(gpt3_s):
    t = monotonicity_table([("S", gpt3_s)])
    assert list(t.columns) == COLUMNS
    keys = set(zip(t.policy, t.task, t.knob, strict=True))
    assert len(keys) == len(t) == 9
    assert {k for p, _, k in keys if p == "rra"} == {"encode_batch_size", "decode_iters", "tp_gpus"}
    assert {k for p, _, k in keys if p == "waa-m"} == {"encode_batch_size", "micro_batches", "tp_gpus"}
    assert set(t.knob) <= set(PAPER_DIRECTIONS) and (t.pairs > 0).all()
    assert (t.latency_bound_s == derive_bounds(gpt3_s).p70_s).all() and set(t.model) == {"gpt3-39b"}
    # oracle for one row, counted by hand: RRA's N_D walked over 1, 2, 4, ..., 64 at every B_E
    # of 1, 2, 4, ..., 128 and every TP layout, each feasible neighbouring pair classified in
    # the paper's direction (§4: a larger N_D lowers throughput and latency) within 5%
    p, lb = get_policy("rra"), derive_bounds(gpt3_s).p70_s
    space = {k.name: k for k in p.knob_space(gpt3_s)}

    def point(**knobs):
        e = evaluate(p.plan(gpt3_s, knobs), gpt3_s.workload)
        return (e.throughput_seq_s, e.latency_s) if e.feasible else None
    n_ds = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= space["decode_iters"].high]
    pairs = []
    for b_e in (b for b in (1, 2, 4, 8, 16, 32, 64, 128) if b <= space["encode_batch_size"].high):
        for d, g in layouts(gpt3_s, space["tp_gpus"].high):
            pts = [point(encode_batch_size=b_e, decode_iters=n, tp_degree=d, tp_gpus=g) for n in n_ds]
            pairs += [(a, b) for a, b in zip(pts, pts[1:], strict=False) if a and b]
    row = t[(t.policy == "rra") & (t.knob == "decode_iters")].iloc[0]
    assert row.pairs == len(pairs) > 100
    share = lambda ok: sum(ok) / len(pairs)         # noqa: E731
    assert row.thr_monotone_share == share(b[0] <= a[0] + 0.05 * a[0] for a, b in pairs)
    assert row.lat_monotone_share == share(b[1] <= a[1] + 0.05 * a[1] for a, b in pairs)
    assert row.lat_monotone_share_lb == share(b[1] <= a[1] + 0.05 * lb for a, b in pairs)
    up = share(b[0] >= a[0] - 0.05 * a[0] for a, b in pairs)                # the other direction
    assert row.thr_any_direction_share == max(row.thr_monotone_share, up)
    assert (t.thr_monotone_share_lb == t.thr_monotone_share).all()       # throughput: relative either way


def test_paper_models_table_runs_each_model_on_its_paper_cluster():
    def context_for(model, cluster, task):
        c = get_cluster(cluster)
        return Context(get_model(model), c, get_task(task), get_cost_model("analytic", c))
    t = paper_models_table(context_for, models=("t5-11b", "gpt3-101b"), tasks=("S",), policies=("rra",))
    assert set(zip(t.model, t.cluster, strict=True)) == {("t5-11b", "a40x8"), ("gpt3-101b", "a100x16")}
    by = shares_by_model(t)
    assert list(by.model) == ["t5-11b", "gpt3-101b"] and (by.pairs > 0).all()
    for model, cluster in (("t5-11b", "a40x8"), ("gpt3-101b", "a100x16")):
        rows = t[t.model == model]
        # each model's latency slack is its own scenario's p70 FT bound (§7), not another's
        assert (rows.latency_bound_s == derive_bounds(context_for(model, cluster, "S")).p70_s).all()
        # pooled by hand: pair-weighted mean of the rows (the paper pools all points, §5)
        m = by.set_index("model").loc[model]
        assert m.pairs == rows.pairs.sum()
        assert m.lat_monotone_share_lb == pytest.approx((rows.lat_monotone_share_lb * rows.pairs).sum() / rows.pairs.sum())


def test_cli_prints_markdown_and_writes_the_csv(tmp_path):
    r = subprocess.run([sys.executable, "-m", "harness.cli.main", "monotonicity", "model=gpt3-39b", "task=S",
                        "policy=waa-c", "mode=ours"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("| policy | task | knob | pairs |") and len(lines) == 2 + 3 + 1
    assert lines[-1].startswith("overall (") and "paper 97%" in lines[-1] and "paper 96%" in lines[-1]
    csv = pd.read_csv(tmp_path / "runs" / "table5" / "monotonicity.csv")
    assert list(csv.columns) == [*COLUMNS, "mode"] and set(csv.policy) == {"waa-c"} and len(csv) == 3
    assert set(csv["mode"]) == {"ours"}
    assert not list((tmp_path / "runs" / "table5").glob("*.tmp"))
