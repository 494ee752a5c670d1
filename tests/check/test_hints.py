"""Every check the code base emits has a hint on how to fix it (`tunesmith/check/hints.py`): a new check without
one fails here, and so does a hint left behind for a check that is gone."""

from __future__ import annotations

import ast
from pathlib import Path

from tunesmith.check.hints import HINTS

SRC = Path(__file__).resolve().parents[2] / "src" / "tunesmith"


def _name(func: ast.expr) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _check_argument(call: ast.Call, position: int) -> ast.expr | None:
    """The `check` argument of a call: by keyword, or at its position."""
    by_keyword = [k.value for k in call.keywords if k.arg == "check"]
    return by_keyword[0] if by_keyword else call.args[position] if len(call.args) > position else None


def emitted_checks() -> tuple[dict[str, str], list[str]]:
    """(check code -> `file:line` of its first `Finding(severity, "code", ...)` in src/, including the default of
    `from_error` and codes passed to it; calls whose code is not a literal, which this scan cannot see)."""
    codes: dict[str, str] = {}
    unseen: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.FunctionDef) and node.name == "from_error":
                args = node.args.args
                defaults = dict(zip([a.arg for a in args[len(args) - len(node.args.defaults) :]], node.args.defaults))
                literal = defaults.get("check")
                assert isinstance(literal, ast.Constant), f"{where}: from_error needs a literal default check code"
                codes.setdefault(literal.value, where)
            if not isinstance(node, ast.Call) or _name(node.func) not in ("Finding", "from_error"):
                continue
            code = _check_argument(node, 1)
            if isinstance(code, ast.Constant) and isinstance(code.value, str):
                codes.setdefault(code.value, where)
            elif code is not None and not (_name(node.func) == "Finding" and path.name == "findings.py"):
                unseen.append(where)  # from_error's own Finding(..., check, ...) passes its parameter on
    return codes, unseen


def test_every_check_in_src_has_a_hint_and_every_hint_a_check():
    codes, unseen = emitted_checks()
    assert not unseen, f"write check codes as literals so that this test sees them: {unseen}"
    assert {"format", "render", "eos_not_trained", "duplicate", "leak", "pii", "fact_injection"} <= set(codes)
    missing = {code: where for code, where in codes.items() if code not in HINTS}
    assert not missing, f"checks without a hint in tunesmith/check/hints.py: {missing}"
    assert set(HINTS) <= set(codes), f"hints for checks nothing emits: {set(HINTS) - set(codes)}"


def test_hints_are_short_sentences():
    for code, text in HINTS.items():
        assert text[0].isupper() and text.endswith(".") and len(text) <= 320, code
        assert text.count("`") % 2 == 0, code  # `code` spans are closed
