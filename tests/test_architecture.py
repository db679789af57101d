"""The house rules that code review alone lets slip (architecture.md): packages depend one way
(the import-linter contract in pyproject.toml), and functions stay short."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60           # issue 18: no function in harness/ over 60 lines


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("importlinter", reason="import-linter is a dev extra (pip install -e '.[dev]')")
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    return subprocess.run([*cmd, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(root), "PATH": ""})


def test_the_import_contract_holds():
    r = _lint_imports(REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_the_import_contract_fails_on_a_back_edge(tmp_path):
    """A copy of the package with one deliberate back-edge (specs importing the CLI) is refused."""
    shutil.copytree(REPO / "harness", tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "harness" / "specs" / "_backedge.py").write_text("import harness.cli.main  # deliberate\n")
    r = _lint_imports(tmp_path)
    assert r.returncode == 1, r.stdout[-3000:]
    assert "harness.specs is not allowed to import harness.cli" in r.stdout
    assert "harness.specs._backedge -> harness.cli.main" in r.stdout


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_over_the_limit():
    files = sorted((REPO / "harness").rglob("*.py"))
    assert len(files) > 50                       # the scan really ran over the package
    long = [f"{p.relative_to(REPO)}:{line} {name} ({n} lines)" for p in files
            for name, line, n in _functions(p) if n > MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)


def test_the_function_scan_sees_a_long_function(tmp_path):
    """The scan above counts a function's lines as written (signature to last line)."""
    p = tmp_path / "m.py"
    p.write_text("def f():\n" + "    x = 1\n" * 61 + "\n\ndef g():\n    return 1\n")
    assert {name: n for name, _, n in _functions(p)} == {"f": 62, "g": 2}
