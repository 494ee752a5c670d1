"""A run with a label set (labels.json) answers with one of its labels by default, through `tunesmith
generate`, `tunesmith chat` and the served API; free text is one flag (or one request field) away."""

import builtins
import json
import shutil

import openai
import pytest
from fastapi.testclient import TestClient
from tinyruns import ANSWERS

from tunesmith.cli import main
from tunesmith.runfolder import RunFolder, write_json
from tunesmith.serve.app import create_app
from tunesmith.serve.engine import load_engine

LABELS = ["billing", "shipping", "account status"]
VALID = {"category: " + label for label in LABELS}


@pytest.fixture(scope="module")
def labelled(tiny_runs, tmp_path_factory):
    """A copy of the run trained to answer "Hello! ...", with a labels.json it was not trained on: every
    constrained answer must still be a label, and a free answer is still the trained one."""
    run = tmp_path_factory.mktemp("labelled") / "hello"
    shutil.copytree(tiny_runs["hello"], run, ignore=shutil.ignore_patterns("checkpoints"))
    labels = {"labels": LABELS, "prefix": "category: ", "answer_regex": None, "end_of_turn": True}
    write_json(RunFolder(run).labels, labels)
    return run


def test_generate_answers_with_a_label_unless_free_text(labelled, capsys):
    prompts = ["Say hello", "Where is my order VC-123456?", "How are you?"]
    args = ["generate", str(labelled), *(x for p in prompts for x in ("--prompt", p)), "--max-new-tokens", "24"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    # several prompts: each answer under its numbered prompt, a blank line between
    assert out[0::3] == [f"[{i + 1}] {p}" for i, p in enumerate(prompts)] and out[2::3] == ["", ""]
    assert set(out[1::3]) <= VALID
    assert main([*args, "--free-text"]) == 0
    assert capsys.readouterr().out.splitlines()[1::3] == [ANSWERS["hello"]] * 3


@pytest.mark.parametrize("free", [False, True])
def test_chat_answers_with_a_label_unless_free_text(labelled, monkeypatch, capsys, free):
    lines = iter(["Say hello", "Where is my order VC-123456?", "/quit"])
    monkeypatch.setattr(builtins, "input", lambda prompt="": next(lines))
    assert main(["chat", str(labelled), "--max-new-tokens", "24", *(["--free-text"] if free else [])]) == 0
    out = capsys.readouterr().out.splitlines()
    answers = [line.removeprefix("model> ") for line in out if line.startswith("model> ")]
    if free:
        assert answers == [ANSWERS["hello"]] * 2
    else:
        assert len(answers) == 2 and set(answers) <= VALID


def test_a_trained_answer_goes_on_after_its_label(tiny_runs):
    from tunesmith.data.types import Message
    from tunesmith.generation import LabelSet, generate_answers
    from tunesmith.model.tuned import load_tuned

    model, tok, _ = load_tuned(tiny_runs["hello"])
    convs = [[Message("user", q)] for q in ("Say hello", "Where is my order VC-123456?")]
    goes_on = LabelSet(("Hello", "Bonjour"), "", end_of_turn=False)
    assert generate_answers(model, tok, convs, system_prompt=None, labels=goes_on) == [ANSWERS["hello"]] * 2
    ends = LabelSet(("Hello", "Bonjour"), "", end_of_turn=True)
    assert generate_answers(model, tok, convs, system_prompt=None, labels=ends) == ["Hello"] * 2


def test_a_malformed_label_set_is_a_one_line_error(labelled, tmp_path, capsys):
    run = tmp_path / "bad"
    shutil.copytree(labelled, run)
    RunFolder(run).labels.write_text('{"labels": "billing"}')
    assert main(["generate", str(run), "--prompt", "hi"]) == 2
    assert f"{RunFolder(run).labels}: field 'labels'" in capsys.readouterr().err.replace("\n", "")


@pytest.fixture(scope="module")
def api(labelled, tiny_runs):
    """The served API in-process: the labelled run, plus the labelled run again as an adapter of the "paris"
    run, through the official openai client."""
    apps = {
        "labelled": create_app(load_engine(labelled)),
        "adapter": create_app(load_engine(tiny_runs["paris"], {"cls": str(labelled)})),
        "free": create_app(load_engine(labelled, free_text=True)),
    }
    with TestClient(apps["labelled"]) as a, TestClient(apps["adapter"]) as b, TestClient(apps["free"]) as c:
        yield {
            name: (http, openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=http, max_retries=0))
            for name, http in (("labelled", a), ("adapter", b), ("free", c))
        }


def chat(client, model, question="Say hello", **kw):
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}], **kw)
    return r.choices[0].message.content, r.choices[0].finish_reason


def test_served_chat_answers_with_a_label_unless_the_request_asks_for_free_text(api):
    _, client = api["labelled"]
    for question in ("Say hello", "Where is my order VC-123456?", "I was charged twice"):
        text, finish = chat(client, "hello", question)
        assert text in VALID and finish == "stop"
        assert chat(client, "hello", question, extra_body={"free_text": True}) == (ANSWERS["hello"], "stop")
    stream = client.chat.completions.create(
        model="hello", messages=[{"role": "user", "content": "Say hello"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) in VALID
    assert chat(client, "base", max_tokens=8)[0] not in VALID  # the bare base model has no label set
    text = client.completions.create(model="hello", prompt="The quick brown", max_tokens=5).choices[0].text
    assert not text.startswith("category: ")  # raw completions are not answers: never constrained


def test_served_labels_follow_each_run_and_the_server_flag(api):
    http, client = api["adapter"]
    assert chat(client, "cls")[0] in VALID  # an --adapter run folder brings its own labels.json
    assert chat(client, "paris") == ("Paris.", "stop")  # a run without one answers freely
    assert chat(api["free"][1], "hello") == (ANSWERS["hello"], "stop")  # `serve --free-text`
    r = http.post("/v1/chat/completions", json={"model": "cls", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and json.loads(r.text)["choices"][0]["message"]["content"] in VALID
