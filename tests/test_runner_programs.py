"""The runner executes policies through the program interface (issue 17): every worker
replays its group's calls of the program the discrete-event simulator traced, and nothing
in the runner branches on the policy. On the 2-worker gloo mini-cluster, float64:
- iteration-level programs (vLLM with data-parallel replicas and with TP 2, preemption by
  recompute; ORCA's whole-prompt chunks; Sarathi-Serve; prompts prefilled in several chunks
  by a small test program, as Sarathi-Serve splits a prompt longer than its budget) and
  DeepSpeed-Inference's static batches generate exactly the single-process reference's
  tokens and play the simulator's iterations (the phase programs FT, RRA, WAA-C, WAA-M:
  tests/test_runner_dist.py);
- a plan the runner cannot execute says why before any worker starts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import CLUSTER, WORKLOAD, UnitCosts, tiny

from harness.engine.pool import MiniCluster, WorkerPool
from harness.engine.stage import generate
from harness.engine.weights import load_weights
from harness.errors import UserError
from harness.policies import Context, get_policy
from harness.policies.pipeline import PipelineCosts
from harness.policies.vllm import VLLM
from harness.runner.run import execute, plan_job, prompts_for
from harness.simulator.discrete_event import trace_ops
from harness.specs.hardware import make_cluster
from harness.workload.streams import offline


class Chunked(VLLM):
    """A test program: Sarathi-Serve's chunked prefill in its simplest form. Every step the
    live batch decodes while the two oldest waiting prompts prefill up to CHUNK more tokens
    each; a prompt completes over several steps."""

    CHUNK = 4

    def run(self, plan, x) -> None:
        inp, n, t = x.reqs.input_len.tolist(), len(x.reqs), 0.0
        waiting, done_tokens, finished = deque(range(n)), [0] * n, 0
        while finished < n:
            ids = list(waiting)[:2]
            toks = [min(self.CHUNK, inp[i] - done_tokens[i]) for i in ids]
            for i, k in zip(ids, toks, strict=True):
                done_tokens[i] += k
                if done_tokens[i] >= inp[i]:
                    waiting.remove(i)
            chunks = (np.asarray(ids), np.asarray(toks)) if ids else None
            t, fin = x.step("all", t, chunks)
            finished += len(fin)


def _ctx(spec, cluster=CLUSTER):
    return Context(spec, cluster, WORKLOAD, UnitCosts(cluster))


def _reference(spec, reqs):
    prompts = [list(p) for p in prompts_for(spec, reqs, 0)]
    return generate(load_weights(spec, 0, dtype=torch.float64), prompts, reqs.output_len.tolist(), torch.float64)


def _iteration_plans(spec):
    ctx = _ctx(spec)
    reps = get_policy("vllm").plan(ctx, {"tp_degree": 1, "max_num_seqs": 4})
    d = dict(reps.derived) | {"num_blocks": 3}          # 3 blocks of 16 tokens: preemptions
    out = [("vllm, 2 replicas, preempting", replace(reps, derived=tuple(d.items()))),
           ("vllm, TP 2", get_policy("vllm").plan(ctx, {"tp_degree": 2, "max_num_seqs": 3})),
           ("orca, 2 replicas", get_policy("orca").plan(ctx, {"tp_degree": 1, "max_num_seqs": 3})),
           ("sarathi, 2 replicas", get_policy("sarathi").plan(ctx, {"tp_degree": 1, "max_num_seqs": 3,
                                                                     "token_budget": 256})),
           ("dsi, TP 2", get_policy("dsi").plan(ctx, {"batch_size": 4, "prefill_micro_batches": 2}))]
    tp2 = get_policy("vllm").plan(ctx, {"tp_degree": 2})
    out.append(("chunked prefill, TP 2", replace(tp2, program=Chunked())))
    return out


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(MiniCluster(2, 1, "gloo", "cpu", timeout_s=60)) as p:
        yield p


def test_iteration_programs_generate_the_reference_tokens(pool) -> None:
    spec = tiny("opt")
    reqs = offline(WORKLOAD, 9, seed=5)
    ref = _reference(spec, reqs)
    for label, plan in _iteration_plans(spec):
        ops, sim = trace_ops(plan, reqs)
        if label.endswith("preempting"):
            assert any(o.op == "preempt" for o in ops)         # the path is exercised
        if label.startswith("chunked"):
            assert any(o.op == "step" and o.tokens is not None and len(o.tokens) and
                       (o.tokens < reqs.input_len[o.ids]).any() for o in ops)
        res = execute(pool, plan, spec, reqs, dtype="float64", record_tokens=True, progress=False)
        assert not res.error, (label, res.error)
        assert [res.tokens[i] for i in range(len(reqs))] == ref, label
        rec, s = res.records, sim.records                    # deterministic: the same iterations
        assert rec.iter_batch.tolist() == s.iter_batch.tolist(), label
        assert rec.iter_tokens.tolist() == s.iter_tokens.tolist(), label
        assert rec.first_iter.tolist() == s.first_iter.tolist(), label
        # (a preempted request's encode_end is its recompute's, after its first token; as simulated)
        assert np.all(rec.finish_s >= rec.first_token_s) and np.all(rec.first_token_s > rec.encode_start_s)


def test_a_plan_the_runner_cannot_execute_says_why() -> None:
    spec = tiny("opt")
    reqs = offline(WORKLOAD, 6, seed=1)
    # WAA with two encode GPUs: the runner's encode pipeline is one worker
    four = make_cluster("cpu", 4, 4, name="cpu-4w")
    waa = get_policy("waa-c").plan(_ctx(spec, four), {"encode_batch_size": 2, "micro_batches": 1})
    c = waa.costs
    two = replace(waa, costs=PipelineCosts(c.cm, c.model, c.encode_stages * 2, c.decode_stages[:1],
                                            decode_micro_batches=1))
    why = get_policy("waa-c").runner_support(two)
    assert "one worker" in why
    with pytest.raises(UserError, match="cannot run on the real runner: .*one worker"):
        plan_job(two, spec, reqs)
    # preemption by recompute on an encoder-decoder model
    t5 = tiny("t5")
    plan = dict(_iteration_plans(t5))["vllm, 2 replicas, preempting"]
    with pytest.raises(UserError, match="decoder-only"):
        plan_job(plan, t5, offline(WORKLOAD, 9, seed=5))
