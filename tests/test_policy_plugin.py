"""A policy with a new timeline, installed from a package outside `harness/` (issue 17): its
one file (tests/fixtures/plugin/harness_fixture_policy/drain.py) and its one YAML
(conf/policy/drain-batch.yaml beside it) reach estimate, search, sweep and figures through
the entry-point groups `harness.policies` and `harness.conf`, with no other file edited.

The package is installed the way pip installs one: a `.dist-info` folder with
`entry_points.txt` on the path (here a temporary folder, on sys.path in this process and on
PYTHONPATH for the CLI's subprocesses)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "plugin"
ENTRY_POINTS = """[harness.policies]
drain-batch = harness_fixture_policy.drain:DrainBatching

[harness.conf]
drain-batch = harness_fixture_policy
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(FIXTURE / "harness_fixture_policy", site / "harness_fixture_policy")
    info = site / "harness_fixture_policy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-fixture-policy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path.insert(0, str(site))
    from harness.policies import POLICIES
    POLICIES.reload_entry_points()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    yield site, env
    sys.path.remove(str(site))
    POLICIES.reload_entry_points()


def harness(env, cwd, *args, timeout=300):
    r = subprocess.run([sys.executable, "-m", "harness.cli.main", *args], capture_output=True, text=True,
                       env=env, cwd=cwd, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_the_policy_is_registered_and_estimated_by_the_simulator(installed):
    from harness.policies import get_policy
    from harness.scheduler.oracle_study import scenario_context
    from harness.simulator.expected import evaluate
    from harness.specs.mode import OURS
    ctx = scenario_context("opt-13b", "S", OURS)
    p = get_policy("drain-batch")
    small, large = (evaluate(p.plan(ctx, {"batch_size": b}), ctx.workload) for b in (2, 16))
    assert small.simulator == large.simulator == "discrete-event"
    assert 0 < small.throughput_seq_s < large.throughput_seq_s     # a larger batch amortises weights
    # drain batching keeps no slot for a finished query, unlike FT at the same batch (§1)
    ft = evaluate(get_policy("ft").plan(ctx, {"batch_size": 16}), ctx.workload)
    assert large.throughput_seq_s > ft.throughput_seq_s


def test_estimate_search_sweep_and_figures_from_the_cli(installed, tmp_path):
    _, env = installed
    est = json.loads(harness(env, tmp_path, "estimate", "policy=drain-batch", "policy.batch_size=4"))
    assert est["estimate"]["feasible"] and est["estimate"]["simulator"] == "discrete-event"
    found = json.loads(harness(env, tmp_path, "search", "bound=inf", "search.resolution=coarse",
                               "search.policies=[rra,drain-batch]"))
    assert "drain-batch" in json.dumps(found)
    harness(env, tmp_path, "sweep", "experiment=quick", f"runs_dir={tmp_path / 'runs'}", "model=opt-13b",
            "task=S", "bound=inf", "mode=ours", "search.resolution=coarse", "search.policies=[rra,drain-batch]")
    df = pd.read_parquet(tmp_path / "runs" / "quick" / "results.parquet")
    row = df[df.policy == "drain-batch"]
    assert len(row) == 1 and row.status.iloc[0] == "ok" and row.throughput_seq_s.iloc[0] > 0
    harness(env, tmp_path, "figures")
    assert "drain-batch" in (tmp_path / "runs" / "REPORT.md").read_text()


def test_the_template_policy_of_the_walkthrough_runs():
    """docs/adding-a-policy.md walks through harness/policies/_template.py: it must work."""
    from harness.policies._template import ReservedContinuousBatching
    from harness.scheduler.oracle_study import scenario_context
    from harness.simulator.discrete_event import simulate
    from harness.simulator.expected import evaluate
    from harness.specs.mode import OURS
    from harness.workload import poisson
    ctx = scenario_context("opt-13b", "S", OURS)
    p = ReservedContinuousBatching()
    plan = p.plan(ctx, {"max_batch": 16, "tp_degree": 2})
    assert plan.feasible and dict(plan.derived)["replicas"] == 2      # 4 GPUs / TP 2
    est = evaluate(plan, ctx.workload)
    assert est.simulator == "discrete-event" and est.throughput_seq_s > 0
    res = simulate(plan, poisson(ctx.workload, 400, 0.5 * est.throughput_seq_s, seed=3))
    rec = res.records
    assert (rec.encode_end_s <= rec.first_token_s).all() and (rec.first_token_s <= rec.finish_s).all()
    assert res.metrics.decode_batch_mean <= 16
    assert not p.plan(ctx, {"max_batch": 16, "tp_degree": 3}).feasible
