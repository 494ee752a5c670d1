"""The codebase's own shape, checked like any other behaviour: the import layering (import-linter), lint and
format (ruff), types (mypy), and the size limits of functions and module docstrings."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "tunesmith"
BIN = Path(sys.executable).parent
MAX_FUNCTION_LINES = 100
MAX_DOCSTRING_LINES = 6


def _tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not installed in this venv: run `bash scripts/setup.sh --test`"
    return str(path)


def _run(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_imports_follow_the_layers():
    out = _run(_tool("lint-imports"), "--no-cache")
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_back_import_breaks_the_layer_contract(tmp_path):
    """The contract can fail: a copy of the package where training imports the CLI does not pass."""
    shutil.copytree(SRC, tmp_path / "tunesmith")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    loop = tmp_path / "tunesmith" / "training" / "loop.py"
    loop.write_text(loop.read_text() + "\nfrom tunesmith import cli  # noqa: E402 - against the flow\n")
    out = _run(_tool("lint-imports"), "--no-cache", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert out.returncode != 0, out.stdout
    assert "tunesmith.training.loop -> tunesmith.cli" in out.stdout


@pytest.mark.parametrize("args", [("check",), ("format", "--check", "--diff")], ids=["lint", "format"])
def test_ruff(args):
    out = _run(_tool("ruff"), *args, "src", "tests", "benchmarks", "scripts")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr


def test_mypy():
    out = _run(sys.executable, "-m", "mypy")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr


def _functions(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_function_over_the_limit_and_short_module_docstrings():
    long_functions, long_docs = [], []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        name = path.relative_to(SRC)
        long_functions += [
            f"{name}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for f in _functions(tree)
            if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES
        ]
        doc = ast.get_docstring(tree)
        if doc is not None and len(doc.splitlines()) > MAX_DOCSTRING_LINES:
            long_docs.append(f"{name} ({len(doc.splitlines())} lines)")
    assert not long_functions, long_functions
    assert not long_docs, long_docs
