"""Tests for tunesmith.data.loader: loading every file type, problem listing, and the eval split."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tunesmith.data as data
from tunesmith.data import Conversation, Message, find_problems, load_conversations, split_eval
from tunesmith.errors import ConfigError, DataError, Origin

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def jsonl(path, rows: list) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_public_names_are_exported():
    for name in (
        "read_records",
        "normalise",
        "detect_format",
        "load_conversations",
        "find_problems",
        "split_eval",
        "Conversation",
        "Message",
    ):
        assert hasattr(data, name)


# --- load_conversations ---------------------------------------------------------------------------


def test_load_jsonl_mixing_chat_formats(tmp_path):
    path = jsonl(
        tmp_path / "train.jsonl",
        [
            CHAT,
            {"prompt": "p", "completion": "c"},
            {"instruction": "i", "input": "x", "output": "o"},
        ],
    )
    convs = load_conversations(path)
    assert [c.source_format for c in convs] == ["messages", "prompt_completion", "alpaca"]
    assert [str(c.origin) for c in convs] == [f"{path}:1", f"{path}:2", f"{path}:3"]
    assert convs[2].messages[0] == Message("user", "i\n\nx")


def test_load_json_with_columns(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"data": [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": "a2"}]}))
    convs = load_conversations(path, columns={"prompt": "question", "completion": "answer"})
    assert [c.messages for c in convs] == [
        (Message("user", "q1"), Message("assistant", "a1")),
        (Message("user", "q2"), Message("assistant", "a2")),
    ]
    assert convs[1].origin == Origin(str(path), 2)


def test_load_csv_and_tsv(tmp_path):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("instruction,input,output\nAdd.,1 2,3\nGreet.,,Hi\n")
    convs = load_conversations(csv_path)
    assert [c.messages[0].content for c in convs] == ["Add.\n\n1 2", "Greet."]
    assert [c.origin.line for c in convs] == [2, 3]
    tsv_path = tmp_path / "train.tsv"
    tsv_path.write_text("text\nfirst doc\nsecond doc\n")
    assert [c.text for c in load_conversations(tsv_path)] == ["first doc", "second doc"]


def test_load_parquet_text(tmp_path):
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"text": ["a", "b"]}), path)
    convs = load_conversations(path)
    assert convs == [
        Conversation(origin=Origin(str(path), 1), text="a", source_format="text"),
        Conversation(origin=Origin(str(path), 2), text="b", source_format="text"),
    ]


def test_load_parquet_with_null_columns_of_other_formats(tmp_path):
    path = tmp_path / "train.parquet"
    pq.write_table(
        pa.table({"prompt": ["p", None], "completion": ["c", None], "instruction": [None, "i"], "output": [None, "o"]}),
        path,
    )
    assert [c.source_format for c in load_conversations(path)] == ["prompt_completion", "alpaca"]


def test_load_raises_first_record_error(tmp_path):
    path = jsonl(tmp_path / "train.jsonl", [CHAT, {"q": 1}, "not json"])
    with pytest.raises(DataError) as info:
        load_conversations(path)
    assert str(info.value).startswith(f"{path}:2: no usable field:")


def test_load_rejects_text_mixed_with_chat_at_first_offender(tmp_path):
    path = jsonl(tmp_path / "train.jsonl", [{"text": "doc"}, {"text": "doc2"}, CHAT, {"text": "doc3"}])
    with pytest.raises(DataError) as info:
        load_conversations(path)
    assert str(info.value) == (
        f"{path}:3: raw text and chat records are mixed: this record is chat ('messages') but the first record "
        f"({path}:1) is raw text ('text'); use one kind per file"
    )


def test_load_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_conversations(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="unknown field 'answer'"):
        load_conversations(tmp_path / "missing.jsonl", columns={"answer": "a"})


# --- find_problems --------------------------------------------------------------------------------


def test_find_problems_keeps_going_past_bad_records(tmp_path):
    path = jsonl(
        tmp_path / "train.jsonl",
        [
            CHAT,
            "{broken",
            {"q": 1},
            {"messages": [{"role": "user", "content": "x"}]},
            [1],
            {"prompt": "p", "completion": "c"},
        ],
    )
    problems, total = find_problems(path)
    assert total == 4
    assert [str(p.origin) for p in problems] == [f"{path}:2", f"{path}:3", f"{path}:4", f"{path}:5"]
    assert problems[2].field == "messages"
    assert all(isinstance(p, DataError) for p in problems)


def test_find_problems_respects_limit_but_counts_all(tmp_path):
    path = jsonl(tmp_path / "train.jsonl", [{"text": ""}] * 7)
    problems, total = find_problems(path, limit=3)
    assert total == 7
    assert [p.origin.line for p in problems] == [1, 2, 3]


def test_find_problems_reports_a_text_chat_mix_once(tmp_path):
    path = jsonl(tmp_path / "train.jsonl", [{"text": " "}, CHAT, {"text": "doc"}, CHAT, {"text": "d2"}, {"text": ""}])
    problems, total = find_problems(path)
    assert total == 3
    assert str(problems[0]) == f"{path}:1: field 'text': is empty"
    assert str(problems[1]) == (
        f"{path}:3: raw text and chat records are mixed: this record is raw text ('text') but the first record "
        f"({path}:2) is chat ('messages'); use one kind per file"
    )
    assert str(problems[2]) == f"{path}:6: field 'text': is empty"


def test_find_problems_file_level_error_is_the_only_one(tmp_path):
    problems, total = find_problems(tmp_path / "train.jsonl")
    assert total == 1 and str(problems[0]) == f"{tmp_path / 'train.jsonl'}: no such file"
    empty = tmp_path / "x.txt"
    empty.write_text("x")
    problems, total = find_problems(empty)
    assert total == 1 and "unsupported file type '.txt'" in str(problems[0])


def test_find_problems_on_a_clean_file_and_columns(tmp_path):
    path = jsonl(tmp_path / "train.jsonl", [{"question": "q", "answer": "a"}])
    assert find_problems(path, columns={"prompt": "question", "completion": "answer"}) == ([], 0)


def test_find_problems_file_level_error_after_record_errors(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('text\n\n"open quote\n')
    problems, total = find_problems(path)
    assert total == 1 and str(problems[0]) == f"{path}:3: invalid CSV: unexpected end of data"
    path.write_text('text,id\nx\n"open quote\n')
    problems, total = find_problems(path)
    assert total == 2
    assert str(problems[0]) == f"{path}:2: row has 1 fields but the header has 2"


# --- split_eval -----------------------------------------------------------------------------------


def convs(n: int) -> list[Conversation]:
    return [Conversation(origin=Origin("t.jsonl", i + 1), text=f"doc {i}", source_format="text") for i in range(n)]


def test_split_is_seeded_deterministic_and_a_partition():
    items = convs(20)
    train, evaluation = split_eval(items, 0.25, seed=3)
    assert (train, evaluation) == split_eval(items, 0.25, seed=3)
    assert len(evaluation) == 5 and len(train) == 15
    assert sorted(c.origin.line for c in train + evaluation) == list(range(1, 21))
    assert [c.origin.line for c in evaluation] == sorted(c.origin.line for c in evaluation)
    assert split_eval(items, 0.25, seed=4)[1] != evaluation


def test_split_matches_a_seeded_shuffle_of_indices():
    import random

    items = convs(10)
    order = list(range(10))
    random.Random(7).shuffle(order)
    _, evaluation = split_eval(items, 0.3, seed=7)
    assert [c.origin.line - 1 for c in evaluation] == sorted(order[:3])


@pytest.mark.parametrize(("n", "fraction", "eval_size"), [(2, 0.1, 1), (10, 0.01, 1), (3, 0.9, 2), (7, 0.5, 4)])
def test_split_sizes(n, fraction, eval_size):
    train, evaluation = split_eval(convs(n), fraction, seed=0)
    assert len(evaluation) == eval_size and len(train) == n - eval_size


@pytest.mark.parametrize("n", [0, 1])
def test_split_needs_two_records(n):
    with pytest.raises(DataError, match=f"need at least 2 records to split off an eval set, got {n}"):
        split_eval(convs(n), 0.1, seed=0)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, True])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(ConfigError, match="eval fraction must be between 0 and 1"):
        split_eval(convs(5), fraction, seed=0)
