"""Serving under load, side by side in one run: today's `tunesmith serve` (continuous batching: every active
request in one batch, each row its own adapter) against the server before it (one request's tokens at a time,
taking turns), each a real server process on 127.0.0.1 serving a run plus a second adapter on one base model.

For each concurrency (default 50 and 200): that many chat requests at once, alternating between the two adapters,
every fifth streamed; requests/s, p50/p95 latency, errors, answers equal to the same request made alone, and
adapter mix-ups (an answer that is the other adapter's). The client is bounded: each request has a 600 s timeout.

    python benchmarks/serve_load.py                     # makes two small runs; baseline: git ref 4afcf35
    python benchmarks/serve_load.py --run A --adapter B --concurrency 50 --baseline-ref none
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "4afcf35"  # the last commit whose server took turns (16-token slices, one request at a time)


def make_run(folder: Path, seed: int) -> Path:
    import tunesmith

    overrides = ["train.lr=3e-3", "train.max_steps=3", f"train.seed={seed}", "eval.enabled=false"]
    result = tunesmith.train(str(ROOT / "examples/support/config.yaml"), [*overrides, f"output_dir={folder}"])
    return Path(result.run_dir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(src: Path, run: Path, adapter: Path, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "tunesmith.cli", "serve", str(run), "--adapter", f"second={adapter}"]
    cmd += ["--port", str(port), "--max-queue", "1000", "--request-timeout", "600"]
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=str(threads))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server ({src}) exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server ({src}) did not start")


KNOWN_KEYS = """
import json, pydantic
from tunesmith.config import Config
def keys(model):
    out = {}
    for name, field in model.model_fields.items():
        t = field.annotation
        out[name] = keys(t) if isinstance(t, type) and issubclass(t, pydantic.BaseModel) else None
    return out
print(json.dumps(keys(Config)))
"""


def known_keys(src: Path) -> dict:
    """The config keys the code in `src` knows, section by section (None: a leaf)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, "-c", KNOWN_KEYS], env=env, text=True, capture_output=True, check=True)
    return json.loads(out.stdout)


def for_older(known: dict, run: Path, dest: Path) -> Path:
    """A copy of `run` that older code knowing only the `known` config keys can read: keys added since then (at
    their defaults in the runs made here) dropped."""
    import shutil

    import yaml

    def keep(config: dict, schema: dict) -> dict:
        return {
            k: keep(v, schema[k]) if isinstance(v, dict) and schema[k] else v for k, v in config.items() if k in schema
        }

    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints"))
    config = yaml.safe_load((dest / "config.yaml").read_text())
    (dest / "config.yaml").write_text(yaml.safe_dump(keep(config, known), sort_keys=False))
    return dest


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


async def ask(client, model: str, question: str, stream: bool, max_tokens: int) -> tuple[str, float]:
    started = time.perf_counter()
    messages = [{"role": "user", "content": question}]
    if stream:
        chunks = await client.chat.completions.create(
            model=model, messages=messages, stream=True, max_tokens=max_tokens, temperature=0
        )
        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    else:
        r = await client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, temperature=0)
        text = r.choices[0].message.content or ""
    return text, time.perf_counter() - started


async def load(url: str, models: list[str], questions: list[str], n: int, max_tokens: int) -> dict:
    import openai

    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600)
    asked = [(models[i % 2], questions[i % len(questions)], i % 5 == 0) for i in range(n)]
    alone = {}
    for model in models:  # every (model, question) alone first: the reference answers
        for q in questions:
            alone[model, q] = (await ask(client, model, q, False, max_tokens))[0]
    started = time.perf_counter()
    results = await asyncio.gather(*(ask(client, m, q, s, max_tokens) for m, q, s in asked), return_exceptions=True)
    wall = time.perf_counter() - started
    await client.close()
    ok = [(a, r) for a, r in zip(asked, results) if not isinstance(r, BaseException)]
    latencies = sorted(r[1] for _, r in ok)
    other = {models[0]: models[1], models[1]: models[0]}
    return {
        "requests": n,
        "wall_s": wall,
        "requests_per_s": n / wall,
        "p50_s": statistics.median(latencies) if latencies else None,
        "p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else None,
        "errors": n - len(ok),
        "error_examples": [repr(r)[:200] for r in results if isinstance(r, BaseException)][:3],
        "same_as_alone": sum(r[0] == alone[m, q] for (m, q, _), r in ok),
        "mixups": sum(r[0] == alone[other[m], q] != alone[m, q] for (m, q, _), r in ok),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="the served run (default: make one, 3 LoRA steps on examples/support)")
    ap.add_argument("--adapter", help="a second run on the same base model (default: make one, another seed)")
    ap.add_argument("--concurrency", default="50,200")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--questions", type=int, default=10, help="distinct questions (support test rows)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--baseline-ref", default=BEFORE, help="git ref of the server to compare with ('none': skip)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    run = Path(args.run) if args.run else make_run(work / "first", 0)
    adapter = Path(args.adapter) if args.adapter else make_run(work / "second", 1)
    rows = [json.loads(line) for line in (ROOT / "examples/support/test.jsonl").read_text().splitlines() if line]
    questions = [r["messages"][-2]["content"] for r in rows[: args.questions]]
    servers = {"now: continuous batching": (ROOT / "src", run, adapter)}
    if args.baseline_ref != "none":
        tree = work / "before"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", str(tree), args.baseline_ref], check=True)
        src = tree / "src"
        known = known_keys(src)
        old = (src, for_older(known, run, work / "older" / run.name), for_older(known, adapter, work / "older-second"))
        taking_turns = ": one request at a time" if args.baseline_ref == BEFORE else ""
        servers[f"before ({args.baseline_ref}){taking_turns}"] = old
    results = []
    try:
        for name, (src, served, second) in servers.items():
            for n in (int(x) for x in args.concurrency.split(",")):
                proc, url = start_server(src, served, second, args.threads)
                try:
                    out = asyncio.run(load(url, [run.name, "second"], questions, n, args.max_tokens))
                finally:
                    stop_server(proc)
                results.append({"server": name, "concurrency": n, **out})
                print(f"{name}, {n} concurrent: {out['requests_per_s']:.2f} req/s", file=sys.stderr)
    finally:
        if args.baseline_ref != "none":
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "before")], check=False)

    print(f"\n{args.max_tokens} max tokens, greedy, {args.threads} thread(s), two adapters, every fifth streamed\n")
    print("| server | concurrent | req/s | vs before | p50 s | p95 s | errors | same as alone | mix-ups |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    before = {r["concurrency"]: r["requests_per_s"] for r in results if r["server"].startswith("before")}
    for r in results:
        ratio = f"{r['requests_per_s'] / before[r['concurrency']]:.2f}x" if r["concurrency"] in before else "-"
        print(
            f"| {r['server']} | {r['concurrency']} | {r['requests_per_s']:.2f} | {ratio} | {r['p50_s']:.1f} | "
            f"{r['p95_s']:.1f} | {r['errors']} | {r['same_as_alone']}/{r['requests'] - r['errors']} | {r['mixups']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
