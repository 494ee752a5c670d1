"""Execution-based scoring: run a generated answer's code and its row's hidden tests in a sandboxed process,
one process and one temporary folder per row, with time, memory, file, network, process and import limits
(the table in docs/eval.md). The answer and the tests share one namespace, HumanEval-style; `__source__` is
the answer's text, for convention checks. It keeps a model's honest mistakes (a stray write, a hang, a
runaway allocation, a network call) away from the machine: it is not a boundary against code written to
attack it (audit hooks can be bypassed in-process); for hostile code use a container or VM."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

FORBIDDEN = frozenset(
    {
        "socket", "ssl", "select", "selectors", "subprocess", "multiprocessing", "ctypes", "cffi", "pty",
        "signal", "urllib", "http", "ftplib", "smtplib", "telnetlib", "requests", "httpx", "aiohttp",
        "webbrowser", "importlib",
    }
)  # fmt: skip
MEMORY_MB = 1024
FILE_MB = 16
OUTPUT_CHARS = 4000  # of a failing row's stderr kept for its reason

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Outcome:
    """One row's result. `style` is None when the row has no style check; reasons are "" when it passed."""

    passed: bool
    reason: str = ""
    style: bool | None = None
    style_reason: str = ""
    seconds: float = 0.0


def code_of(answer: str) -> str:
    """The code in an answer: the first fenced block when there is one, else the whole answer."""
    fenced = _FENCE.search(answer)
    return (fenced.group(1) if fenced else answer).strip("\n") + "\n"


def forbidden_import(source: str) -> str | None:
    """The first forbidden module the source imports (None when it imports none; the source must parse)."""
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            return "__import__"
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                return name
    return None


def _syntax(source: str, what: str) -> str | None:
    try:
        ast.parse(source)
    except SyntaxError as e:
        return f"{what}: syntax error at line {e.lineno}: {e.msg}"
    except (ValueError, RecursionError) as e:  # NUL bytes, absurd nesting
        return f"{what}: not parseable Python ({e})"
    return None


def run_row(
    answer: str,
    tests: str,
    *,
    style: str | None = None,
    paths: Sequence[str | Path] = (),
    timeout: float = 10.0,
    memory_mb: int = MEMORY_MB,
) -> Outcome:
    """Run one answer against its tests (and style check) in a sandboxed process; never raises for bad code.

    The process: `python -E -s -B` in a fresh temporary folder (deleted after), its process group killed past
    `timeout` seconds (a CPU-time limit backs this up); address space and written files capped (setrlimit);
    a new network namespace where the kernel allows one; an audit hook (PEP 578) refusing sockets, writes
    outside the folder, new processes and ctypes; an answer importing a `FORBIDDEN` module fails before it
    runs. A row passes only when the tests finished and the process reports so with a one-time token read
    after them: `os._exit(0)` or `sys.exit()` from the answer fails."""
    started = time.perf_counter()
    source = code_of(answer)
    problem = _syntax(tests, "the row's tests") or (style is not None and _syntax(style, "the row's style check"))
    if problem:
        return Outcome(False, str(problem), False if style is not None else None, str(problem) if style else "")
    problem = _syntax(source, "answer")
    if problem is None:
        bad = forbidden_import(source)
        problem = f"answer imports forbidden module '{bad}'" if bad else None
    if problem:
        return Outcome(False, problem, False if style is not None else None, problem if style is not None else "")
    with tempfile.TemporaryDirectory(prefix="tunesmith-sandbox-") as tmp:
        work = Path(tmp)
        (work / "answer.py").write_text(source, encoding="utf-8")
        (work / "tests.py").write_text(tests, encoding="utf-8")
        if style is not None:
            (work / "style.py").write_text(style, encoding="utf-8")
        driver = work / "_driver.py"
        driver.write_text(_DRIVER, encoding="utf-8")
        token = secrets.token_hex(16)
        setup = json.dumps(
            {
                "root": str(work.resolve()),
                "paths": [str(Path(p).resolve()) for p in paths],
                "timeout": timeout,
                "memory": memory_mb * 2**20,
                "fsize": FILE_MB * 2**20,
                "style": style is not None,
            }
        )
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8"}
        proc = subprocess.Popen(
            [sys.executable, "-E", "-s", "-B", str(driver), setup],
            cwd=work,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout kills everything it started
            text=True,
        )
        try:
            out, err = proc.communicate(token + "\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            reason = f"timed out after {timeout:g} s (killed)"
            return Outcome(False, reason, False if style is not None else None, reason if style else "", timeout)
        finally:
            _kill_group(proc)  # anything it left behind in its group
    seconds = time.perf_counter() - started
    return _verdict(out, err, proc.returncode, token, style is not None, seconds)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _verdict(out: str, err: str, code: int, token: str, has_style: bool, seconds: float) -> Outcome:
    report = None
    for line in reversed(out.splitlines()):
        if line.startswith("TUNESMITH-SANDBOX "):
            try:
                report = json.loads(line.removeprefix("TUNESMITH-SANDBOX "))
            except ValueError:
                report = None
            break
    if not isinstance(report, dict) or report.get("token") != token:
        tail = err.strip().splitlines()[-1:] if err.strip() else []
        if code is not None and code < 0:
            why = f"killed by signal {signal.Signals(-code).name}"
            if -code in (signal.SIGKILL, signal.SIGXCPU):
                why += " (CPU time or memory limit)"
        else:
            why = f"exited with code {code} before its tests finished"
        reason = why + (f": {tail[0][:OUTPUT_CHARS]}" if tail else "")
        return Outcome(False, reason, False if has_style else None, reason if has_style else "", seconds)
    return Outcome(
        bool(report.get("passed")),
        str(report.get("reason", ""))[:OUTPUT_CHARS],
        report.get("style") if has_style else None,
        str(report.get("style_reason", ""))[:OUTPUT_CHARS],
        seconds,
    )


_RAN: dict[str, Outcome] = {}  # outcomes by what was run: the held-out pass and the report score the same answers
_RAN_LIMIT = 4096


def run_rows(
    answers: Sequence[str],
    tests: Sequence[str | None],
    styles: Sequence[str | None],
    *,
    paths: Sequence[str | Path] = (),
    timeout: float = 10.0,
    workers: int | None = None,
) -> list[Outcome]:
    """`run_row` over many rows, a few processes at a time. A row without tests fails with that reason. A row
    already run in this process with the same answer, tests, style check, paths and timeout is not run again
    (unless a time or memory limit stopped it: the machine's load may have)."""

    def one(i: int) -> Outcome:
        if not tests[i] or not isinstance(tests[i], str):
            return Outcome(False, "the row has no `tests` field (code tasks score answers by running them)")
        style = styles[i] if isinstance(styles[i], str) and styles[i] else None
        key = json.dumps([answers[i], tests[i], style, [str(p) for p in paths], timeout])
        if key in _RAN:
            return _RAN[key]
        outcome = run_row(answers[i], str(tests[i]), style=style, paths=paths, timeout=timeout)
        limited = any(w in outcome.reason for w in ("timed out", "killed by signal"))  # load may have done it
        if not limited and len(_RAN) < _RAN_LIMIT:
            _RAN[key] = outcome
        return outcome

    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(len(answers))))


# The program each sandboxed process runs. Order matters: limits and the network namespace first (they need
# ctypes and setrlimit, which the audit hook refuses afterwards), then the hook, then the answer and tests.
_DRIVER = r"""
import json, os, sys
setup = json.loads(sys.argv[1])
ROOT = setup["root"]

import resource
resource.setrlimit(resource.RLIMIT_AS, (setup["memory"], setup["memory"]))
resource.setrlimit(resource.RLIMIT_FSIZE, (setup["fsize"], setup["fsize"]))
cpu = int(setup["timeout"]) + 2
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

def _unshare_network():
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000
        if libc.unshare(CLONE_NEWNET) != 0:
            libc.unshare(CLONE_NEWUSER | CLONE_NEWNET)
    except Exception:
        pass
_unshare_network()
sys.path[:] = [p for p in sys.path if p != os.path.dirname(os.path.abspath(__file__))]
sys.path[:0] = setup["paths"]
import traceback, io  # everything the driver needs, before the hook

_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
                "os.symlink", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
_REFUSED = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
            "pty.spawn", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "os.kill", "os.killpg",
            "resource.setrlimit", "os.startfile", "os.putenv", "webbrowser.open"}

def _inside(path):
    try:
        real = os.path.realpath(os.fsdecode(path) if not isinstance(path, int) else "/")
    except Exception:
        return False
    return real == ROOT or real.startswith(ROOT + os.sep)

def _hook(event, args):
    if event.startswith("socket."):
        raise PermissionError("network access is not allowed in the sandbox")
    if event in _REFUSED:
        raise PermissionError(f"{event} is not allowed in the sandbox")
    if event == "open" and args and args[0] is not None and not isinstance(args[0], int):
        mode, flags = args[1] or "r", args[2] or 0
        writing = any(c in str(mode) for c in "wax+") or bool(flags & _WRITE)
        if writing and not _inside(args[0]):
            raise PermissionError(f"writing outside the sandbox folder is not allowed: {os.fsdecode(args[0])}")
    if event in _PATH_EVENTS:
        for a in args[:2]:
            if isinstance(a, (str, bytes, os.PathLike)) and not _inside(a):
                raise PermissionError(f"{event} outside the sandbox folder is not allowed")

def _last(exc):
    lines = traceback.format_exception_only(type(exc), exc)
    text = "".join(lines).strip().splitlines()
    where = ""
    tb = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(tb):
        if frame.filename in ("answer.py", "tests.py", "style.py"):
            where = f" ({frame.filename} line {frame.lineno})"
            break
    return (text[-1] if text else type(exc).__name__) + where

answer = open(os.path.join(ROOT, "answer.py"), encoding="utf-8").read()
tests = open(os.path.join(ROOT, "tests.py"), encoding="utf-8").read()
style = open(os.path.join(ROOT, "style.py"), encoding="utf-8").read() if setup["style"] else None
result = {"passed": False, "reason": "", "style": None, "style_reason": ""}
sys.addaudithook(_hook)
stdout = sys.stdout
sys.stdout = io.StringIO()  # the answer's prints are not the report
namespace = {"__name__": "__candidate__", "__source__": answer, "__builtins__": __builtins__}
try:
    exec(compile(answer, "answer.py", "exec"), namespace)
    exec(compile(tests, "tests.py", "exec"), namespace)
    result["passed"] = True
except BaseException as exc:  # SystemExit and KeyboardInterrupt included: an answer may not end the run
    result["reason"] = _last(exc) if not isinstance(exc, SystemExit) else "the answer or tests called exit()"
if style is not None:
    try:
        exec(compile(style, "style.py", "exec"), {**namespace, "__name__": "__style__"})
        result["style"] = True
    except BaseException as exc:
        result["style"], result["style_reason"] = False, _last(exc)
sys.stdout = stdout
result["token"] = sys.stdin.readline().strip()
stdout.write("TUNESMITH-SANDBOX " + json.dumps(result) + "\n")
stdout.flush()
"""
