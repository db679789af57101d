"""The test suite's own layering: a test file never imports another test file. Shared helpers
live in tests/helpers.py (or tests/conftest.py); a test module imported by another would run
its module-level setup twice and ties one file's fixtures to another's edits."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TEST_MODULES = {p.stem for p in TESTS.glob("test_*.py")}


def imported_test_modules(source: str) -> list[str]:
    """The test modules `source` imports, anywhere in it (top level or inside a function):
    `tests.test_x`, `test_x`, `from tests import test_x`, `from . import test_x`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names = [base] + [f"{base}.{a.name}" if base else a.name for a in node.names]
            if node.level:                                   # relative: `from .test_x import y`
                names = [n.lstrip(".") for n in names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tests":
                parts = parts[1:]
            if parts and parts[0] in TEST_MODULES:
                found.append(parts[0])
    return sorted(set(found))


def test_the_checker_sees_every_form_of_a_test_to_test_import() -> None:
    some = sorted(TEST_MODULES)[0]
    for src in (f"from tests.{some} import x", f"import tests.{some}", f"from {some} import x",
                f"import {some}", f"from tests import {some}", f"from .{some} import x",
                f"def f():\n    from tests.{some} import x\n"):
        assert imported_test_modules(src) == [some], src
    assert imported_test_modules("from helpers import tiny\nfrom conftest import requires_shared\nimport harness") == []
    assert imported_test_modules("from tests.helpers import tiny") == []


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda p: p.name)
def test_no_test_file_imports_another(path: Path) -> None:
    assert TEST_MODULES, "no tests/test_*.py found"
    bad = imported_test_modules(path.read_text())
    assert not bad, f"{path.name} imports {bad}: move what it shares into tests/helpers.py"
