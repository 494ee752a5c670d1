"""The sandbox that scores code answers by running their row's hidden tests: what it lets through, what it
refuses, and that a bad row is a failed row with its reason, never a crash."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from tunesmith.evaluate.sandbox import code_of, forbidden_import, run_row, run_rows


def test_a_right_answer_passes_and_a_wrong_one_fails_with_the_assertion():
    ok = run_row("def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5\n")
    assert ok.passed and ok.reason == "" and ok.style is None
    wrong = run_row("def add(a, b):\n    return a - b\n", "assert add(2, 3) == 5, 'add(2, 3) should be 5'\n")
    assert not wrong.passed
    assert wrong.reason == "AssertionError: add(2, 3) should be 5 (tests.py line 1)"


def test_style_checks_see_the_source_and_are_scored_apart_from_the_tests():
    style = "import ast\nassert not any(isinstance(n, ast.Raise) for n in ast.walk(ast.parse(__source__))), 'raises'\n"
    good = run_row("def f(x):\n    return x\n", "assert f(1) == 1", style=style)
    assert good.passed and good.style is True
    bad = run_row(
        "def f(x):\n    if x is None:\n        raise ValueError\n    return x\n", "assert f(1) == 1", style=style
    )
    assert bad.passed and bad.style is False and "raises" in bad.style_reason


def test_fenced_answers_are_unwrapped():
    assert code_of("Here it is:\n```python\nx = 1\n```\nDone.") == "x = 1\n"
    assert code_of("x = 2") == "x = 2\n"
    assert run_row("```python\ndef one():\n    return 1\n```", "assert one() == 1").passed


def test_a_row_cannot_write_outside_its_temporary_folder(tmp_path):
    target = tmp_path / "escaped.txt"
    out = run_row(f"open({str(target)!r}, 'w').write('x')\n", "pass")
    assert not out.passed and "writing outside the sandbox folder" in out.reason
    assert not target.exists()
    removed = tmp_path / "keep.txt"
    removed.write_text("mine")
    out = run_row(f"import os\nos.remove({str(removed)!r})\n", "pass")
    assert not out.passed and removed.read_text() == "mine"
    inside = run_row("open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n", "pass")
    assert inside.passed  # its own folder is writable


def test_a_row_cannot_open_a_network_socket():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept():
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    waiter = threading.Thread(target=accept)
    waiter.start()
    try:
        # the tests are the user's own code: the answer's imports are checked statically, the process by its hook
        out = run_row("x = 1\n", f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n")
        assert not out.passed and "network access is not allowed" in out.reason
        assert forbidden_import("import socket\n") == "socket"
        assert forbidden_import("from urllib.request import urlopen\n") == "urllib.request"
        assert forbidden_import("x = __import__('so' + 'cket')\n") == "__import__"
        refused = run_row("import socket\n", "pass")
        assert not refused.passed and refused.reason == "answer imports forbidden module 'socket'"
    finally:
        waiter.join()
        server.close()
    assert accepted == []  # nothing ever connected


@pytest.mark.parametrize("answer", ["while True:\n    pass\n", "import time\ntime.sleep(120)\n"])
def test_a_row_cannot_outlive_its_timeout(answer):
    started = time.perf_counter()
    out = run_row(answer, "pass", timeout=2)
    assert time.perf_counter() - started < 10
    assert not out.passed and out.reason == "timed out after 2 s (killed)"


def test_a_hanging_test_is_a_failed_row_with_its_reason():
    out = run_rows(["x = 1\n"], ["while True:\n    pass\n"], [None], timeout=1.5)[0]
    assert not out.passed and "timed out" in out.reason


def test_processes_native_code_and_early_exits_are_refused():
    assert "os.fork is not allowed" in run_row("import os\nos.fork()\n", "pass").reason
    assert "os.system is not allowed" in run_row("import os\nos.system('true')\n", "pass").reason
    faked = run_row("import os\nos._exit(0)\n", "assert False")
    assert not faked.passed and "before its tests finished" in faked.reason
    assert run_row("raise SystemExit(0)\n", "pass").reason == "the answer or tests called exit()"
    assert not run_row("x = [0] * (10 ** 10)\n", "pass").passed  # past the memory limit


def test_bad_rows_are_failed_rows_never_a_crash():
    outs = run_rows(
        ["def f(:\n", "x = 1\n", "x = 1\n", "x = 1\n"],
        ["pass", "assert (", None, 42],
        [None, None, None, None],
    )
    assert [o.passed for o in outs] == [False] * 4
    assert outs[0].reason.startswith("answer: syntax error at line 1")
    assert outs[1].reason.startswith("the row's tests: syntax error")
    assert "no `tests` field" in outs[2].reason and "no `tests` field" in outs[3].reason


def test_the_import_path_reaches_the_given_folders(tmp_path):
    (tmp_path / "inhouse.py").write_text("def twice(x):\n    return 2 * x\n")
    out = run_row("import inhouse\ndef f(x):\n    return inhouse.twice(x)\n", "assert f(4) == 8", paths=[tmp_path])
    assert out.passed, out.reason
    assert not run_row("import inhouse\n", "pass").passed  # not without them


def test_a_row_already_run_is_not_run_again():
    """The held-out pass and the comparison report score the same answers: each runs once. A row stopped by its
    time limit is run again (the machine's load may have stopped it)."""
    from tunesmith.evaluate import sandbox

    answer = "def f():\n    return 1\n"
    tests = "assert f() == 1\n"
    first = sandbox.run_rows([answer], [tests], [None], timeout=10.0)
    again = sandbox.run_rows([answer], [tests], [None], timeout=10.0)
    assert first == again and first[0].passed  # the same measured seconds: not run a second time
    slow = "import time\ntime.sleep(5)\n"
    assert sandbox.run_rows([slow], [tests], [None], timeout=0.5)[0].reason.startswith("timed out")
    key_count = len(sandbox._RAN)
    sandbox.run_rows([slow], [tests], [None], timeout=0.5)
    assert len(sandbox._RAN) == key_count  # not kept
