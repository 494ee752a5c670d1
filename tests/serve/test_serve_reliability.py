"""Serving under load and abuse: requests decode in one batch that others join and leave at any step (continuous
batching), abandoned or late ones are dropped and free their row, a full queue says 503."""

import threading
import time

import pytest
from fastapi.testclient import TestClient

from tunesmith.serve.app import Limits, create_app
from tunesmith.serve.engine import Job, load_engine

SLICE = 16  # a unit of answer length in these tests


@pytest.fixture()
def engine(tiny_runs):
    e = load_engine(tiny_runs["paris"], free_text=True)
    e.stop_ids = []  # every answer runs to its max_tokens: lengths under the test's control
    return e


def job(engine, events, name, max_tokens, **kw):
    served = next(iter(engine.models.values()))
    prompt = list(engine.tokenizer("Tell me about Paris").input_ids)
    done = threading.Event()

    def emit(event):
        if event[0] != "text":
            events.append((name, *event))
            done.set()

    j = Job(served, prompt, max_tokens, emit, **kw)
    j.done = done  # type: ignore[attr-defined]
    return j


def test_short_requests_finish_while_a_long_one_runs(engine):
    events: list[tuple] = []
    long = job(engine, events, "long", 20 * SLICE)
    shorts = [job(engine, events, f"short{i}", 4) for i in range(3)]
    for j in [long, *shorts]:
        engine.submit(j)
    engine.start()
    try:
        assert long.done.wait(120)
    finally:
        engine.close()
    order = [e[0] for e in events]
    assert order[-1] == "long" and sorted(order[:3]) == ["short0", "short1", "short2"]
    assert all(e[1] == "done" for e in events)
    assert {e[0]: e[3] for e in events} == {"long": 20 * SLICE, "short0": 4, "short1": 4, "short2": 4}


def test_joining_a_running_batch_gives_the_same_answer_as_alone(engine):
    events: list[tuple] = []
    texts: dict[str, str] = {"a": "", "b": ""}
    served = next(iter(engine.models.values()))
    prompt = list(engine.tokenizer("Tell me about Paris").input_ids)

    def collector(name):
        def emit(event):
            if event[0] == "text":
                texts[name] += event[1]
            else:
                events.append(name)

        return emit

    alone = Job(served, prompt, 3 * SLICE, collector("a"))
    engine.start()
    engine.submit(alone)
    deadline = time.time() + 60
    while "a" not in events and time.time() < deadline:
        time.sleep(0.05)
    # the same request again, now in a batch with another one that joined first
    engine.submit(Job(served, prompt, 3 * SLICE, collector("b")))
    engine.submit(Job(served, list(engine.tokenizer("Hello").input_ids), 3 * SLICE, lambda e: None))
    while "b" not in events and time.time() < deadline:
        time.sleep(0.05)
    engine.close()
    assert texts["a"] and texts["a"] == texts["b"]


def test_cancelled_and_expired_requests_never_generate(engine):
    events: list[tuple] = []
    gone = job(engine, events, "gone", 50)
    gone.cancelled.set()
    late = job(engine, events, "late", 50, deadline=time.monotonic() - 1)
    fine = job(engine, events, "fine", 2)
    for j in (gone, late, fine):
        engine.submit(j)
    engine.start()
    assert fine.done.wait(60)
    engine.close()
    assert [e[:2] for e in events] == [("late", "error"), ("fine", "done")]
    assert events[0][3] == "timeout"
    assert engine.served_requests == 3


def test_a_running_request_past_its_deadline_stops_with_a_timeout(engine):
    events: list[tuple] = []
    slow = job(engine, events, "slow", 100_000, deadline=time.monotonic() + 1.0)
    engine.submit(slow)
    engine.start()
    assert slow.done.wait(60)
    engine.close()
    assert events[0][1:2] == ("error",) and events[0][3] == "timeout"


def test_a_full_queue_answers_503_with_retry_after(tiny_runs):
    engine = load_engine(tiny_runs["paris"], max_queue=1)  # its worker is not started: nothing leaves the queue
    engine.submit(job(engine, [], "filler", 1))
    client = TestClient(create_app(engine))  # no `with`: the app's lifespan (which starts the worker) never runs
    r = client.post("/v1/chat/completions", json={"model": "paris", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["error"]["type"] == "server_busy"


def test_a_request_that_waits_past_its_time_limit_gets_504(tiny_runs):
    engine = load_engine(tiny_runs["paris"])  # not started: the request waits in the queue until its limit
    client = TestClient(create_app(engine, limits=Limits(request_timeout=0.6)))  # no `with`: no worker
    started = time.monotonic()
    r = client.post("/v1/chat/completions", json={"model": "paris", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout"
    assert time.monotonic() - started < 10
