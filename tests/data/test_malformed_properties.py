"""Property tests: whatever bytes, text or JSON a data file or config holds, reading it gives a parsed result
or a `TunesmithError` with a one-line message, never another exception (a traceback) or a hang.

Hypothesis draws the inputs; `database=None` keeps it from writing a folder into the checkout.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunesmith.config import Config, build_config, load_config, parse_overrides
from tunesmith.data import find_problems, load_conversations, normalise
from tunesmith.data.sources import MAX_DEPTH, scan_records, value_problem
from tunesmith.data.types import Conversation
from tunesmith.errors import Origin, TunesmithError

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SUFFIXES = [".jsonl", ".json", ".csv", ".tsv", ".parquet"]
ORIGIN = Origin("mem.jsonl", 1)

# every code point, lone surrogates included (hypothesis leaves them out by default)
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)
ROLE = st.sampled_from(["user", "assistant", "system", "bot", ""]) | JSON_SCALARS
MESSAGE = st.fixed_dictionaries(
    {"role": ROLE, "content": ANY_TEXT | JSON_SCALARS}, optional={"weight": st.sampled_from([0, 1, 2, True, None, "1"])}
)
RECORD = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=5) | JSON}),
    st.fixed_dictionaries({"prompt": ANY_TEXT | st.lists(MESSAGE, max_size=3), "completion": ANY_TEXT | JSON}),
    st.fixed_dictionaries({"instruction": ANY_TEXT, "output": ANY_TEXT}, optional={"input": JSON, "system": JSON}),
    st.fixed_dictionaries({"text": ANY_TEXT | JSON}),
    JSON,
)


def one_line(err: TunesmithError) -> None:
    message = str(err)
    assert "\n" not in message and "\r" not in message, message
    assert message.strip(), "an empty message"


def read_all(path: Path) -> None:
    """Every reader entry point: each gives results or TunesmithErrors, never another exception."""
    for _origin, item in scan_records(path) if _scannable(path) else ():
        if isinstance(item, TunesmithError):
            one_line(item)
    problems, total = find_problems(path)
    assert total >= len(problems)
    for problem in problems:
        one_line(problem)
    try:
        conversations = load_conversations(path)
    except TunesmithError as err:
        one_line(err)
    else:
        assert conversations and all(isinstance(c, Conversation) for c in conversations)


def _scannable(path: Path) -> bool:
    try:
        next(iter(scan_records(path)), None)
    except TunesmithError as err:
        one_line(err)
        return False
    return True


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@SETTINGS
@given(data=st.binary(max_size=300), suffix=st.sampled_from(SUFFIXES))
def test_arbitrary_bytes_in_any_format(folder, data, suffix):
    path = folder / f"bytes{suffix}"
    path.write_bytes(data)
    read_all(path)


@SETTINGS
@given(text=st.text(max_size=300), suffix=st.sampled_from(SUFFIXES[:4]))
def test_arbitrary_text_in_any_format(folder, text, suffix):
    path = folder / f"text{suffix}"
    path.write_text(text, encoding="utf-8")
    read_all(path)


@SETTINGS
@given(rows=st.lists(RECORD, min_size=1, max_size=4))
def test_arbitrary_json_records_as_jsonl_and_json(folder, rows):
    lines = "".join(json.dumps(r) + "\n" for r in rows)  # ensure_ascii: surrogates become \\udxxx escapes
    (folder / "rows.jsonl").write_text(lines, encoding="utf-8")
    (folder / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    read_all(folder / "rows.jsonl")
    read_all(folder / "rows.json")


@SETTINGS
@given(record=RECORD)
def test_normalise_any_record(record):
    """A parsed value that passes the reader's limits normalises to a Conversation or a DataError."""
    problem = value_problem(record, ORIGIN)
    if problem is not None:
        one_line(problem)
        return
    try:
        conversation = normalise(record, ORIGIN)
    except TunesmithError as err:
        one_line(err)
    else:
        assert conversation.origin == ORIGIN and (conversation.is_text or conversation.messages)
        for message in conversation.messages:
            message.content.encode("utf-8")  # no lone surrogate gets through to a tokenizer


@SETTINGS
@given(depth=st.integers(min_value=0, max_value=3 * MAX_DEPTH), kind=st.sampled_from(["[", '{"a": ']))
def test_any_nesting_depth_is_read_or_refused(folder, depth, kind):
    close = "]" if kind == "[" else "}"
    inner = kind * depth + "1" + close * depth
    (folder / "deep.jsonl").write_text(json.dumps({"text": "x"})[:-1] + f', "m": {inner}}}\n', encoding="utf-8")
    try:
        load_conversations(folder / "deep.jsonl")
    except TunesmithError as err:
        one_line(err)
        assert depth >= MAX_DEPTH and "nested" in str(err)
    else:
        assert depth < MAX_DEPTH


@SETTINGS
@given(rows=st.lists(st.dictionaries(st.sampled_from(["prompt", "completion", "text", "x"]), ANY_TEXT), min_size=1))
def test_arbitrary_csv_cells(folder, rows):
    import csv

    columns = sorted({k for r in rows for k in r}) or ["text"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    (folder / "cells.csv").write_bytes(buffer.getvalue().encode("utf-8", "surrogatepass"))
    read_all(folder / "cells.csv")


@SETTINGS
@given(
    rows=st.lists(
        st.fixed_dictionaries({"prompt": st.text(max_size=20), "completion": st.text(max_size=20)}),
        min_size=1,
        max_size=5,
    )
)
def test_arbitrary_parquet_rows(folder, rows):
    pq.write_table(pa.Table.from_pylist(rows), folder / "rows.parquet")
    read_all(folder / "rows.parquet")


# --- config -----------------------------------------------------------------------------------------

YAML_PIECES = st.sampled_from(
    [
        "data:",
        "  train: t.jsonl",
        "train:",
        "  lr: 1e-3",
        "  lr: true",
        "  batch_size: 2",
        "  seed: 2024-13-45",
        "&a [1, 2]",
        "*a",
        "x: &a [*a, *a]",
        "<<: *a",
        "- a",
        "? x",
        "{",
        "}",
        "[",
        "]",
        ":",
        "'",
        '"',
        "\\ud800",
        "!!binary xyz",
        "!!python/object:os.system",
        "\t",
        "#",
        "output_dir: ''",
        "method: full",
        "method: lora",
    ]
)


@SETTINGS
@given(text=st.text(max_size=200) | st.lists(YAML_PIECES, max_size=12).map("\n".join))
def test_arbitrary_yaml_config(folder, text):
    path = folder / "config.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        config = load_config(path)
    except TunesmithError as err:
        one_line(err)
    else:
        assert isinstance(config, Config)


@SETTINGS
@given(
    overrides=st.lists(
        st.text(max_size=30)
        | st.tuples(
            st.sampled_from(["train.lr", "train.batch_size", "output_dir", "data.columns", "lora.targets", "x"]),
            st.text(max_size=20) | YAML_PIECES,
        ).map("=".join),
        max_size=4,
    )
)
def test_arbitrary_overrides(overrides):
    try:
        parse_overrides(overrides)
        config = build_config({"data": {"train": "t.jsonl"}}, overrides)
    except TunesmithError as err:
        one_line(err)
    else:
        assert isinstance(config, Config)
