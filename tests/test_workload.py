"""Length distributions, paper tasks, traces and request streams (ExeGPT §5-§7)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harness.errors import UserError
from harness.workload import (
    TASKS,
    LengthDistribution,
    Requests,
    Trace,
    empirical,
    fixed,
    fixed_workload,
    get_task,
    load_trace,
    make_stream,
    offline,
    poisson,
    replay,
)


def shared_dir() -> Path:
    """HARNESS_SHARED_DIR, else `<repo>/../shared` (local helper; no conftest dependency)."""
    env = os.environ.get("HARNESS_SHARED_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def one_line_error(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, f"error is not one line: {msg!r}"
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


# ---- paper tasks (ExeGPT §7 table) ---------------------------------------------------------
@pytest.mark.parametrize("name", list(TASKS))
def test_task_output_p99_matches_paper_column(name):
    # Independent check: the p99 column is not an input of the fit (avg, std, max are).
    spec = TASKS[name]
    assert abs(get_task(name).output.p99 - spec.paper_output_p99) <= 3


@pytest.mark.parametrize("name", list(TASKS))
def test_task_output_moments_and_support(name):
    spec, w = TASKS[name], get_task(name)
    assert w.output.mean == pytest.approx(spec.output_avg, abs=0.5)
    assert w.output.std == pytest.approx(spec.output_std, abs=0.5)
    for dist, hi in ((w.input, spec.input_max), (w.output, spec.output_max)):
        assert dist.values.dtype == np.int64
        assert dist.min >= 1 and dist.max <= hi
        draws = dist.sample(2000, np.random.default_rng(1))
        assert draws.dtype == np.int64 and draws.min() >= 1 and draws.max() <= hi


def test_task_paper_p99_values_are_the_table():
    assert {n: t.paper_output_p99 for n, t in TASKS.items()} == {
        "S": 63, "T": 292, "G": 417, "C1": 137, "C2": 579}


def test_unknown_task_names_field():
    with pytest.raises(UserError) as e:
        get_task("C3")
    one_line_error(e, "task", "C1", "C2")


# ---- sampling ---------------------------------------------------------------------------
def test_sampling_is_seeded():
    d = get_task("T").output
    a = d.sample(1000, np.random.default_rng(7))
    b = d.sample(1000, np.random.default_rng(7))
    c = d.sample(1000, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", ["S", "G", "C2"])
def test_sample_mean_and_p99_follow_the_pmf(name):
    d = get_task(name).output
    x = d.sample(200_000, np.random.default_rng(0))
    assert x.mean() == pytest.approx(d.mean, rel=0.01)
    assert abs(float(np.quantile(x, 0.99)) - d.p99) <= max(2, 0.01 * d.p99)


def test_fixed_draws_are_all_equal():
    d = fixed(17)
    assert np.all(d.sample(100, np.random.default_rng(0)) == 17)
    assert (d.mean, d.std, d.p99, d.max) == (17, 0, 17, 17)
    w = fixed_workload(128, 32)
    assert (w.input.max, w.output_p99, w.output_max) == (128, 32, 32)


def test_empirical_pmf_hand_calculation():
    d = empirical([1, 1, 2])
    assert d.values.tolist() == [1, 2]
    assert d.probs.tolist() == pytest.approx([2 / 3, 1 / 3])
    assert d.mean == pytest.approx(4 / 3)


def test_quantile_semantics_on_tiny_pmf():
    # P(1)=1/4, P(2)=1/2, P(3)=1/4: CDF 0.25, 0.75, 1.0; quantile = smallest L with CDF >= q.
    d = LengthDistribution(np.array([1, 2, 3]), np.array([1.0, 2.0, 1.0]))
    assert [d.quantile(q) for q in (0.0, 0.25, 0.26, 0.75, 0.76, 1.0)] == [1, 1, 2, 2, 3, 3]
    assert d.p99 == 3
    with pytest.raises(UserError):
        d.quantile(1.5)


# ---- traces -----------------------------------------------------------------------------
def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = "arrived_at,num_prefill_tokens,num_decode_tokens,extra\n0.0,10,5,x\n0.5,20,6,y\n0.5,30,7,z\n"


def test_good_trace_loads(tmp_path):
    t = load_trace(write(tmp_path, GOOD, "my_trace.csv"))
    assert t.name == "my_trace" and len(t) == 3
    assert t.input_len.tolist() == [10, 20, 30] and t.input_len.dtype == np.int64
    assert t.output_len.tolist() == [5, 6, 7] and t.output_len.dtype == np.int64
    assert t.arrival_s.tolist() == [0.0, 0.5, 0.5]
    with pytest.raises(ValueError):
        t.input_len[0] = 3          # read-only
    w = t.workload()
    assert w.name == "my_trace" and w.source == t.path
    assert w.input.values.tolist() == [10, 20, 30] and w.output.mean == pytest.approx(6.0)
    assert len(load_trace(t.path, max_rows=2)) == 2 and len(t.head(1)) == 1


def test_trace_without_arrivals(tmp_path):
    t = load_trace(write(tmp_path, "num_prefill_tokens,num_decode_tokens,pd_ratio\n4,2,2.0\n"))
    assert t.arrival_s is None and len(t) == 1


@pytest.mark.parametrize(("text", "needles"), [
    ("num_prefill_tokens,pd_ratio\n3,1.0\n", ["num_decode_tokens", "required", "num_prefill_tokens"]),
    ("num_prefill_tokens,num_decode_tokens\n3,4\n2.5,1\n", ["num_prefill_tokens", "row 2"]),
    ("num_prefill_tokens,num_decode_tokens\n3,4\n2,\n", ["num_decode_tokens", "row 2"]),
    ("num_prefill_tokens,num_decode_tokens\n3,4\n5,6\n7,0\n", ["num_decode_tokens", "row 3"]),
    ("num_prefill_tokens,num_decode_tokens\nabc,4\n", ["num_prefill_tokens", "row 1"]),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n1.0,3,4\n0.5,3,4\n", ["arrived_at", "row 2"]),
    ("arrived_at,num_prefill_tokens,num_decode_tokens\n-1.0,3,4\n", ["arrived_at", "row 1"]),
    ("num_prefill_tokens,num_decode_tokens\n", ["no data rows"]),
    ("", ["empty"]),
])
def test_bad_traces_give_one_line_errors(tmp_path, text, needles):
    with pytest.raises(UserError) as e:
        load_trace(write(tmp_path, text))
    one_line_error(e, *needles)


def test_missing_trace_file(tmp_path):
    with pytest.raises(UserError) as e:
        load_trace(tmp_path / "nope.csv")
    one_line_error(e, "trace: file not found:", "nope.csv")


def make_trace(n: int, with_arrivals: bool = True) -> Trace:
    rng = np.random.default_rng(0)
    arr = np.sort(rng.random(n) * 100) if with_arrivals else None
    return Trace(rng.integers(1, 500, n), rng.integers(1, 200, n), arr, "mem", "synthetic")


def test_split_sizes_determinism_disjointness():
    t = make_trace(1000)
    est, ev = t.split(0.1, seed=3)
    assert (len(est), len(ev)) == (100, 900)
    est2, ev2 = t.split(0.1, seed=3)
    assert np.array_equal(est.arrival_s, est2.arrival_s) and np.array_equal(ev.input_len, ev2.input_len)
    assert not np.array_equal(t.split(0.1, seed=4)[0].arrival_s, est.arrival_s)
    # arrival times are distinct here, so they identify rows: disjoint, covering, ordered
    a, b = set(est.arrival_s.tolist()), set(ev.arrival_s.tolist())
    assert not a & b and a | b == set(t.arrival_s.tolist())
    assert np.all(np.diff(est.arrival_s) >= 0) and np.all(np.diff(ev.arrival_s) >= 0)
    with pytest.raises(UserError) as e:
        t.split(1.0)
    one_line_error(e, "estimate_fraction")


def test_correlation_hand_made():
    x = np.arange(1, 11)
    assert Trace(x, 3 * x + 2, None).correlation() == pytest.approx(1.0)
    assert Trace(x, 100 - x, None).correlation() == pytest.approx(-1.0)
    assert np.isnan(Trace(x, np.full(10, 5), None).correlation())


REAL_TRACES = {
    "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv": (28_257, False),
    "splitwise_code.csv": (8_819, True),
    "splitwise_conv.csv": (19_366, True),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("fname", list(REAL_TRACES))
def test_real_traces_match_provenance(fname):
    path = shared_dir() / "traces" / fname
    if not path.is_file():
        pytest.skip(f"real trace not present: {path} (set HARNESS_SHARED_DIR)")
    rows, has_arrivals = REAL_TRACES[fname]
    t = load_trace(path)
    assert len(t) == rows                           # PROVENANCE.md row counts
    assert (t.arrival_s is not None) == has_arrivals
    import pandas as pd
    raw = pd.read_csv(path)                   # oracle: pandas' Pearson on the file's own columns
    assert t.correlation() == pytest.approx(raw.num_prefill_tokens.corr(raw.num_decode_tokens), abs=1e-9)
    if has_arrivals:                          # replayed from 0 at the file's own gaps
        np.testing.assert_allclose(replay(t).arrival_s, raw.arrived_at - raw.arrived_at.iloc[0], rtol=0, atol=1e-9)


# ---- streams ----------------------------------------------------------------------------
def test_offline_stream():
    w = get_task("C1")
    r = offline(w, 5000, seed=1)
    assert len(r) == 5000 and np.all(r.arrival_s == 0.0)
    assert r.input_len.dtype == np.int64 and r.output_len.max() <= w.output_max
    assert np.array_equal(r.output_len, offline(w, 5000, seed=1).output_len)
    assert not np.array_equal(r.output_len, offline(w, 5000, seed=2).output_len)
    # separate child generators: the first k requests do not depend on the stream length
    short = offline(w, 100, seed=1)
    assert np.array_equal(short.input_len, r.input_len[:100])
    assert np.array_equal(short.output_len, r.output_len[:100])


def test_poisson_stream():
    w = get_task("S")
    r = poisson(w, 50_000, rate_per_s=4.0, seed=0)
    assert r.arrival_s[0] == 0.0
    assert np.diff(r.arrival_s).mean() == pytest.approx(0.25, rel=0.03)
    same = offline(w, 50_000, seed=0)   # same seed -> same lengths as the offline stream
    assert np.array_equal(r.input_len, same.input_len)
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(UserError) as e:
            poisson(w, 10, rate_per_s=bad, seed=0)
        one_line_error(e, "rate_per_s")


def test_replay_stream():
    t = Trace([5, 6, 7, 8], [1, 2, 3, 4], [10.0, 11.0, 11.0, 14.0], "mem", "x")
    r = replay(t)
    assert r.arrival_s.tolist() == [0.0, 1.0, 1.0, 4.0]
    assert r.input_len.tolist() == [5, 6, 7, 8] and r.output_len.tolist() == [1, 2, 3, 4]
    assert replay(t, num_requests=2, time_scale=2.0).arrival_s.tolist() == [0.0, 0.5]
    with pytest.raises(UserError) as e:
        replay(Trace([5], [1], None, "mem", "x"))
    one_line_error(e, "no arrival times", "offline", "poisson")
    with pytest.raises(UserError) as e:
        replay(t, num_requests=5)
    one_line_error(e, "num_requests")
    with pytest.raises(UserError) as e:
        replay(t, time_scale=0)
    one_line_error(e, "time_scale")


def test_requests_container():
    r = Requests([0.0, 1.0, 2.0], [3, 4, 5], [6, 7, 8])
    items = list(r)
    assert [q.request_id for q in items] == [0, 1, 2]
    assert (items[1].arrival_s, items[1].input_len, items[1].output_len) == (1.0, 4, 7)
    assert isinstance(items[0].input_len, int) and isinstance(items[0].arrival_s, float)
    sub = r[1:]
    assert len(sub) == 2 and [q.request_id for q in sub] == [1, 2]
    assert r[-1].request_id == 2 and r[2] == items[2]
    with pytest.raises(ValueError):
        r.arrival_s[0] = 5.0
    with pytest.raises(UserError) as e:
        Requests([0.0, 1.0], [3], [6, 7])
    one_line_error(e, "requests")
    with pytest.raises(UserError) as e:
        Requests([1.0, 0.0], [3, 4], [6, 7])
    one_line_error(e, "arrival_s", "non-decreasing")


def test_make_stream_dispatch_and_errors():
    w = get_task("S")
    assert np.array_equal(make_stream("offline", workload=w, num_requests=10, seed=5).output_len,
                          offline(w, 10, seed=5).output_len)
    assert len(make_stream("poisson", workload=w, num_requests=10, rate_per_s=1.0)) == 10
    t = Trace([5, 6], [1, 2], [3.0, 4.0], "mem", "x")
    assert make_stream("replay", trace=t).arrival_s.tolist() == [0.0, 1.0]
    with pytest.raises(UserError) as e:
        make_stream("posson", workload=w, num_requests=10)
    one_line_error(e, "stream.kind", "poisson", "offline", "replay")
    with pytest.raises(UserError) as e:
        make_stream("poisson", workload=w, num_requests=10)
    one_line_error(e, "rate_per_s")
    with pytest.raises(UserError) as e:
        offline(w, 0, seed=0)
    one_line_error(e, "num_requests")
