"""Runtime adjustment (ExeGPT §3) in the real runner, on the 2-worker gloo mini-cluster: the
runner takes the discrete-event simulator's decisions (`harness.simulator.adjust.Adjuster`).

A shifted request stream (inputs and outputs longer than the schedule was tuned for) is
played with adjustment on:
(a) each encoder batch's total input lies in the band +-tol around target x E[input]
    whenever some count the queue and the step limits allow lands in it;
(b) the counts equal what the simulator's adjuster chooses from the same observed decoding
    batches (replayed decision by decision); the runner replays the program the simulator
    traced with adjustment on, so RRA and WAA play the simulator's exact encoder batches (and
    RRA its iterations); WAA's decode rule moves B_E the way the drift asks;
(c) off, the job and the records are the previous runner's (golden iterations taken from the
    runner before adjustment existed, equal to the simulator's off timeline).
Tokens stay the single-process reference's (float64) with adjusted batch boundaries.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import CLUSTER, WORKLOAD, UnitCosts, tiny

from harness.engine.pool import MiniCluster, WorkerPool
from harness.engine.stage import generate
from harness.engine.weights import load_weights
from harness.errors import UserError
from harness.policies import Context, get_policy
from harness.runner.run import execute, plan_job, prompts_for
from harness.simulator.discrete_event import OFF, RuntimeAdjustment, _Adjuster, simulate
from harness.workload.distributions import truncated_normal
from harness.workload.streams import offline
from harness.workload.tasks import Workload

SHIFTED = Workload("tiny-shifted", truncated_normal(13, 6, 20), truncated_normal(8, 3, 15))
ON = RuntimeAdjustment(True, input_tolerance_rel=0.25, decode_tolerance_rel=0.1, max_step_rel=0.5)
RRA = ("rra", {"encode_batch_size": 4, "decode_iters": 3, "tp_degree": 1})   # 2-stage pipeline
WAA = ("waa-c", {"encode_batch_size": 3, "micro_batches": 1})


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(MiniCluster(2, 1, "gloo", "cpu", timeout_s=60)) as p:
        yield p


def _plan(spec, policy):
    name, knobs = policy
    return get_policy(name).plan(Context(spec, CLUSTER, WORKLOAD, UnitCosts(CLUSTER)), knobs)


def _reference(spec, reqs):
    prompts = [list(p) for p in prompts_for(spec, reqs, 0)]
    return generate(load_weights(spec, 0, dtype=torch.float64), prompts, reqs.output_len.tolist(), torch.float64)


def _encoder_batches(rec) -> list[int]:
    """Sizes of the encoder batches (requests in order; a batch shares one encode start)."""
    cut = np.flatnonzero(np.diff(rec.encode_start_s) != 0) + 1
    return np.diff([0, *cut.tolist(), len(rec)]).tolist()


def _run_adjusted(pool, family, policy, seed):
    """A float64 run with adjustment on over the shifted stream; its tokens are the reference's."""
    spec = tiny(family)
    plan = _plan(spec, policy)
    reqs = offline(SHIFTED, 16, seed=seed)
    res = execute(pool, plan, spec, reqs, dtype="float64", record_tokens=True, progress=False,
                  adjust=ON, workload=WORKLOAD)
    assert not res.error, res.error
    assert [res.tokens[i] for i in range(len(reqs))] == _reference(spec, reqs)
    return plan, reqs, res


def _check_decisions(res, plan, reqs) -> _Adjuster:
    """(a) and (b)-replay over every logged decision; the replaying adjuster."""
    ad = _Adjuster(ON, plan, WORKLOAD)
    inputs, tol = reqs.input_len, ON.input_tolerance_rel
    assert [a.count for a in res.adjustments] == _encoder_batches(res.records)
    assert sum(a.count for a in res.adjustments) == len(reqs)
    first = banded = 0
    for a in res.adjustments:
        assert a.first == first
        first += a.count
        ad.observe(a.observed)
        assert ad.target == a.target
        assert ad.size(inputs[a.first:a.first + a.room], a.room) == a.count           # (b)
        # (a): in the band whenever a count in [lo, hi] lands there
        hi = min(ad.n_max, a.room)
        lo = min(ad.n_min, hi)
        goal = a.target * ad.mean_in
        band = (goal * (1 - tol) - 1e-9, goal * (1 + tol) + 1e-9)
        totals = np.cumsum(inputs[a.first:a.first + hi])
        if any(band[0] <= totals[m - 1] <= band[1] for m in range(lo, hi + 1)):
            assert band[0] <= totals[a.count - 1] <= band[1], (a, band)
            banded += 1
        assert lo <= a.count <= hi
    assert banded, "no decision had a count in the band: (a) checked nothing"
    return ad


@pytest.mark.parametrize("family", ["opt", "t5"])
def test_rra_takes_the_simulators_decisions(pool, family):
    plan, reqs, res = _run_adjusted(pool, family, RRA, seed=3)
    _check_decisions(res, plan, reqs)
    sim = simulate(plan, reqs, ON, WORKLOAD).records                                # (b) exact
    assert _encoder_batches(res.records) == _encoder_batches(sim)
    assert res.records.iter_batch.tolist() == sim.iter_batch.tolist()
    assert res.records.first_iter.tolist() == sim.first_iter.tolist()
    sizes = _encoder_batches(res.records)
    assert set(sizes) != {plan.encode_batch_size}                                   # it did move
    assert any(a.target != plan.encode_batch_size for a in res.adjustments[1:])


@pytest.mark.parametrize("family", ["opt", "t5"])
def test_waa_takes_the_simulators_decisions(pool, family):
    plan, reqs, res = _run_adjusted(pool, family, WAA, seed=4)
    ad = _check_decisions(res, plan, reqs)
    sim = simulate(plan, reqs, ON, WORKLOAD).records       # decisions on the simulated clock
    assert _encoder_batches(res.records) == _encoder_batches(sim)
    adj = res.adjustments
    assert adj[0].observed == 0 and adj[0].target == ad.n_max      # nothing decodes yet
    assert any(a.observed > 0 for a in adj[1:])                   # the decoder publishes B_D
    for a in adj:                                                 # the direction the drift asks
        drift = a.observed / ad.b_d - 1
        if drift > ON.decode_tolerance_rel:
            assert a.target < plan.encode_batch_size or a.target == ad.n_min
        elif drift < -ON.decode_tolerance_rel:
            assert a.target > plan.encode_batch_size or a.target == ad.n_max
        else:
            assert a.target == plan.encode_batch_size


def test_off_is_the_previous_runner(pool):
    """Golden iterations: the runner at commit 208848a (before adjustment) on these requests."""
    spec = tiny("opt")
    reqs = offline(SHIFTED, 16, seed=3)
    for policy in (RRA, ("ft", {"batch_size": 3})):
        plan = _plan(spec, policy)
        off = plan_job(plan, spec, reqs, adjust=OFF, workload=WORKLOAD)
        assert off == plan_job(plan, spec, reqs) and off.calls == plan_job(plan, spec, reqs).calls
        res = execute(pool, plan, spec, reqs, progress=False)
        assert not res.error and res.adjustments == ()
        rec, golden = res.records, GOLDEN[plan.kind]
        assert rec.iter_batch.tolist() == golden["iter_batch"]
        assert rec.iter_tokens.tolist() == golden["iter_tokens"]
        assert rec.first_iter.tolist() == golden["first_iter"]
        assert _encoder_batches(rec) == golden["encoder_batches"]
        sim = simulate(plan, reqs).records
        assert rec.iter_batch.tolist() == sim.iter_batch.tolist()
    # FT has no runtime adjustment: enabling it changes nothing in the job (its program's calls)
    ft = _plan(spec, ("ft", {"batch_size": 3}))
    on = plan_job(ft, spec, reqs, adjust=ON, workload=WORKLOAD)
    assert on.adjustments == () and on.calls == plan_job(ft, spec, reqs).calls
    with pytest.raises(UserError, match="workload"):
        plan_job(_plan(spec, RRA), spec, reqs, adjust=ON)


def test_waa_off_keeps_fixed_batches(pool):
    spec = tiny("opt")
    plan = _plan(spec, WAA)
    reqs = offline(SHIFTED, 10, seed=4)
    res = execute(pool, plan, spec, reqs, dtype="float64", record_tokens=True, progress=False)
    assert not res.error and res.adjustments == ()
    assert _encoder_batches(res.records) == [3, 3, 3, 1]
    assert [res.tokens[i] for i in range(len(reqs))] == _reference(spec, reqs)


@pytest.mark.slow
def test_cli_run_threads_runtime_adjustment(tmp_path, monkeypatch, capsys):
    """`harness run ... runtime_adjustment.enabled=true` (a synthetic profile): the knobs reach
    the runner, the decisions and a separate records file come back."""
    import json

    from helpers import cpu_scenario, synthetic_profile

    from harness.cli.main import main
    s = cpu_scenario("model=opt-20m", "task=T-cpu")
    monkeypatch.setenv("HARNESS_PROFILE_DIR", str(tmp_path / "profiles"))
    synthetic_profile(s.model, s.cluster, tmp_path / "profiles" / f"{s.model.name}-{s.cluster.name}.parquet")
    args = ["run", "model=opt-20m", "cluster=cpu-2w", "task=T-cpu", "cost_model=profiled", "policy=rra",
            "policy.encode_batch_size=4", "policy.decode_iters=4", "runner.num_requests=12",
            "runner.progress=false", f"runner.out_dir={tmp_path / 'real'}"]
    assert main([*args, "runtime_adjustment.enabled=true", "runtime_adjustment.input_tolerance_rel=0.3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["inputs"]["runtime_adjustment"]["input_tolerance_rel"] == 0.3
    sizes = out["runtime_adjustment"]["encoder_batch_sizes"]
    assert sum(sizes) == 12 and out["records"].endswith("-adjust.parquet")
    assert main([*args, "runtime_adjustment.enabled=false"]) == 0
    off = json.loads(capsys.readouterr().out)
    assert "runtime_adjustment" not in off and "runtime_adjustment" not in off["inputs"]
    assert off["speed_drift"] > 0          # the run's decode calls against the (synthetic) profile


GOLDEN: dict = {   # the runner at 208848a (before adjustment), opt-tiny, offline(SHIFTED, 16, seed=3)
    "rra": {
        "iter_batch": [4, 4, 4, 8, 7, 7, 11, 10, 8, 10, 10, 9, 8, 6, 4, 4, 4, 3, 2, 2, 1],
        "iter_tokens": [4, 4, 4, 8, 7, 7, 11, 10, 8, 10, 10, 9, 8, 6, 4, 4, 4, 3, 2, 2, 1],
        "first_iter": [0, 0, 0, 0, 3, 3, 3, 3, 6, 6, 6, 6, 9, 9, 9, 9],
        "encoder_batches": [4, 4, 4, 4],
    },
    "static": {
        "iter_batch": [3] * 55 + [1] * 8,
        "iter_tokens": [3, 3, 3, 3, 2, 2, 2, 2, 1, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 1, 1, 3, 3, 3, 3, 2, 2, 1, 1,
                        3, 3, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1,
                        1, 1, 1, 1, 1],
        "first_iter": [0, 0, 0, 9, 9, 9, 21, 21, 21, 29, 29, 29, 43, 43, 43, 55],
        "encoder_batches": [3, 3, 3, 3, 3, 1],
    },
}
