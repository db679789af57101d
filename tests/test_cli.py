"""`harness` console script: JSON from `show`, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


def test_show_prints_the_scenario_as_json() -> None:
    r = harness("show", "model=opt-13b")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"]["params_b"] == pytest.approx(12.85, abs=0.01)
    assert out["cluster"] == {"name": "a40x4", "gpu": "a40", "num_gpus": 4, "nodes": 1}
    assert out["workload"]["output"]["p99"] == 63


def test_user_error_is_one_line_exit_2() -> None:
    r = harness("show", "model=nope")
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("harness: error: model:") and "valid:" in lines[0]
    assert "Traceback" not in r.stderr


def test_unknown_command_suggests_the_nearest() -> None:
    r = harness("shw")
    assert r.returncode == 2
    assert r.stderr.startswith("harness: error: command: unknown 'shw' (did you mean 'show'?); valid:")


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli.main import COMMANDS, main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)


def test_estimate_prints_the_paper_example_as_json():
    import json as _json
    import subprocess as _sp
    import sys as _sys
    args = ["estimate", "model=opt-13b", "cluster=a40x4", "task=S", "policy=rra",
            "policy.encode_batch_size=52", "policy.decode_iters=13", "policy.tp_degree=4"]
    out = _sp.run([_sys.executable, "-m", "harness.cli.main", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    d = _json.loads(out.stdout)
    assert d["inputs"]["knobs"] == {"encode_batch_size": 52, "decode_iters": 13, "tp_degree": 4, "tp_gpus": 4}
    assert d["estimate"]["feasible"] and d["estimate"]["throughput_seq_s"] > 0
    assert d["simulator"] == "expected"


def test_estimate_bad_knob_is_one_line():
    import subprocess as _sp
    import sys as _sys
    out = _sp.run([_sys.executable, "-m", "harness.cli.main", "estimate", "policy=ft", "policy.batch_size=0"],
                  capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "policy.batch_size" in out.stderr and "Traceback" not in out.stderr


def test_estimate_with_discrete_event_simulator_reports_request_metrics():
    import json as _json
    import subprocess as _sp
    import sys as _sys
    args = ["estimate", "simulator=discrete-event", "num_requests=300", "arrivals.kind=poisson",
            "arrivals.rate_per_s=5", "policy=waa-c", "policy.encode_batch_size=4", "policy.tp_degree=2"]
    out = _sp.run([_sys.executable, "-m", "harness.cli.main", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    d = _json.loads(out.stdout)
    assert d["simulator"] == "discrete-event" and d["requests"]["arrivals"] == "poisson"
    assert 0 < d["requests"]["ttft_p50_s"] <= d["requests"]["e2e_p50_s"]


def test_search_prints_the_paper_example_as_json():
    r = harness("search", "model=opt-13b", "cluster=a40x4", "task=S", "bound_s=5.9")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["inputs"]["bound_s"] == 5.9 and d["status"] == "ok"
    assert {p["policy"] for p in d["policies"]} == {"rra", "waa-c", "waa-m"}
    best = max((p for p in d["policies"] if p["status"] == "ok"), key=lambda p: p["throughput_seq_s"])
    assert d["chosen"]["policy"] == best["policy"] and d["chosen"]["latency_s"] < 5.9
    assert d["evaluations"] == sum(p["evaluations"] for p in d["policies"]) and d["search_s"] > 0
    ft = d["ft_baseline"]
    assert ft["latency_s"] < 5.9 and d["speedup_over_ft"] == pytest.approx(
        d["chosen"]["throughput_seq_s"] / ft["throughput_seq_s"])


def test_search_with_an_impossible_bound_is_ns_not_a_crash():
    r = harness("search", "model=opt-13b", "cluster=a40x4", "task=S", "bound_s=0.01", "search.resolution=coarse")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["status"] == "NS" and d["chosen"] is None and d["speedup_over_ft"] is None
    assert all(p["status"] == "NS" and p["reason"] for p in d["policies"])
    assert d["ft_baseline"]["status"] == "NS"


@pytest.mark.parametrize("override, field", [("search.method=bnb", "search.method"),
                                             ("search.policies=[rra,waa]", "search.policies"),
                                             ("search.resolution=ultra", "search.resolution")])
def test_search_settings_errors_name_the_field(override, field):
    r = harness("search", "bound=inf", override)
    assert r.returncode == 2 and r.stderr.startswith(f"harness: error: {field}: "), r.stderr
