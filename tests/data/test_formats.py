"""Tests for tunesmith.data.formats: detection, normalisation of every format, column mapping, and errors."""

from __future__ import annotations

import pytest

from tunesmith.data.formats import check_columns, detect_format, normalise
from tunesmith.data.types import Conversation, Message
from tunesmith.errors import ConfigError, DataError, Origin

ORIGIN = Origin("train.jsonl", 3)
U = {"role": "user", "content": "hi"}
A = {"role": "assistant", "content": "hello"}
S = {"role": "system", "content": "be nice"}


def error(record, columns=None) -> DataError:
    with pytest.raises(DataError) as info:
        normalise(record, ORIGIN, columns)
    return info.value


def assert_error(record, field, reason, columns=None):
    err = error(record, columns)
    assert err.origin == ORIGIN
    assert err.field == field
    prefix = f"train.jsonl:3: field '{field}': " if field else "train.jsonl:3: "
    assert str(err) == prefix + reason


# --- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "fmt"),
    [
        ({"messages": [U, A]}, "messages"),
        ({"conversations": [U, A]}, "messages"),
        ({"prompt": "p", "completion": "c"}, "prompt_completion"),
        ({"instruction": "i", "output": "o"}, "alpaca"),
        ({"instruction": "i", "input": "x", "output": "o"}, "alpaca"),
        ({"text": "t"}, "text"),
        ({"text": None, "prompt": "p", "completion": "c"}, "prompt_completion"),
        ({"messages": None, "text": "t"}, "text"),
    ],
)
def test_detect_format(record, fmt):
    assert detect_format(record) == fmt


def test_no_usable_field_lists_expected_and_found_keys():
    assert_error(
        {"q": "x", "a": "y"},
        None,
        "no usable field: expected one of 'messages', 'prompt'+'completion', 'instruction'+'output', 'text' "
        "(found keys: 'q', 'a'); to train on yours, map them: data.columns.prompt=q data.columns.completion=a",
    )


def test_no_usable_field_suggests_a_mapping_only_when_none_of_ours_is_there():
    assert str(error({"body": "some text", "id": 3})).endswith("; to train on yours, map it: data.columns.text=body")
    assert "map" not in str(error({"prompt": "x", "notes": "y"}))  # a half pair: the completion is missing
    assert "map" not in str(error({"question": "x", "reply": "y"}, columns={"prompt": "question"}))


def test_no_usable_field_ignores_null_keys_and_half_pairs():
    err = error({"prompt": "x", "completion": None})
    assert str(err).endswith("(found keys: 'prompt')")
    assert str(error({})).endswith("(found keys: none)")


def test_no_usable_field_names_mapped_columns():
    err = error({"q": "x"}, columns={"prompt": "question", "completion": "answer"})
    assert "'messages', 'question'+'answer', 'instruction'+'output', 'text'" in str(err)


def test_detect_format_without_origin_raises_plain_message():
    with pytest.raises(DataError) as info:
        detect_format({"q": 1})
    assert str(info.value).startswith("no usable field: ")


def test_record_that_is_not_an_object():
    assert_error([1], None, "expected a JSON object, got list")


# --- messages -------------------------------------------------------------------------------------


def test_messages_normalised_with_weights_and_extra_keys():
    record = {"messages": [S, U, {**A, "weight": 0}, {"role": "user", "content": "more", "weight": 1}, A], "id": 7}
    conv = normalise(record, ORIGIN)
    assert conv == Conversation(
        origin=ORIGIN,
        messages=(
            Message("system", "be nice"),
            Message("user", "hi"),
            Message("assistant", "hello", 0),
            Message("user", "more", 1),
            Message("assistant", "hello"),
        ),
        source_format="messages",
    )
    assert conv.extra == {"id": 7}
    assert not conv.is_text


def test_conversations_key_is_an_alias():
    conv = normalise({"conversations": [U, A]}, ORIGIN)
    assert conv.messages == (Message("user", "hi"), Message("assistant", "hello"))
    assert conv.source_format == "messages"


def test_messages_column_mapping_and_field_names_use_the_records_key():
    conv = normalise({"dialog": [U, A]}, ORIGIN, columns={"messages": "dialog"})
    assert conv.reference() == "hello"
    assert_error(
        {"dialog": [U, {"role": "bot", "content": "x"}]},
        "dialog[1].role",
        "unknown role 'bot' (allowed: 'system', 'user', 'assistant')",
        columns={"messages": "dialog"},
    )


def test_conversations_alias_errors_name_conversations():
    assert_error({"conversations": "x"}, "conversations", "expected a list of messages, got string")


@pytest.mark.parametrize(
    ("messages", "field", "reason"),
    [
        ("hi", "messages", "expected a list of messages, got string"),
        ([], "messages", "is empty: expected at least a user and an assistant message"),
        ([U, "hello"], "messages[1]", "expected a message object with 'role' and 'content', got string"),
        ([U, {"content": "x"}], "messages[1].role", "missing (allowed roles: 'system', 'user', 'assistant')"),
        (
            [U, A, {"role": "human", "content": "x"}],
            "messages[2].role",
            "unknown role 'human' (allowed: 'system', 'user', 'assistant')",
        ),
        (
            [U, {"role": "gpt", "content": "x"}],
            "messages[1].role",
            "unknown role 'gpt' (allowed: 'system', 'user', 'assistant')",
        ),
        ([U, {"role": "assistant"}], "messages[1].content", "missing"),
        ([U, {"role": "assistant", "content": ["part"]}], "messages[1].content", "expected a string, got list"),
        ([{**U, "content": 5}, A], "messages[0].content", "expected a string, got number"),
        ([U, {**A, "weight": 2}], "messages[1].weight", "expected 0 or 1, got 2"),
        ([U, {**A, "weight": 0.5}], "messages[1].weight", "expected 0 or 1, got 0.5"),
        ([U, {**A, "weight": "1"}], "messages[1].weight", 'expected 0 or 1, got "1"'),
        ([U, {**A, "weight": True}], "messages[1].weight", "expected 0 or 1, got true (booleans are not accepted)"),
        ([U, A, S, U, A], "messages[2].role", "a system message is only allowed as the first message"),
        ([S, U], "messages", "no assistant message: there is nothing to learn from"),
        ([U, {"role": "assistant", "content": "  \n"}], "messages[1].content", "assistant message is empty"),
        (
            [A, U, A],
            "messages[0].role",
            "expected role 'user' here, got 'assistant' "
            "(after an optional system message, user and assistant turns alternate, starting with user)",
        ),
        (
            [S, U, U, A],
            "messages[2].role",
            "expected role 'assistant' here, got 'user' "
            "(after an optional system message, user and assistant turns alternate, starting with user)",
        ),
        (
            [U, A, A],
            "messages[2].role",
            "expected role 'user' here, got 'assistant' "
            "(after an optional system message, user and assistant turns alternate, starting with user)",
        ),
        (
            [U, A, U],
            "messages[2].role",
            "a trailing user message has no assistant reply; the last message must be from the assistant",
        ),
        ([U, {**A, "weight": 0}], "messages", "every message has weight 0: nothing would be trained"),
    ],
)
def test_messages_errors(messages, field, reason):
    assert_error({"messages": messages}, field, reason)


def test_empty_user_content_is_allowed():
    conv = normalise({"messages": [{"role": "user", "content": ""}, A]}, ORIGIN)
    assert conv.messages[0].content == ""


# --- prompt / completion --------------------------------------------------------------------------


def test_prompt_completion_becomes_user_and_assistant():
    conv = normalise({"prompt": "2+2?", "completion": "4", "id": "a"}, ORIGIN)
    assert conv.messages == (Message("user", "2+2?"), Message("assistant", "4"))
    assert conv.source_format == "prompt_completion"
    assert conv.origin == ORIGIN
    assert conv.extra == {"id": "a"}


def test_prompt_completion_with_system_field():
    conv = normalise({"system": "terse", "prompt": "p", "completion": "c"}, ORIGIN)
    assert conv.messages == (Message("system", "terse"), Message("user", "p"), Message("assistant", "c"))


@pytest.mark.parametrize("system", ["", "  ", None])
def test_blank_system_field_is_ignored(system):
    conv = normalise({"system": system, "prompt": "p", "completion": "c"}, ORIGIN)
    assert [m.role for m in conv.messages] == ["user", "assistant"]


def test_prompt_as_chat_messages():
    record = {"prompt": [S, U, A, {"role": "user", "content": "again"}], "completion": "done"}
    conv = normalise(record, ORIGIN)
    assert conv.messages == (
        Message("system", "be nice"),
        Message("user", "hi"),
        Message("assistant", "hello"),
        Message("user", "again"),
        Message("assistant", "done"),
    )
    assert conv.prompt_messages()[-1] == Message("user", "again")
    assert conv.reference() == "done"


def test_prompt_completion_column_mapping():
    columns = {"prompt": "question", "completion": "answer", "system": "persona"}
    conv = normalise({"question": "q?", "answer": "a.", "persona": "p", "other": 1}, ORIGIN, columns)
    assert conv.messages == (Message("system", "p"), Message("user", "q?"), Message("assistant", "a."))
    assert conv.extra == {"other": 1}
    assert_error({"question": "q?", "answer": 3}, "answer", "expected a string, got number", columns)


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({"prompt": "", "completion": "c"}, "prompt", "is empty"),
        ({"prompt": " \t", "completion": "c"}, "prompt", "is empty"),
        ({"prompt": 3, "completion": "c"}, "prompt", "expected a string, got number"),
        ({"prompt": "p", "completion": ""}, "completion", "is empty"),
        ({"prompt": "p", "completion": ["c"]}, "completion", "expected a string, got list"),
        ({"prompt": "p", "completion": "c", "system": 1}, "system", "expected a string, got number"),
        ({"prompt": [], "completion": "c"}, "prompt", "is empty: expected at least a user and an assistant message"),
        (
            {"prompt": [U, A], "completion": "c"},
            "prompt[1].role",
            "a chat-form prompt must end with a user message (the completion is the reply), got 'assistant'",
        ),
        (
            {"prompt": [U, {"role": "tool", "content": "x"}], "completion": "c"},
            "prompt[1].role",
            "role 'tool': tool-call turns are not supported yet (tunesmith trains on system/user/assistant text): "
            "drop these records, or flatten the tool call and its result into the assistant and user text",
        ),
        (
            {"prompt": [S, U], "completion": "c", "system": "s"},
            "system",
            "given twice: as this field and as the first message of 'prompt'",
        ),
    ],
)
def test_prompt_completion_errors(record, field, reason):
    assert_error(record, field, reason)


# --- alpaca ---------------------------------------------------------------------------------------


def test_alpaca_with_input_joins_instruction_and_input():
    conv = normalise({"instruction": "Translate.", "input": "Bonjour", "output": "Hello"}, ORIGIN)
    assert conv.messages == (Message("user", "Translate.\n\nBonjour"), Message("assistant", "Hello"))
    assert conv.source_format == "alpaca"


@pytest.mark.parametrize("extra_input", ["", "   ", None, "absent"])
def test_alpaca_without_input(extra_input):
    record = {"instruction": "Say hi.", "output": "Hi"}
    if extra_input != "absent":
        record["input"] = extra_input
    conv = normalise(record, ORIGIN)
    assert conv.messages[0] == Message("user", "Say hi.")


def test_alpaca_with_system_and_columns():
    columns = {"instruction": "task", "input": "context", "output": "answer"}
    record = {"task": "Sum.", "context": "1 2", "answer": "3", "system": "math"}
    conv = normalise(record, ORIGIN, columns)
    assert conv.messages == (Message("system", "math"), Message("user", "Sum.\n\n1 2"), Message("assistant", "3"))
    assert conv.extra == {}


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({"instruction": "", "output": "o"}, "instruction", "is empty"),
        ({"instruction": "i", "output": " "}, "output", "is empty"),
        ({"instruction": "i", "output": 1}, "output", "expected a string, got number"),
        ({"instruction": "i", "input": ["x"], "output": "o"}, "input", "expected a string, got list"),
    ],
)
def test_alpaca_errors(record, field, reason):
    assert_error(record, field, reason)


# --- text -----------------------------------------------------------------------------------------


def test_text_record():
    conv = normalise({"text": "Once upon a time.", "source": "wiki"}, ORIGIN)
    assert conv == Conversation(origin=ORIGIN, text="Once upon a time.", source_format="text")
    assert conv.is_text and conv.messages == ()
    assert conv.extra == {"source": "wiki"}


def test_text_column_mapping():
    assert normalise({"body": "x"}, ORIGIN, {"text": "body"}).text == "x"


@pytest.mark.parametrize(
    ("value", "reason"), [("", "is empty"), ("\n\n", "is empty"), (["a"], "expected a string, got list")]
)
def test_text_errors(value, reason):
    assert_error({"text": value}, "text", reason)


# --- column mapping validation --------------------------------------------------------------------


def test_check_columns():
    assert check_columns(None) == {}
    assert check_columns({"prompt": "q"}) == {"prompt": "q"}
    with pytest.raises(ConfigError, match="unknown field 'promt'"):
        check_columns({"promt": "q"})
    with pytest.raises(ConfigError, match="field 'columns.prompt': expected a non-empty column name"):
        check_columns({"prompt": ""})
    with pytest.raises(ConfigError, match="expected a mapping"):
        check_columns(["prompt"])
