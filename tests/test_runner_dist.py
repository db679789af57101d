"""The runner on a real 2-worker mini-cluster (gloo): every policy's tokens equal the single-
process reference (itself equal to HF greedy, tests/test_runner_engine.py) in float64, the
runs play exactly the discrete-event simulator's iterations (the runner replays the
program the simulator traced, WAA's merges included),
and a worker that dies or hangs ends the job within the timeout, keeping what arrived.
One pool is shared by the module (starting workers costs seconds).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import CLUSTER, WORKLOAD, UnitCosts, tiny

from harness.engine.pool import MiniCluster, WorkerFailure, WorkerPool, run_job
from harness.engine.stage import generate
from harness.engine.weights import load_weights
from harness.policies import Context, get_policy
from harness.runner.drift import CALL_COLUMNS
from harness.runner.run import execute, prompts_for
from harness.simulator.discrete_event import simulate
from harness.specs.hardware import make_cluster
from harness.workload.streams import offline

PLANS = [("ft", {"batch_size": 3}),
         ("rra", {"encode_batch_size": 3, "decode_iters": 2, "tp_degree": 1}),    # 2-stage pipeline
         ("rra", {"encode_batch_size": 2, "decode_iters": 3, "tp_degree": 2}),    # one TP-2 stage
         ("waa-c", {"encode_batch_size": 2, "micro_batches": 1}),
         ("waa-m", {"encode_batch_size": 3, "micro_batches": 2})]


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(MiniCluster(2, 1, "gloo", "cpu", timeout_s=60)) as p:
        yield p


@pytest.mark.parametrize("family", ["opt", "t5"])
def test_every_policy_generates_the_reference_tokens(pool, family) -> None:
    spec = tiny(family)
    reqs = offline(WORKLOAD, 7, seed=1)
    prompts = [list(p) for p in prompts_for(spec, reqs, 0)]
    ref = generate(load_weights(spec, 0, dtype=torch.float64), prompts, reqs.output_len.tolist(), torch.float64)
    ctx = Context(spec, CLUSTER, WORKLOAD, UnitCosts(CLUSTER))
    for name, knobs in PLANS:
        plan = get_policy(name).plan(ctx, knobs)
        res = execute(pool, plan, spec, reqs, dtype="float64", record_tokens=True, progress=False)
        assert not res.error, (name, knobs, res.error)
        assert [res.tokens[i] for i in range(len(reqs))] == ref, (name, knobs)
        rec = res.records
        assert np.all(np.diff(rec.iter_end_s) >= 0) and np.all(rec.finish_s >= rec.first_token_s)
        # every decoding rank timed one decode-stack call per live sequence and iteration
        calls = pd.DataFrame(res.decode_calls, columns=CALL_COLUMNS)
        assert (calls.groupby("rank").batch.sum() == rec.iter_batch.sum()).all(), (name, knobs)
        # a call's KV cache is never wider than the longest prompt (batches pad to it) plus the
        # longest output; a decoder-only model caches its prompts (>= the shortest prompt - 1)
        assert (calls.seconds > 0).all() and calls.cached_len.max() <= reqs.input_len.max() + reqs.output_len.max()
        if family == "opt":
            assert calls.cached_len.min() >= reqs.input_len.min() - 1, (name, knobs)
        tp = knobs.get("tp_degree", 2 if name == "ft" else 1)
        per_rank = calls.groupby("rank").layers.first()
        one_pipeline = "decode" not in plan.program.worker_groups(plan)
        assert per_rank.sum() == spec.num_decoder_layers * (tp if one_pipeline else 1), (name, knobs)
        assert np.all(rec.first_token_s >= rec.encode_end_s - 1e-9)
        # the runner replays the program's calls (WAA: merges at the simulated iterations), so
        # every run plays the simulator's exact iterations
        sim = simulate(plan, reqs).records
        assert rec.iter_batch.tolist() == sim.iter_batch.tolist(), (name, knobs)
        assert rec.iter_tokens.tolist() == sim.iter_tokens.tolist(), (name, knobs)
        assert rec.first_iter.tolist() == sim.first_iter.tolist(), (name, knobs)


def test_a_dying_worker_ends_the_job_and_keeps_messages() -> None:
    with WorkerPool(MiniCluster(2, 1, "gloo", "cpu", timeout_s=20)) as p:
        t = time.monotonic()
        with pytest.raises(WorkerFailure) as e:
            run_job(p, "harness.engine.faults:die", {"rank": 1, "messages": 3})
        assert time.monotonic() - t < 15
    assert "worker 1 died" in str(e.value) and len(e.value.messages) >= 3


def test_a_hanging_worker_ends_the_job_after_the_timeout() -> None:
    with WorkerPool(MiniCluster(2, 1, "gloo", "cpu", timeout_s=3)) as p:
        t = time.monotonic()
        with pytest.raises(WorkerFailure) as e:
            run_job(p, "harness.engine.faults:hang", {"sleep_s": 60})
        assert 2.5 < time.monotonic() - t < 15
    assert "runner.timeout_s" in str(e.value) and len(e.value.messages) == 2


@pytest.mark.gpu
def test_cuda_single_worker_runs_rra() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    spec = tiny("gpt")
    cluster = make_cluster("cpu", 1, 1, name="gpu-1w")
    reqs = offline(WORKLOAD, 6, seed=2)
    prompts = [list(p) for p in prompts_for(spec, reqs, 0)]
    ref = generate(load_weights(spec, 0, dtype=torch.float64), prompts, reqs.output_len.tolist(), torch.float64)
    plan = get_policy("rra").plan(Context(spec, cluster, WORKLOAD, UnitCosts(cluster)),
                                  {"encode_batch_size": 2, "decode_iters": 2, "tp_degree": 1})
    with WorkerPool(MiniCluster(1, 1, "nccl", "cuda", timeout_s=60)) as p:
        res = execute(p, plan, spec, reqs, dtype="float64", record_tokens=True, progress=False)
    assert not res.error and [res.tokens[i] for i in range(len(reqs))] == ref
