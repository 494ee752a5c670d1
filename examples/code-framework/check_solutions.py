#!/usr/bin/env python3
"""Check the code-framework dataset: every row's reference solution must pass its hidden tests and
its style (convention) check, each run in a fresh subprocess the way an evaluation sandbox would.

For each row one subprocess (sys.executable, framework_src on PYTHONPATH, 10 s timeout) does what
tunesmith's code-task sandbox does (without its resource limits):

    ns = {"__source__": CODE}; exec(CODE, ns); exec(TESTS, ns)     # functional tests (pass@1)
    exec(STYLE, {**ns})                                             # conventions, parsed from __source__

and a row passes a phase when that phase raises nothing.

--mutants also runs two negative controls per row, which must FAIL: the step with its body replaced
by `return ll.ok(rec)` (and no needs=) against the tests, and the reference broken in one convention
(renamed function, a print, a raise, a string error code, a subscripted record...) against the style.

Usage: python examples/code-framework/check_solutions.py [--mutants] [-j 2] [FILE.jsonl ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRAMEWORK = HERE / "framework_src"
TIMEOUT_S = 10

# Runs inside the subprocess: one job (JSON on stdin), one JSON verdict on stdout.
RUNNER = r'''
import json, sys
job = json.load(sys.stdin)

def why(exc):
    return (type(exc).__name__ + ": " + str(exc)).strip()[:300]

out = {}
ns = {"__name__": "__candidate__", "__source__": job["code"]}
try:
    exec(compile(job["code"], "answer.py", "exec"), ns)
    if job["tests"] is not None:
        exec(compile(job["tests"], "tests.py", "exec"), ns)
    err = None
except BaseException as exc:
    err = why(exc)
if job["tests"] is not None:
    out["tests"] = err
if job["style"] is not None:
    try:
        exec(compile(job["style"], "style.py", "exec"), {**ns, "__name__": "__style__"})
        out["style"] = None
    except BaseException as exc:
        out["style"] = why(exc)
print(json.dumps(out))
'''


def run_job(code: str, tests: str | None, style: str | None, timeout: float = TIMEOUT_S) -> dict:
    """{"tests": None | error, "style": None | error} for one candidate; None means the phase passed."""
    env = dict(os.environ, PYTHONPATH=str(FRAMEWORK), PYTHONDONTWRITEBYTECODE="1")
    job = json.dumps({"code": code, "tests": tests, "style": style})
    try:
        proc = subprocess.run([sys.executable, "-c", RUNNER],
                              input=job, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE)
    except subprocess.TimeoutExpired:
        return {k: f"timeout after {timeout} s" for k, v in (("tests", tests), ("style", style)) if v is not None}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {k: f"runner failed: {err}" for k, v in (("tests", tests), ("style", style)) if v is not None}


def trivial_mutant(code: str) -> str:
    """The same step (name, signature) with needs= removed and a body that passes every record on."""
    head = code.split("\n    ", 1)[0]
    head = re.sub(r", needs=\([^)]*\)", "", head)
    return head + "\n    return ll.ok(rec)"


def _rename(code: str) -> str:
    return re.sub(r"def \w+\(ctx, rec\)", "def handle(ctx, rec)", code)


def _print(code: str) -> str:
    return code.replace("(ctx, rec):\n", "(ctx, rec):\n    print(ctx.today)\n", 1)


def _raise(code: str) -> str:
    return code.replace("(ctx, rec):\n", "(ctx, rec):\n    if ctx is None:\n        raise ValueError(\"no context\")\n", 1)


def _subscript(code: str) -> str:
    return code.replace("(ctx, rec):\n", "(ctx, rec):\n    _fields = rec['x'] if False else None\n", 1)


def _string_code(code: str) -> str:
    if "ll.fail(ll.E_" in code:
        return re.sub(r"ll\.fail\(ll\.(E_[A-Z]+)", lambda m: f'll.fail("{m.group(1).lower()}"', code, count=1)
    head, last = code.rsplit("\n", 1)  # no fail call: make the final return a conditional expression instead
    return head + "\n" + last + " if ctx else None"


def _from_import(code: str) -> str:
    return code.replace("import ledgerline as ll", "import ledgerline as ll\nfrom ledgerline import ok", 1)


def _camel_name(code: str) -> str:
    return re.sub(r'@ll\.step\("([a-z0-9-]+)"', lambda m: '@ll.step("' + m.group(1).replace("-", "_") + '"', code, count=1)


STYLE_MUTANTS = [_rename, _print, _raise, _subscript, _string_code, _from_import, _camel_name]


def main() -> int:
    ap = argparse.ArgumentParser(description="Run every reference solution against its tests and style check.")
    ap.add_argument("files", nargs="*", help="JSONL files (default: train, eval and test next to this script)")
    ap.add_argument("--mutants", action="store_true", help="also check that broken candidates fail (negative controls)")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="subprocesses at a time (default 1)")
    args = ap.parse_args()
    files = [Path(f) for f in args.files] or [HERE / f"{s}.jsonl" for s in ("train", "eval", "test")]

    jobs = []  # (label, kind, code, tests, style)
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh, 1):
                row = json.loads(line)
                code = row["messages"][-1]["content"]
                label = f"{path.name}:{i}"
                jobs.append((label, "reference", code, row["tests"], row["style"]))
                if args.mutants:
                    jobs.append((label, "trivial-body mutant", trivial_mutant(code), row["tests"], None))
                    bad = STYLE_MUTANTS[i % len(STYLE_MUTANTS)]
                    jobs.append((label, f"style mutant {bad.__name__}", bad(code), None, row["style"]))

    t0 = time.time()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        verdicts = list(pool.map(lambda j: run_job(j[2], j[3], j[4]), jobs))

    problems, counts = [], {}
    for (label, kind, _code, _tests, _style), verdict in zip(jobs, verdicts):
        for phase, err in verdict.items():
            key = (kind.split(" ")[0] if kind != "reference" else kind, phase)
            passed, total = counts.get(key, (0, 0))
            counts[key] = (passed + (err is None), total + 1)
            if kind == "reference" and err is not None:
                problems.append(f"{label} reference fails its {phase}: {err}")
            if kind != "reference" and err is None:
                problems.append(f"{label} {kind} passes the {phase} (it should fail)")

    print(f"{len(jobs)} runs over {len(files)} file(s) in {time.time() - t0:.1f} s")
    for (kind, phase), (passed, total) in sorted(counts.items()):
        print(f"  {kind:<10} {phase:<5}: {passed}/{total} pass")
    for p in problems:
        print("FAIL", p)
    print("all checks passed" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
