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
