"""Continuous batching in the serve engine: requests that join a batch mid-decode answer as they do alone, rows of
two adapters (and the base) in one batch never mix, and a cancelled request frees its row for a waiting one."""

import threading
import time

import pytest

from tunesmith.data.types import Message
from tunesmith.render import render_prompt
from tunesmith.serve.engine import Job, load_engine


@pytest.fixture()
def engine(tiny_runs):
    e = load_engine(tiny_runs["paris"], {"hello": str(tiny_runs["hello"])}, free_text=True)
    yield e
    e.close()


class Collect:
    """A job's emitted text and its end."""

    def __init__(self):
        self.text, self.end, self.done = "", None, threading.Event()
        self.first = threading.Event()

    def __call__(self, event):
        if event[0] == "text":
            self.text += event[1]
            self.first.set()
        else:
            self.end = event
            self.done.set()


def make_job(engine, model: str, question: str, max_tokens: int) -> tuple[Job, Collect]:
    served = engine.models[model]
    prompt = render_prompt([Message("user", question)], engine.tokenizer, system_prompt=served.system_prompt)
    sink = Collect()
    return Job(served, prompt, max_tokens, sink), sink


ASKED = [("paris", "What is the capital of France?", 200), ("hello", "Say hello", 12), ("base", "Help", 12)]


def answers_alone(engine) -> dict[str, str]:
    out = {}
    for model, question, n in ASKED:
        job, sink = make_job(engine, model, question, n)
        engine.submit(job)
        assert sink.done.wait(60)
        out[model] = sink.text
    return out


def test_requests_joining_mid_decode_answer_as_they_do_alone(engine):
    engine.stop_ids = []  # every answer runs to its max_tokens: the first is still decoding when the others join
    engine.start()
    alone = answers_alone(engine)
    assert alone["paris"] != alone["hello"]  # two adapters that answer differently
    jobs = [make_job(engine, *asked) for asked in ASKED]
    engine.submit(jobs[0][0])
    assert jobs[0][1].first.wait(60)  # the first is mid-decode
    for job, _ in jobs[1:]:
        engine.submit(job)
    for _, sink in jobs:
        assert sink.done.wait(60)
    together = {model: sink.text for (model, _, _), (_, sink) in zip(ASKED, jobs)}
    assert together == alone
    assert [sink.end[1:] for _, sink in jobs] == [("length", 200), ("length", 12), ("length", 12)]


def test_two_adapters_in_one_batch_never_mix(engine, tiny_runs):
    engine.start()
    jobs = []
    for i in range(12):  # interleaved, all in the queue before the worker takes them: one batch
        model = ("paris", "hello", "base")[i % 3]
        jobs.append((model, *make_job(engine, model, "What colour is the sky?", 16)))
    for _, job, _ in jobs:
        engine.submit(job)
    for _, _, sink in jobs:
        assert sink.done.wait(60)
    by_model: dict[str, set[str]] = {}
    for model, _, sink in jobs:
        by_model.setdefault(model, set()).add(sink.text)
    assert all(len(texts) == 1 for texts in by_model.values())  # each model: one answer, whatever its neighbours
    assert "Paris" in next(iter(by_model["paris"])) and "Hello" in next(iter(by_model["hello"]))


def test_a_cancelled_request_frees_its_row_for_a_waiting_one(engine):
    engine.max_active = 2  # as `serve --max-batch 2`
    engine.stop_ids = []
    first, first_sink = make_job(engine, "paris", "Help", 100_000)
    second, second_sink = make_job(engine, "hello", "Help", 100_000)
    waiting, waiting_sink = make_job(engine, "base", "Help", 4)
    for job in (first, second, waiting):
        engine.submit(job)
    engine.start()
    assert first_sink.first.wait(60) and second_sink.first.wait(60)
    time.sleep(0.3)
    assert not waiting_sink.done.is_set()  # both rows are taken
    first.cancelled.set()
    assert waiting_sink.done.wait(60)  # the freed row took it
    assert waiting_sink.end == ("done", "length", 4) and not second_sink.done.is_set()
    second.cancelled.set()
    deadline = time.time() + 30
    while engine.served_requests < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert engine.served_requests == 3


def test_each_adapter_decodes_on_its_merged_copy_and_answers_as_generate_does(engine, tiny_runs):
    """Rows of each adapter (and the bare base) decode on that adapter's merged copy, so a served answer is the
    one `tunesmith generate` gives on the same run (and the verified export computes)."""
    from tunesmith.generation import generate_ids
    from tunesmith.model.tuned import load_tuned

    assert set(engine.plain) == {m.adapter for m in engine.models.values()}
    assert all(not hasattr(copy, "peft_config") for copy in engine.plain.values())
    engine.start()
    for model, question, _ in ASKED[:2]:
        job, sink = make_job(engine, model, question, 24)
        engine.submit(job)
        assert sink.done.wait(60)
        tuned, tokenizer, _ = load_tuned(tiny_runs[model])
        expected = generate_ids(tuned, tokenizer, [job.prompt], max_new_tokens=24)[0]
        assert sink.text == tokenizer.decode(expected, skip_special_tokens=True)


def test_a_system_turn_is_computed_once_per_adapter_and_answers_stay_as_generate_gives(engine, tiny_runs, monkeypatch):
    """Requests that start with their model's system turn reuse its keys and values, computed once per adapter and
    kept while the server idles: each request then computes only its own tokens, with the answer `generate` gives."""
    from dataclasses import replace

    from tunesmith.generation import generate_ids
    from tunesmith.model import decode
    from tunesmith.model.tuned import load_tuned

    system = "You are the support desk of a small shop. Answer briefly and politely, in one sentence."
    for name in ("paris", "hello"):
        engine.models[name] = replace(engine.models[name], system_prompt=system)
    computed = []
    real = decode.head_layers
    monkeypatch.setattr(decode, "head_layers", lambda *a: computed.append(tuple(a[2])) or real(*a))
    engine.start()
    asked = [("paris", "What is the capital of France?"), ("hello", "Say hello"), ("paris", "Help"), ("hello", "Hi")]
    got = []
    for model, question in asked:  # one at a time: each batch is empty again before the next request
        job, sink = make_job(engine, model, question, 16)
        engine.submit(job)
        assert sink.done.wait(60)
        got.append((model, job.prompt, sink.text))
    head = engine._heads["paris"]
    assert len(head) >= decode.MIN_SHARED and computed == [tuple(head), tuple(head)]  # once for each adapter
    for model in ("paris", "hello"):
        tuned, tokenizer, _ = load_tuned(tiny_runs[model])
        for _, prompt, text in (g for g in got if g[0] == model):
            expected = generate_ids(tuned, tokenizer, [prompt], max_new_tokens=16)[0]
            assert text == tokenizer.decode(expected, skip_special_tokens=True)


def test_a_job_that_cannot_be_set_up_fails_alone_and_the_worker_goes_on(engine):
    """A sampling seed torch refuses (past 64 bits; the HTTP API answers 400 before it gets here) fails that job with
    an error event; the worker thread lives on and answers the next request."""
    engine.start()
    bad, bad_sink = make_job(engine, "paris", "Help", 4)
    bad.temperature, bad.seed = 1.0, 2**70
    engine.submit(bad)
    assert bad_sink.done.wait(60) and bad_sink.end[0] == "error" and "generation failed" in bad_sink.end[1]
    good, good_sink = make_job(engine, "paris", "What is the capital of France?", 8)
    engine.submit(good)
    assert good_sink.done.wait(60) and good_sink.end[0] == "done"
