"""The suite's own layout: test modules live in folders by subject and import no other test module.

What tests share lives in tests/support/ (or a helper module of their folder, not named
``test_*``); fixtures come from a conftest.py, which pytest loads, never by import.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def _is_test_module(path: Path) -> bool:
    # pytest's default python_files, and conftest.py: both are pytest's to load.
    return path.suffix == ".py" and (
        path.name.startswith("test_") or path.name.endswith("_test.py") or path.name == "conftest.py"
    )


def _module_path(name: str) -> Path | None:
    """The file under tests/ that the dotted module ``name`` is, if it is one."""
    if name != "tests" and not name.startswith("tests."):
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, relative imports resolved, with the line that imports it."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # ``from tests.celery import test_eager`` imports the module test_eager.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def test_no_module_of_the_suite_imports_a_test_module() -> None:
    offending = []
    for path in sorted(TESTS.rglob("*.py")):
        for line, module in _imported_modules(path):
            target = _module_path(module)
            if target is not None and _is_test_module(target):
                offending.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offending == [], "move what they share to tests/support/ (or a fixture to a conftest.py)"


def test_no_test_module_sits_directly_in_tests() -> None:
    assert sorted(path.name for path in TESTS.glob("test_*.py")) == [], "put it in the folder of its subject"


def test_the_checks_see_the_suite() -> None:
    # A check that finds no file passes for nothing.
    modules = [path for path in TESTS.rglob("test_*.py") if path.parent != TESTS]
    assert len(modules) > 50
    assert any(module.startswith("tests.support.") for path in modules for _, module in _imported_modules(path))
