"""Recognise a record's format and normalise it to a `Conversation`.

Formats by the keys a record has (null counts as absent): `messages`/`conversations` (chat, OpenAI `role`/
`content` or ShareGPT `from`/`value` turns), `prompt` + `completion`, alpaca (`instruction` + `output`), `text`
(raw). A `columns` mapping renames our fields to the record's keys. Every problem is a `DataError` naming the
record and field (docs/data.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from tunesmith.data.sources import json_type, safe_text, shown_keys
from tunesmith.data.types import ROLES, Conversation, Message
from tunesmith.errors import ConfigError, DataError, Origin

FIELDS: tuple[str, ...] = ("messages", "prompt", "completion", "instruction", "input", "output", "system", "text")
FORMATS: tuple[str, ...] = ("messages", "prompt_completion", "alpaca", "text")
_ALLOWED_ROLES = ", ".join(f"'{r}'" for r in ROLES)
# ShareGPT's `from` values (the community datasets' format) -> our roles
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "model": "assistant", "bot": "assistant", "system": "system"}  # fmt: skip
TOOL_ROLES = ("tool", "function", "function_call", "observation", "ipython")
_TOOLS = (
    "tool-call turns are not supported yet (tunesmith trains on system/user/assistant text): drop these "
    "records, or flatten the tool call and its result into the assistant and user text"
)


def check_columns(columns: Mapping[str, str] | None) -> dict[str, str]:
    """Validate a column mapping (our field name -> the record's key) and return it as a dict."""
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        reason = f"expected a mapping of field names to column names, got {json_type(columns)}"
        raise ConfigError(reason, field="columns")
    for ours, theirs in columns.items():
        if ours not in FIELDS:
            allowed = ", ".join(f"'{f}'" for f in FIELDS)
            raise ConfigError(
                f"unknown field '{safe_text(str(ours))[:40]}' (expected one of {allowed})", field="columns"
            )
        if not isinstance(theirs, str) or not theirs:
            raise ConfigError("expected a non-empty column name", field=f"columns.{ours}")
    return dict(columns)


def detect_format(record: object, columns: Mapping[str, str] | None = None, origin: Origin | None = None) -> str:
    """The format name of a record (one of `FORMATS`); raise a `DataError` when none fits."""
    return _match(record, _keys(check_columns(columns)), origin)[0]


def normalise(record: object, origin: Origin, columns: Mapping[str, str] | None = None) -> Conversation:
    """Turn one raw record into a validated `Conversation` that keeps the record's origin.

    Keys the format does not use are kept in `Conversation.extra` (ids, metadata...).
    """
    fmt, keys = _match(record, _keys(check_columns(columns)), origin)
    return _BUILDERS[fmt](record, keys, origin)  # type: ignore[arg-type]  # _match found a dict


# --- detection --------------------------------------------------------------------------------------


def _keys(columns: Mapping[str, str]) -> dict[str, str]:
    """Our field name -> the key to read it from in a record."""
    return {name: columns.get(name, name) for name in FIELDS}


def _present(record: dict, key: str) -> bool:
    return record.get(key) is not None


def _match(record: object, keys: dict[str, str], origin: Origin | None) -> tuple[str, dict[str, str]]:
    """The format a record is in and the keys to read it with (the `conversations` alias resolved)."""
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got {json_type(record)}", origin=origin)
    if _present(record, keys["messages"]):
        return "messages", keys
    if keys["messages"] == "messages" and _present(record, "conversations"):
        return "messages", {**keys, "messages": "conversations"}
    for fmt, needed in (("prompt_completion", ("prompt", "completion")), ("alpaca", ("instruction", "output"))):
        if all(_present(record, keys[n]) for n in needed):
            return fmt, keys
    if _present(record, keys["text"]):
        return "text", keys
    raise _no_usable_field(record, keys, origin)


def _no_usable_field(record: dict, keys: dict[str, str], origin: Origin | None) -> DataError:
    expected = (
        f"'{keys['messages']}', '{keys['prompt']}'+'{keys['completion']}', "
        f"'{keys['instruction']}'+'{keys['output']}', '{keys['text']}'"
    )
    present = [k for k, v in record.items() if v is not None]
    found = shown_keys(present)
    if {"chosen", "rejected"} <= set(present):
        return DataError(
            "this is preference data (chosen/rejected answers, for DPO-style tuning): supervised fine-tuning needs "
            "one answer per prompt; preference tuning is not supported yet. To train on the preferred answers, "
            "map them: data.columns.prompt=prompt data.columns.completion=chosen",
            origin=origin,
        )
    texts = [safe_text(k)[:40] for k in present if isinstance(record[k], str)]
    hint = ""
    if set(present) & {*keys.values(), "conversations"}:
        pass  # some of our fields are there: the message says what is missing, a mapping would not help
    elif len(texts) >= 2:
        hint = f"; to train on yours, map them: data.columns.prompt={texts[0]} data.columns.completion={texts[1]}"
    elif texts:
        hint = f"; to train on yours, map it: data.columns.text={texts[0]}"
    return DataError(f"no usable field: expected one of {expected} (found keys: {found}){hint}", origin=origin)


# --- field checks -----------------------------------------------------------------------------------


def _required_text(record: dict, key: str, origin: Origin) -> str:
    """A string field that must hold something other than whitespace."""
    value = record.get(key)
    if value is None:
        raise DataError("missing", origin=origin, field=key)
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {json_type(value)}", origin=origin, field=key)
    if not value.strip():
        raise DataError("is empty", origin=origin, field=key)
    return value


def _optional_text(record: dict, key: str, origin: Origin) -> str | None:
    """A string field that may be absent, null or blank (all meaning 'not given')."""
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {json_type(value)}", origin=origin, field=key)
    return value if value.strip() else None


def _weight(value: object, field: str, origin: Origin) -> int | None:
    """A message weight: absent, 0 or 1. Booleans are refused so `true` is not silently read as 1."""
    if value is None:
        return None
    if isinstance(value, bool):
        reason = f"expected 0 or 1, got {json.dumps(value)} (booleans are not accepted)"
        raise DataError(reason, origin=origin, field=field)
    if not isinstance(value, int) or value not in (0, 1):
        raise DataError(f"expected 0 or 1, got {_show(value)}", origin=origin, field=field)
    return value


def _show(value: object, most: int = 60) -> str:
    """A value as JSON for a one-line message, cut to `most` characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= most else text[: most - 3] + "..."


def _message(item: object, field: str, origin: Origin) -> Message:
    """One chat message, checked for an allowed role, string content and a valid weight. A ShareGPT turn
    (`from` + `value`) is read as its role and content."""
    if not isinstance(item, dict):
        reason = f"expected a message object with 'role' and 'content', got {json_type(item)}"
        raise DataError(reason, origin=origin, field=field)
    if item.get("tool_calls") is not None or item.get("function_call") is not None:
        key = "tool_calls" if item.get("tool_calls") is not None else "function_call"
        raise DataError(_TOOLS, origin=origin, field=f"{field}.{key}")
    if item.get("role") is None and item.get("from") is not None:
        return _sharegpt(item, field, origin)
    role = item.get("role")
    if role in TOOL_ROLES:
        raise DataError(f"role '{role}': {_TOOLS}", origin=origin, field=f"{field}.role")
    if role is None:
        raise DataError(f"missing (allowed roles: {_ALLOWED_ROLES})", origin=origin, field=f"{field}.role")
    if role not in ROLES:
        shown = repr(role) if isinstance(role, str) and len(role) <= 60 else _show(role)
        reason = f"unknown role {shown} (allowed: {_ALLOWED_ROLES})"
        raise DataError(reason, origin=origin, field=f"{field}.role")
    content = item.get("content")
    if content is None:
        raise DataError("missing", origin=origin, field=f"{field}.content")
    if not isinstance(content, str):
        raise DataError(f"expected a string, got {json_type(content)}", origin=origin, field=f"{field}.content")
    return Message(role=role, content=content, weight=_weight(item.get("weight"), f"{field}.weight", origin))


def _sharegpt(item: dict, field: str, origin: Origin) -> Message:
    speaker = item.get("from")
    if speaker in TOOL_ROLES:
        raise DataError(f"'from': '{speaker}': {_TOOLS}", origin=origin, field=f"{field}.from")
    if not isinstance(speaker, str) or speaker.lower() not in SHAREGPT_ROLES:
        allowed = ", ".join(f"'{r}'" for r in ("human", "gpt", "system"))
        raise DataError(f"unknown ShareGPT speaker {_show(speaker)} (allowed: {allowed})", origin=origin,
                        field=f"{field}.from")  # fmt: skip
    value = item.get("value")
    if value is None:
        raise DataError("missing", origin=origin, field=f"{field}.value")
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {json_type(value)}", origin=origin, field=f"{field}.value")
    role = SHAREGPT_ROLES[speaker.lower()]
    return Message(role=role, content=value, weight=_weight(item.get("weight"), f"{field}.weight", origin))  # type: ignore[arg-type]


def _messages(value: object, key: str, origin: Origin) -> list[Message]:
    """A non-empty list of well-formed messages (order is checked separately)."""
    if not isinstance(value, list):
        raise DataError(f"expected a list of messages, got {json_type(value)}", origin=origin, field=key)
    if not value:
        raise DataError("is empty: expected at least a user and an assistant message", origin=origin, field=key)
    return [_message(item, f"{key}[{i}]", origin) for i, item in enumerate(value)]


def _check_order(messages: list[Message], key: str, origin: Origin, last_role: str) -> None:
    """An optional leading system message, then user/assistant turns alternating from user.

    `last_role` is the role the list must end with: "assistant" for a full conversation,
    "user" for a chat-form prompt whose reply is the completion.
    """
    expected = "user"
    for i, message in enumerate(messages):
        field = f"{key}[{i}]"
        if message.role == "system":
            if i != 0:
                reason = "a system message is only allowed as the first message"
                raise DataError(reason, origin=origin, field=f"{field}.role")
            continue
        if message.role != expected:
            reason = (
                f"expected role '{expected}' here, got '{message.role}' "
                "(after an optional system message, user and assistant turns alternate, starting with user)"
            )
            raise DataError(reason, origin=origin, field=f"{field}.role")
        if message.role == "assistant" and not message.content.strip():
            raise DataError("assistant message is empty", origin=origin, field=f"{field}.content")
        if message.content and not message.content.strip():  # "" is a deliberate empty input; "  " a slip
            reason = f'{message.role} message is only whitespace (use "" for a deliberately empty turn)'
            raise DataError(reason, origin=origin, field=f"{field}.content")
        expected = "assistant" if expected == "user" else "user"
    last = messages[-1]
    if last.role != last_role:
        if last_role == "assistant":
            reason = "a trailing user message has no assistant reply; the last message must be from the assistant"
        else:
            reason = f"a chat-form prompt must end with a user message (the completion is the reply), got '{last.role}'"
        raise DataError(reason, origin=origin, field=f"{key}[{len(messages) - 1}].role")


def _extra(record: dict, used: Iterable[str]) -> dict:
    """The record's other non-null keys, kept for later use (ids, metadata)."""
    skip = set(used)
    return {k: v for k, v in record.items() if k not in skip and v is not None}


# --- builders ---------------------------------------------------------------------------------------


def _from_messages(record: dict, keys: dict[str, str], origin: Origin) -> Conversation:
    key = keys["messages"]
    messages = _messages(record[key], key, origin)
    if not any(m.role == "assistant" for m in messages):
        raise DataError("no assistant message: there is nothing to learn from", origin=origin, field=key)
    _check_order(messages, key, origin, last_role="assistant")
    if not any(m.trained for m in messages):
        raise DataError("every message has weight 0: nothing would be trained", origin=origin, field=key)
    turns = record[key]
    fmt = "sharegpt" if any(isinstance(t, dict) and t.get("role") is None for t in turns) else "messages"
    return Conversation(origin=origin, messages=tuple(messages), source_format=fmt, extra=_extra(record, [key]))


def _from_prompt_completion(record: dict, keys: dict[str, str], origin: Origin) -> Conversation:
    prompt_key, completion_key, system_key = keys["prompt"], keys["completion"], keys["system"]
    prompt = record[prompt_key]
    if isinstance(prompt, list):
        turns = _messages(prompt, prompt_key, origin)
        _check_order(turns, prompt_key, origin, last_role="user")
    else:
        turns = [Message("user", _required_text(record, prompt_key, origin))]
    completion = _required_text(record, completion_key, origin)
    system = _optional_text(record, system_key, origin)
    if system is not None and turns[0].role == "system":
        reason = f"given twice: as this field and as the first message of '{prompt_key}'"
        raise DataError(reason, origin=origin, field=system_key)
    head = [Message("system", system)] if system is not None else []
    messages = (*head, *turns, Message("assistant", completion))
    extra = _extra(record, [prompt_key, completion_key, system_key])
    return Conversation(origin=origin, messages=messages, source_format="prompt_completion", extra=extra)


def _from_alpaca(record: dict, keys: dict[str, str], origin: Origin) -> Conversation:
    instruction = _required_text(record, keys["instruction"], origin)
    extra_input = _optional_text(record, keys["input"], origin)
    output = _required_text(record, keys["output"], origin)
    system = _optional_text(record, keys["system"], origin)
    user = f"{instruction}\n\n{extra_input}" if extra_input is not None else instruction
    head = [Message("system", system)] if system is not None else []
    messages = (*head, Message("user", user), Message("assistant", output))
    extra = _extra(record, [keys[n] for n in ("instruction", "input", "output", "system")])
    return Conversation(origin=origin, messages=messages, source_format="alpaca", extra=extra)


def _from_text(record: dict, keys: dict[str, str], origin: Origin) -> Conversation:
    text = _required_text(record, keys["text"], origin)
    return Conversation(origin=origin, text=text, source_format="text", extra=_extra(record, [keys["text"]]))


_BUILDERS = {
    "messages": _from_messages,
    "prompt_completion": _from_prompt_completion,
    "alpaca": _from_alpaca,
    "text": _from_text,
}
