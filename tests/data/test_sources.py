"""Tests for tunesmith.data.sources: every reader, origins, and every file-level and record-level error."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunesmith.data.sources import file_kind, json_type, read_records, scan_records
from tunesmith.errors import DataError, Origin

CHAT = [{"role": "user", "content": "hi", "weight": None}, {"role": "assistant", "content": "yo", "weight": 1}]


def write(path, content: str | bytes):
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def records(path) -> list[tuple[Origin, dict]]:
    return list(read_records(path))


def error_of(path) -> DataError:
    with pytest.raises(DataError) as info:
        records(path)
    return info.value


# --- JSONL ----------------------------------------------------------------------------------------


def test_jsonl_reads_records_with_physical_line_numbers_skipping_blank_lines(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"text": "a"}\n\n   \n{"text": "b"}\n')
    got = records(path)
    assert got == [(Origin(str(path), 1), {"text": "a"}), (Origin(str(path), 4), {"text": "b"})]


def test_jsonl_origin_keeps_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "train.jsonl", '{"text": "a"}\n')
    [(origin, _)] = records("data/train.jsonl")
    assert str(origin) == "data/train.jsonl:1"


def test_ndjson_suffix_crlf_endings_and_bom_are_accepted(tmp_path):
    path = write(tmp_path / "t.NDJSON", b'\xef\xbb\xbf{"text": "a"}\r\n{"text": "b"}')
    assert [r for _, r in records(path)] == [{"text": "a"}, {"text": "b"}]


def test_jsonl_invalid_json_names_line_and_column(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"text": "a"}\n\n{"text": "b" "c"}\n')
    err = error_of(path)
    assert str(err) == f"{path}:3: invalid JSON: Expecting ',' delimiter (column 14)"
    assert err.origin == Origin(str(path), 3)


def test_jsonl_invalid_utf8_names_the_line_byte_and_offset(tmp_path):
    path = write(tmp_path / "train.jsonl", b'{"text": "ok"}\n{"t\xff": 1}\n')
    assert str(error_of(path)) == f"{path}:2: invalid UTF-8 (byte 0xff at offset 3)"


@pytest.mark.parametrize(
    ("line", "kind"), [("[1, 2]", "list"), ('"hi"', "string"), ("3", "number"), ("null", "null"), ("true", "boolean")]
)
def test_jsonl_line_that_is_not_an_object(tmp_path, line, kind):
    path = write(tmp_path / "train.jsonl", f'{{"text": "a"}}\n{line}\n')
    assert str(error_of(path)) == f"{path}:2: expected a JSON object, got {kind}"


def test_jsonl_with_only_blank_lines_is_empty(tmp_path):
    path = write(tmp_path / "train.jsonl", "\n  \n\n")
    assert str(error_of(path)) == f"{path}: file is empty"


def test_scan_records_yields_bad_lines_and_keeps_going(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"text": "a"}\nnope\n[1]\n{"text": "d"}\n')
    got = list(scan_records(path))
    assert [o.line for o, _ in got] == [1, 2, 3, 4]
    assert got[0][1] == {"text": "a"} and got[3][1] == {"text": "d"}
    assert isinstance(got[1][1], DataError) and str(got[1][1]).startswith(f"{path}:2: invalid JSON:")
    assert str(got[2][1]) == f"{path}:3: expected a JSON object, got list"


# --- file-level problems -------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "train.jsonl"
    assert str(error_of(path)) == f"{path}: no such file"


def test_zero_byte_file_is_empty(tmp_path):
    path = write(tmp_path / "train.jsonl", "")
    assert str(error_of(path)) == f"{path}: file is empty"


def test_directory_is_not_a_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.mkdir()
    assert str(error_of(path)) == f"{path}: is a directory, not a file"


def test_unsupported_suffix(tmp_path):
    path = write(tmp_path / "x.txt", "hello")
    assert str(error_of(path)) == f"{path}: unsupported file type '.txt' (use .jsonl, .json, .csv, .parquet)"


def test_no_suffix_is_unsupported(tmp_path):
    path = write(tmp_path / "data", "hello")
    assert str(error_of(path)) == f"{path}: unsupported file type (no extension) (use .jsonl, .json, .csv, .parquet)"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json", "json"),
        ("a.CSV", "csv"),
        ("a.tsv", "tsv"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
    ],
)
def test_file_kind_by_suffix(name, kind):
    assert file_kind(name) == kind


def test_json_type_names():
    assert [json_type(v) for v in ({}, [], "", 1, 1.5, True, None)] == [
        "object",
        "list",
        "string",
        "number",
        "number",
        "boolean",
        "null",
    ]


# --- JSON -----------------------------------------------------------------------------------------


def test_json_list_uses_record_index_as_line(tmp_path):
    path = write(tmp_path / "train.json", json.dumps([{"text": "a"}, {"text": "b"}], indent=2))
    assert records(path) == [(Origin(str(path), 1), {"text": "a"}), (Origin(str(path), 2), {"text": "b"})]


def test_json_object_with_single_list_value_is_unwrapped(tmp_path):
    path = write(tmp_path / "train.json", json.dumps({"data": [{"text": "a"}, {"text": "b"}]}))
    assert [r for _, r in records(path)] == [{"text": "a"}, {"text": "b"}]


def test_json_single_conversation_object_is_one_record(tmp_path):
    record = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    path = write(tmp_path / "train.json", json.dumps(record))
    assert records(path) == [(Origin(str(path), 1), record)]


def test_json_invalid_names_physical_line_and_column(tmp_path):
    path = write(tmp_path / "train.json", '[\n  {"text": "a"},\n  {"text" "b"}\n]')
    assert str(error_of(path)) == f"{path}:3: invalid JSON: Expecting ':' delimiter (column 11)"


def test_json_invalid_utf8_names_line(tmp_path):
    path = write(tmp_path / "train.json", b'[\n{"text": "a"},\n{"text": "\xc3("}\n]')
    assert str(error_of(path)) == f"{path}:3: invalid UTF-8 (byte 0xc3 at offset 10)"


def test_json_item_not_an_object_is_named_by_index(tmp_path):
    path = write(tmp_path / "train.json", '[{"text": "a"}, [1], "x"]')
    err = error_of(path)
    assert str(err) == f"{path}:2: expected a JSON object, got list"


@pytest.mark.parametrize(
    ("content", "found"),
    [('{"a": 1, "b": 2}', "an object with keys 'a', 'b'"), ('{"a": 1}', "an object with keys 'a'"), ("3", "number")],
)
def test_json_top_level_shape_errors(tmp_path, content, found):
    path = write(tmp_path / "train.json", content)
    assert str(error_of(path)) == (
        f'{path}: expected a JSON list of records, or an object with a single list value such as {{"data": [...]}}, '
        f"got {found}"
    )


def test_json_empty_list_and_whitespace(tmp_path):
    empty_list = write(tmp_path / "a.json", "[]")
    assert str(error_of(empty_list)) == f"{empty_list}: file has no records (the JSON list is empty)"
    assert str(error_of(write(tmp_path / "b.json", " \n "))) == f"{tmp_path / 'b.json'}: file is empty"


# --- CSV / TSV ------------------------------------------------------------------------------------


def test_csv_rows_keyed_by_header_with_physical_line_numbers(tmp_path):
    content = 'prompt,completion\nhi,there\n\n"multi\nline",x\nlast,"a, b"\n'
    path = write(tmp_path / "train.csv", content)
    got = records(path)
    assert got == [
        (Origin(str(path), 2), {"prompt": "hi", "completion": "there"}),
        (Origin(str(path), 4), {"prompt": "multi\nline", "completion": "x"}),
        (Origin(str(path), 6), {"prompt": "last", "completion": "a, b"}),
    ]


def test_tsv_uses_tabs(tmp_path):
    path = write(tmp_path / "train.tsv", "instruction\toutput\nsay hi\thi, friend\n")
    assert records(path) == [(Origin(str(path), 2), {"instruction": "say hi", "output": "hi, friend"})]


def test_csv_long_fields_are_read(tmp_path):
    long = "x" * 300_000
    path = write(tmp_path / "train.csv", f"text\n{long}\n")
    assert records(path)[0][1]["text"] == long


def test_csv_row_with_wrong_field_count(tmp_path):
    path = write(tmp_path / "train.csv", "prompt,completion\na,b\na,b,c\nd\n")
    got = list(scan_records(path))
    assert str(got[1][1]) == f"{path}:3: row has 3 fields but the header has 2"
    assert str(got[2][1]) == f"{path}:4: row has 1 fields but the header has 2"
    assert str(error_of(path)) == f"{path}:3: row has 3 fields but the header has 2"


def test_csv_header_problems(tmp_path):
    dup = write(tmp_path / "dup.csv", "text,text\na,b\n")
    assert str(error_of(dup)) == f"{dup}:1: the header names column 'text' twice"
    blank = write(tmp_path / "blank.csv", "text,\na,b\n")
    assert str(error_of(blank)) == f"{blank}:1: the header has an empty column name (column 2)"


def test_csv_header_only_has_no_records(tmp_path):
    path = write(tmp_path / "train.csv", "prompt,completion\n\n")
    assert str(error_of(path)) == f"{path}: file has no records (only a header row)"


def test_csv_invalid_utf8_names_line(tmp_path):
    path = write(tmp_path / "train.csv", b"text\nok\nbad \xff here\n")
    assert str(error_of(path)) == f"{path}:3: invalid UTF-8 (byte 0xff at offset 4)"


def test_csv_malformed_quoting_is_a_data_error(tmp_path):
    path = write(tmp_path / "train.csv", 'text\n"never closed\n')
    assert str(error_of(path)) == f"{path}:2: invalid CSV: unexpected end of data"


# --- Parquet --------------------------------------------------------------------------------------


def test_parquet_rows_with_row_index_as_line(tmp_path):
    path = tmp_path / "train.parquet"
    table = pa.table(
        {
            "messages": [CHAT] * 3,
            "id": [1, 2, 3],
        }
    )
    pq.write_table(table, path, row_group_size=2)
    got = records(path)
    assert [o for o, _ in got] == [Origin(str(path), i) for i in (1, 2, 3)]
    assert got[2][1] == {
        "messages": CHAT,
        "id": 3,
    }


def test_pq_suffix_and_empty_parquet(tmp_path):
    path = tmp_path / "train.pq"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    assert str(error_of(path)) == f"{path}: file has no records (0 rows)"


def test_corrupt_parquet_is_a_data_error(tmp_path):
    path = write(tmp_path / "train.parquet", b"this is not parquet at all")
    assert str(error_of(path)).startswith(f"{path}: not a readable Parquet file (")
