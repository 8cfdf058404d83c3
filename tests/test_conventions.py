"""The test suite's own conventions: every test states, in one line, the behaviour it checks."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _tests(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Test functions at module level and in test classes, as pytest collects them."""
    found: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for node in tree.body:
        bodies = node.body if isinstance(node, ast.ClassDef) else [node]
        for item in bodies:
            is_test = isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_test and item.name.startswith("test"):
                found.append(item)
    return found


def _problem(test: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """What is wrong with a test's docstring, if anything."""
    doc = ast.get_docstring(test, clean=False)
    if not doc or not doc.strip():
        return "has no docstring"
    if "\n" in doc:
        return "has a docstring of more than one line"
    return None


def test_every_test_has_a_one_line_docstring() -> None:
    """Each test function in tests/test_*.py carries a docstring of exactly one line."""
    problems = []
    for path in sorted(TESTS.glob("test_*.py")):
        for test in _tests(ast.parse(path.read_text(), str(path))):
            problem = _problem(test)
            if problem:
                problems.append(f"{path.name}:{test.lineno} {test.name} {problem}")
    assert problems == []
