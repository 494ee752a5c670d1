"""Formats users bring from community datasets: ShareGPT turns are read (and said so), tool-call turns and
preference pairs get an error that says what they are, a hub id gets a hint or a clear offline error."""

from __future__ import annotations

import json

import pytest

from tunesmith.data import load_conversations, normalise
from tunesmith.errors import DataError


def test_sharegpt_turns_are_read_as_roles():
    record = {
        "id": "a1",
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Capital of France?"},
            {"from": "gpt", "value": "Paris."},
        ],
    }
    conv = normalise(record, "f.jsonl:1")
    assert conv.source_format == "sharegpt"
    assert [(m.role, m.content) for m in conv.messages] == [
        ("system", "Be brief."),
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
    ]
    assert conv.extra == {"id": "a1"}
    mixed = normalise({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, "f:2")
    assert mixed.source_format == "messages"


@pytest.mark.parametrize(
    ("record", "field", "says"),
    [
        ({"conversations": [{"from": "alien", "value": "x"}]}, "conversations[0].from", "unknown ShareGPT speaker"),
        ({"conversations": [{"from": "human"}]}, "conversations[0].value", "missing"),
        (
            {"conversations": [{"from": "human", "value": "x"}, {"from": "function_call", "value": "{}"}]},
            "conversations[1].from",
            "tool-call turns are not supported",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "", "tool_calls": [{}]}]},
            "messages[1].tool_calls",
            "tool-call turns are not supported",
        ),
        ({"messages": [{"role": "tool", "content": "42"}]}, "messages[0].role", "tool-call turns are not supported"),
    ],
)
def test_unsupported_turns_are_named(record, field, says):
    with pytest.raises(DataError) as err:
        normalise(record, "f.jsonl:3")
    assert err.value.field == field and says in err.value.reason


def test_preference_data_is_recognised():
    with pytest.raises(DataError, match="this is preference data") as err:
        normalise({"prompt": "Which?", "chosen": "A", "rejected": "B"}, "p.jsonl:1")
    assert "data.columns.completion=chosen" in err.value.reason


def test_a_hub_id_gets_a_hint_and_hf_urls_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"no such file \(for a Hugging Face hub dataset, write hf://tatsu-lab/alpaca"):
        load_conversations("tatsu-lab/alpaca")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        load_conversations("hf://tatsu-lab/alpaca:train")
    # offline (or without the `datasets` package): one line saying so, naming the dataset
    assert str(err.value).startswith("hf://tatsu-lab/alpaca:train: ")
    assert "offline" in err.value.reason or "needs the `datasets` package" in err.value.reason
    with pytest.raises(DataError, match="not a hub dataset id"):
        load_conversations("hf://../etc")


def test_a_sharegpt_file_trains_like_a_messages_file(tmp_path):
    rows = [
        {"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]} for i in range(3)
    ]
    path = tmp_path / "sg.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    convs = load_conversations(path)
    assert [c.reference() for c in convs] == ["a0", "a1", "a2"] and {c.source_format for c in convs} == {"sharegpt"}
