"""The contract every registered policy passes (knobs in range, deterministic, monotone
within tolerance where declared, infeasible reported not raised), plus paper facts."""

from __future__ import annotations

import math

import pytest

from harness.cost_model import get_cost_model
from harness.errors import UserError
from harness.policies import POLICIES, Context, get_policy
from harness.policies.closed_form import expected_max, finish_fraction
from harness.policies.ft import FasterTransformer
from harness.registry import Registry
from harness.simulator.expected import evaluate
from harness.specs import get_cluster, get_model
from harness.workload import fixed, get_task

SCENARIOS = [("opt-13b", "a40x4", "S"), ("gpt3-39b", "a40x16", "T"), ("t5-11b", "a40x8", "C1")]
# (policy, model) pairs where the policy plans nothing at all, with the text its reason must
# hold: there its program and its monotone knobs have nothing to check, and the tests say so
# (skipped with the reason) instead of passing. Every other pair must check something.
NOT_APPLICABLE = {("orca", "t5-11b"): "is encoder-decoder", ("sarathi", "t5-11b"): "is encoder-decoder"}


def skip_if_not_applicable(ctx: Context, name: str, plan) -> None:
    """Skips (with the plan's reason) a pair listed in NOT_APPLICABLE, after checking the
    reason is the listed one; fails for any other infeasible default plan."""
    why = NOT_APPLICABLE.get((name, ctx.model.name))
    if why is None:
        assert plan.feasible, f"{name}: default knobs infeasible on {ctx.model.name} ({plan.reason})"
        return
    assert not plan.feasible and why in plan.reason, (name, ctx.model.name, plan.reason)
    pytest.skip(f"{name} does not apply to {ctx.model.name}: {plan.reason}")


def ctx_of(model: str, cluster: str, task: str) -> Context:
    c = get_cluster(cluster)
    return Context(get_model(model), c, get_task(task), get_cost_model("analytic", c))


@pytest.fixture(scope="module", params=SCENARIOS, ids=["-".join(s) for s in SCENARIOS])
def ctx(request):
    return ctx_of(*request.param)


@pytest.mark.parametrize("name", POLICIES.names())
def test_knob_space_is_well_formed_and_defaults_in_range(ctx, name):
    p = get_policy(name)
    space = p.knob_space(ctx)
    assert space and len({k.name for k in space}) == len(space)
    for k in space:
        assert k.low <= k.high and k.step >= 1 and k.throughput_dir in (-1, 0, 1)
    p.validate(ctx, p.default_knobs(ctx))          # raises if a default is out of range


@pytest.mark.parametrize("name", POLICIES.names())
def test_deterministic_and_infeasible_is_reported_not_raised(ctx, name):
    p = get_policy(name)
    knobs = p.default_knobs(ctx)
    assert evaluate(p.plan(ctx, knobs), ctx.workload) == evaluate(p.plan(ctx, knobs), ctx.workload)
    highs = {k.name: k.high for k in p.knob_space(ctx)}
    est = evaluate(p.plan(ctx, highs), ctx.workload)   # extreme corner: must not raise
    if not est.feasible:
        assert est.reason and est.throughput_seq_s == 0 and math.isinf(est.latency_s)


@pytest.mark.parametrize("name", POLICIES.names())
def test_the_program_serves_every_request_once(ctx, name):
    """The batching program (`Policy.run`) finishes every request of an online stream, each
    generated token is counted once (sum of tokens made per iteration = sum of outputs), and
    every request's stamps are ordered: encode start <= encode end <= first token <= finish."""
    from harness.simulator.discrete_event import simulate
    from harness.workload import poisson
    p = get_policy(name)
    plan = p.plan(ctx, p.default_knobs(ctx))
    skip_if_not_applicable(ctx, name, plan)
    rate = 0.5 * evaluate(plan, ctx.workload).throughput_seq_s
    rec = simulate(plan, poisson(ctx.workload, 300, rate, seed=1)).records
    assert int(rec.iter_tokens.sum()) == int(rec.output_len.sum())
    assert (rec.encode_start_s <= rec.encode_end_s).all() and (rec.encode_end_s <= rec.first_token_s).all()
    assert (rec.first_token_s <= rec.finish_s).all() and (rec.arrival_s <= rec.encode_start_s).all()


@pytest.mark.parametrize("name", POLICIES.names())
def test_declared_monotone_knobs_are_monotone_within_5_percent(ctx, name):
    """Along each declared-monotone knob (others at defaults), >= 90% of feasible neighbouring
    steps move throughput and latency in the declared direction within 5% (paper §5: 97%/96%).
    Every declared-monotone knob must give at least one feasible step: about 17 values across
    its range, or, where fewer than two of those are feasible (WAA's B_E runs out of memory
    near 8-13 of 1-256), its 17 lowest values one by one."""
    p = get_policy(name)
    base = p.default_knobs(ctx)

    def feasible(values):
        ests = [evaluate(p.plan(ctx, {**base, k.name: v}), ctx.workload) for v in values]
        return [e for e in ests if e.feasible]

    steps = ok = 0
    pairs: dict[str, int] = {}
    for k in p.knob_space(ctx):
        if k.throughput_dir == 0:
            continue
        values = list(k.values())
        ests = feasible(values[:: max(1, (k.high - k.low) // 16)])
        if len(ests) < 2:
            ests = feasible(values[:17])
        pairs[k.name] = max(0, len(ests) - 1)
        for a, b in zip(ests, ests[1:], strict=False):
            steps += 2
            ok += k.throughput_dir * (b.throughput_seq_s - a.throughput_seq_s) >= -0.05 * a.throughput_seq_s
            ok += k.latency_dir * (b.latency_s - a.latency_s) >= -0.05 * a.latency_s
    assert pairs, f"{name} declares no monotone knob: nothing to check"
    if not steps:
        skip_if_not_applicable(ctx, name, p.plan(ctx, base))
    assert all(pairs.values()), f"{name}: knobs with no feasible step to check: {pairs}"
    assert ok / steps >= 0.9


def test_unknown_knob_and_out_of_range_are_one_line_errors():
    c = ctx_of("opt-13b", "a40x4", "S")
    with pytest.raises(UserError, match="policy.batch_size: not a knob of 'rra'"):
        get_policy("rra").validate(c, {"batch_size": 3})
    with pytest.raises(UserError, match=r"policy.decode_iters: 0 not in \[1, 80\]"):
        get_policy("rra").validate(c, {"decode_iters": 0})
    with pytest.raises(UserError, match="did you mean 'waa-c'"):
        get_policy("waa_c")


def test_registry_rejects_duplicates():
    r = Registry("thing")
    r.register("a", object())
    with pytest.raises(ValueError, match="already registered"):
        r.register("a", object())


def test_ft_layout_is_max_tp_in_node_and_pp_across_nodes():
    ft = FasterTransformer()
    assert ft.layout(ctx_of("gpt3-175b", "a100x16", "G")) == (8, 2)
    assert ft.layout(ctx_of("opt-13b", "a40x4", "S")) == (4, 1)
    assert ft.layout(ctx_of("gpt3-341b", "a40x48", "G")) == (8, 6)


_DIVERGES = pytest.mark.xfail(strict=True, reason=(
    "known divergence from the paper: with weights + KV + activations at the smallest B_E, "
    "this memory model fits two copies (the paper gives no memory breakdown; see issue notes)"))
WAA_BIG = [("waa-c", "gpt3-175b", "a100x16"), ("waa-c", "gpt3-341b", "a40x48"),
           pytest.param("waa-c", "gpt3-175b", "a40x32", marks=_DIVERGES),
           pytest.param("waa-m", "gpt3-175b", "a100x16", marks=_DIVERGES),
           pytest.param("waa-m", "gpt3-175b", "a40x32", marks=_DIVERGES),
           pytest.param("waa-m", "gpt3-341b", "a40x48", marks=_DIVERGES)]


@pytest.mark.parametrize("name,model,cluster", WAA_BIG)
def test_waa_cannot_fit_the_largest_models_on_their_paper_clusters(name, model, cluster):
    """ExeGPT §3: two weight copies; WAA could not fit GPT-3 175B/341B."""
    c = ctx_of(model, cluster, "G")
    p = get_policy(name)
    for b_e in (1, 4):
        est = evaluate(p.plan(c, {"encode_batch_size": b_e}), c.workload)
        assert not est.feasible and est.reason.startswith("memory")


def test_waa_holds_two_weight_copies_of_a_decoder_only_model():
    from harness.cost_model.memory import weight_bytes
    c = ctx_of("opt-13b", "a40x4", "S")
    p = get_policy("waa-m")
    enc, dec = p._layout(c, 1, 1, 0)
    total = sum(weight_bytes(c.model, st.shard()) for st in (*enc, *dec))
    one_copy = c.model.num_params() * 2
    assert 2 * one_copy <= total <= 2 * one_copy * 1.1   # + embeddings per pipeline end, ceil


def test_rra_finish_fraction_hand_calculation():
    """§6: S <= N_D finishes within the cycle; S > N_D with probability 1/ceil(S/N_D)."""
    assert finish_fraction(fixed(5), 8) == 1.0
    assert finish_fraction(fixed(20), 8) == pytest.approx(1 / 3)
    assert expected_max(fixed(7), 10) == pytest.approx(7)


def test_ft_throughput_hand_calculation_with_fixed_lengths():
    """Fixed lengths: batch time = encode + out * iteration; throughput = B / batch time."""
    c = ctx_of("opt-13b", "a40x4", "S")
    c = Context(c.model, c.cluster, type(c.workload)("fx", fixed(100), fixed(10)), c.cost_model)
    plan = get_policy("ft").plan(c, {"batch_size": 8})
    est = evaluate(plan, c.workload)
    enc = plan.costs.encode_s(8, 100)
    it = plan.costs.decode_iter_s(8, 105, 100)
    assert est.throughput_seq_s == pytest.approx(8 / (enc + 10 * it))
    assert est.latency_s == pytest.approx(enc + 10 * it)


@pytest.mark.parametrize("model, cluster", [("opt-13b", "a40x4"), ("gpt3-175b", "a100x16"), ("gpt3-341b", "a40x48")])
def test_waa_m_split_equals_the_brute_force_memory_balance(model, cluster):
    """Oracle: price every split with the plan's own memory function, take the most equal
    (fewest encode GPUs on ties); the fast line-based choice must agree."""
    from harness.workload import get_task
    p, cl = get_policy("waa-m"), get_cluster(cluster)
    ctx = Context(get_model(model), cl, get_task("C1"), get_cost_model("analytic", cl))
    n = cl.num_gpus
    for b_e in (1, 7, 64):
        for d, g in ((1, 0), (2, 2), (8, 8)):
            if g >= n:
                continue
            b_d = b_e * ctx.workload.output.mean
            gaps = [abs(e - dm) for e, dm in (p._memory(ctx, *p._layout(ctx, k, d, g), b_e, b_d)
                                               for k in range(1, n - max(1, g) + 1))]
            assert p.choose_encode_gpus(ctx, b_e, d, g) == 1 + gaps.index(min(gaps)), (b_e, d, g)


class _Recorder:
    """A cost model that records the self-attention context each decoder call is priced at."""

    def __init__(self, cm):
        self.cm, self.contexts = cm, []

    def __getattr__(self, name):
        return getattr(self.cm, name)

    def decode_layer(self, model, batch, context_len, tp, input_len=0.0):
        self.contexts.append((context_len, input_len))
        return self.cm.decode_layer(model, batch, context_len, tp, input_len)

    def kv_copy_s(self, model, num_seqs, context_len, tp, input_len=0.0, kind="compact"):
        self.contexts.append((context_len, input_len))
        return 0.0


@pytest.mark.parametrize("model, cluster, own", [("t5-11b", "a40x8", 6.0), ("opt-13b", "a40x4", 70.0)])
def test_decoder_self_attention_reads_generated_tokens_only_in_an_encoder_decoder(model, cluster, own):
    """StepCosts count context as input + generated (64 + 6 here). T5's decoder self-attention
    cache holds only the 6 generated tokens (the 64 input tokens sit in the cross-attention
    cache); OPT's holds all 70. Both the decode step and the cache rewrite see that length.
    The input length reaches T5's cross-attention; OPT's decode step is priced without it
    (no cross-attention reads it: one memo entry per batch and context)."""
    c = ctx_of(model, cluster, "S")
    rec = _Recorder(c.cost_model)
    plan = get_policy("ft").plan(Context(c.model, c.cluster, c.workload, rec), {"batch_size": 4})
    rec.contexts.clear()
    plan.costs.decode_iter_s(4, 70, 64)
    plan.costs.kv_copy_s(4, 70, 64)
    assert rec.contexts and {ctx for ctx, _ in rec.contexts} == {own}
    if c.model.is_encoder_decoder:
        assert {inp for _, inp in rec.contexts} == {64}


@pytest.mark.parametrize("name", ["ft", "rra", "waa-c", "waa-m"])
def test_memory_per_gpu_group_adds_up_to_the_plans_memory(ctx, name):
    """`memory_groups` (Fig. 9), rebuilt from the plan's stages and batch sizes, agrees with the
    accounting the plan's feasibility used: its most loaded GPU is `memory_per_gpu_bytes`.
    By hand from the model: every GPU is in one stage, and the stages' weights add up to the
    FP16 parameters once (FT, RRA, and WAA on T5: encoder and decoder layers apart) or twice
    (WAA on a decoder-only model, ExeGPT §3), plus at most one layer (ceil of a fractional
    share) and one embedding table per stage."""
    p = get_policy(name)
    plan = p.plan(ctx, p.default_knobs(ctx))
    assert plan.costs is not None, f"{name}: default knobs not priced here ({plan.reason})"
    groups = p.memory_groups(ctx, plan)
    assert set(groups) == ({"encode", "decode"} if name.startswith("waa") else {"all"})
    stages = [(st, sm) for group in groups.values() for st, sm in group]
    per_gpu = [sm for _, sm in stages]
    assert max(sm.total_bytes for sm in per_gpu) == pytest.approx(plan.memory_per_gpu_bytes, rel=1e-12)
    m = ctx.model
    assert sum(st.tp_degree for st, _ in stages) == ctx.cluster.num_gpus
    copies = 2 if name.startswith("waa") and not m.is_encoder_decoder else 1
    weights = sum(st.tp_degree * sm.weights_bytes for st, sm in stages)       # a stage's TP GPUs split it
    slack = len(stages) * (m.encoder_layer_params() + m.decoder_layer_params() + m.embedding_params())
    # (1 - 1e-5): the stage weights leave out the final norm(s) num_params counts (1e-6 of
    # the model; tests/test_cost_model.py::test_a_whole_model_shard_holds_every_parameter)
    assert copies * m.num_params() * m.dtype_bytes * (1 - 1e-5) <= weights
    assert weights <= (copies * m.num_params() + slack) * m.dtype_bytes
    assert any(sm.kv_cache_bytes > 0 for sm in per_gpu)                       # the decoding batch's cache
