"""A real `tunesmith serve` process on a free loopback port, spoken to by the official `openai` client."""

import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai
import pytest
from tinyruns import ANSWERS

KEY = "test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc, url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("server did not start in time")


@contextlib.contextmanager
def running_server(tiny_runs, max_tokens: int):
    """A real `tunesmith serve` of the paris run plus the hello adapter on a free loopback port, with an API key."""
    port = free_port()
    cmd = [sys.executable, "-m", "tunesmith.cli", "serve", str(tiny_runs["paris"]), "--adapter"]
    cmd += [f"hello={tiny_runs['hello']}", "--port", str(port), "--api-key", KEY, "--max-tokens", str(max_tokens)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url)
        yield {"url": url, "proc": proc}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise


@pytest.fixture(scope="module")
def server(tiny_runs):
    with running_server(tiny_runs, 512) as running:
        yield running


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=60)


def ask(client, model, question="What is the capital of France?", **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}], **kw)


def raw(server, path, body: bytes, key=KEY):
    req = urllib.request.Request(
        server["url"] + path,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_models_lists_the_run_the_adapters_and_the_base(client):
    assert [m.id for m in client.models.list()] == ["paris", "hello", "base"]


def test_plain_chat(client):
    r = ask(client, "paris")
    assert r.choices[0].message.content == ANSWERS["paris"]
    assert r.choices[0].finish_reason == "stop" and r.model == "paris"
    assert r.usage.completion_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_chat(client):
    stream = ask(client, "hello", stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWERS["hello"]
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens > 0


def test_two_adapters_answer_differently_on_one_base(client):
    for question in ("Where is my order VC-123456?", "Say hello"):
        assert ask(client, "paris", question).choices[0].message.content == ANSWERS["paris"]
        assert ask(client, "hello", question).choices[0].message.content == ANSWERS["hello"]
        assert ask(client, "base", question, max_tokens=8).choices[0].message.content not in ANSWERS.values()


def test_completions_plain_and_streamed(client):
    r = client.completions.create(model="base", prompt="The quick brown", max_tokens=5)
    assert r.choices[0].finish_reason in ("length", "stop") and r.usage.completion_tokens <= 5
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model="base", prompt="The quick brown", max_tokens=5, stream=True)
        if c.choices
    )
    assert streamed == r.choices[0].text


def test_stop_strings_cut_the_answer(client):
    r = ask(client, "hello", stop=["How"])
    assert r.choices[0].message.content == "Hello! " and r.choices[0].finish_reason == "stop"


def test_fifty_concurrent_requests(server):
    async def main():
        client = openai.AsyncOpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=120)

        async def one(i):
            model = ("paris", "hello")[i % 2]
            t = time.perf_counter()
            if i % 5 == 0:  # some streamed
                stream = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"Help #{i}"}], stream=True
                )
                text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            else:
                r = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"Help #{i}"}]
                )
                text = r.choices[0].message.content
            return model, text, time.perf_counter() - t

        start = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(50)), return_exceptions=True)
        await client.close()
        return results, time.perf_counter() - start

    results, wall = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    assert all(text == ANSWERS[model] for model, text, _ in results)  # no adapter mix-up under load
    latencies = sorted(t for *_, t in results)
    print(
        f"\n50 concurrent chat requests: {50 / wall:.1f} req/s, latency p50 {statistics.median(latencies):.3f} s, "
        f"p95 {latencies[int(0.95 * 49)]:.3f} s, max {latencies[-1]:.3f} s, wall {wall:.2f} s"
    )


def test_two_hundred_concurrent_requests_and_abandoned_clients_dropped(server):
    """200 at once: no errors, every answer right. While they run, 40 clients that give up after 0.05 s: their
    requests are dropped (the queue is empty again within seconds) and the server still answers at once."""

    async def burst():
        client = openai.AsyncOpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=300)
        ask = [
            client.chat.completions.create(
                model=("paris", "hello")[i % 2], messages=[{"role": "user", "content": f"Help #{i}"}]
            )
            for i in range(200)
        ]
        answering = asyncio.gather(*ask, return_exceptions=True)
        await asyncio.sleep(0.5)  # the 200 are queued or decoding: the impatient ones wait behind them
        impatient = openai.AsyncOpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=0.05)
        gone = [
            impatient.completions.create(model="paris", prompt=f"Write a long story #{i}", max_tokens=200)
            for i in range(40)
        ]
        abandoned = await asyncio.gather(*gone, return_exceptions=True)
        results = await answering
        await client.close()
        await impatient.close()
        return results, abandoned

    results, abandoned = asyncio.run(burst())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    assert [r.choices[0].message.content for r in results] == [ANSWERS[("paris", "hello")[i % 2]] for i in range(200)]
    assert sum(isinstance(r, openai.APITimeoutError) for r in abandoned) >= 20, abandoned[:3]
    deadline = time.time() + 20
    while time.time() < deadline:
        with urllib.request.urlopen(server["url"] + "/health", timeout=5) as r:
            if json.loads(r.read())["waiting"] == 0:
                break
        time.sleep(0.2)
    else:
        raise AssertionError("abandoned requests were still queued 20 s later")
    client = openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=60)
    assert ask(client, "paris").choices[0].message.content == ANSWERS["paris"]


def test_errors_are_clear_4xx(server, client):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        ask(client, "nope")
    with pytest.raises(openai.BadRequestError, match="over this server's limit"):
        ask(client, "paris", max_tokens=100_000)
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="paris", messages=[])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server["url"] + "/v1", api_key="wrong", max_retries=0).models.list()
    status, body = raw(server, "/v1/chat/completions", b'{"model": "paris", "messages": [')
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = raw(
        server,
        "/v1/chat/completions",
        json.dumps({"model": "paris", "messages": [{"role": "user", "content": "x" * (2 << 20)}]}).encode(),
    )
    assert status == 413 and body["error"]["type"] == "request_too_large"
    status, body = raw(
        server,
        "/v1/chat/completions",
        json.dumps({"model": "paris", "messages": [{"role": "robot", "content": "hi"}]}).encode(),
    )
    assert status == 400 and "messages.0.role" in body["error"]["message"]
    status, body = raw(server, "/v1/completions", json.dumps({"model": "paris", "prompt": "hi", "n": 3}).encode())
    assert status == 400 and body["error"]["param"] == "n"
    big_seed = {"model": "paris", "prompt": "hi", "temperature": 1.0, "seed": 2**70}  # past 64 bits: torch refuses it
    status, body = raw(server, "/v1/completions", json.dumps(big_seed).encode())
    assert status == 400 and body["error"]["param"] == "seed"
    assert ask(client, "paris").choices[0].message.content == ANSWERS["paris"]  # still serving after all that


def test_sigterm_finishes_the_request_in_flight_then_exits(server):
    """Graceful shutdown: the streamed answer in progress completes, then the process exits. (Runs last.)"""
    req = urllib.request.Request(
        server["url"] + "/v1/completions",
        method="POST",
        data=json.dumps({"model": "base", "prompt": "The quick brown", "max_tokens": 200, "stream": True}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        first = r.readline()
        assert first.startswith(b"data: ")
        server["proc"].send_signal(signal.SIGTERM)
        rest = r.read().decode()
    assert rest.rstrip().endswith("data: [DONE]")
    # uvicorn re-raises the signal it caught once it has shut down, so "terminated by SIGTERM" is a clean exit
    assert server["proc"].wait(60) in (0, -signal.SIGTERM)
    assert "Traceback" not in server["proc"].stderr.read()


def test_non_loopback_host_needs_an_api_key(tiny_runs, capsys):
    from tunesmith.cli import main

    assert main(["serve", str(tiny_runs["paris"]), "--host", "0.0.0.0"]) == 2
    assert "--api-key" in capsys.readouterr().err
