"""Read raw records from data files (JSONL, JSON, CSV/TSV, Parquet), each tagged with where it came from.

Every problem becomes a `DataError` that names `path:line`, so a user can open the file at the right spot.
Bad records can either stop the read (`read_records`) or be handed back in place (`scan_records`), which
lets a `check` command list every problem in one pass.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

from tunesmith.errors import DataError, Origin

Record = dict
Scanned = tuple[Origin, "Record | DataError"]

# File suffix (lower case) -> reader kind.
SUFFIXES: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_BOM = b"\xef\xbb\xbf"
_CSV_FIELD_LIMIT = 2**31 - 1  # long training texts easily pass csv's 128 KiB default


def read_records(path: str | os.PathLike) -> Iterator[tuple[Origin, Record]]:
    """Yield every record of a data file with its origin; raise the first problem as a `DataError`."""
    for origin, item in scan_records(path):
        if isinstance(item, DataError):
            raise item
        yield origin, item


def scan_records(path: str | os.PathLike) -> Iterator[Scanned]:
    """Yield `(origin, record)` pairs, with a bad record's `DataError` in place of the record.

    Problems with the file as a whole (missing, empty, unsupported, not parseable) are raised instead,
    because nothing after them can be read reliably.
    """
    name = str(path)
    file = Path(path)
    _check_file(file, name)
    kind = file_kind(name)
    count = 0
    for scanned in _READERS[kind](file, name):
        count += 1
        yield scanned
    if count == 0:
        raise DataError("file is empty", origin=name)


def file_kind(path: str | os.PathLike) -> str:
    """The reader kind for a path, chosen by its (case-insensitive) suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        shown = f"'{suffix}'" if suffix else "(no extension)"
        raise DataError(f"unsupported file type {shown} (use .jsonl, .json, .csv, .parquet)", origin=str(path))
    return SUFFIXES[suffix]


def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages such as 'expected a JSON object, got list'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_file(file: Path, name: str) -> None:
    """Fail early, with a plain message, when the path is not a non-empty regular file."""
    if not file.exists():
        raise DataError("no such file", origin=name)
    if file.is_dir():
        raise DataError("is a directory, not a file", origin=name)
    if file.stat().st_size == 0:
        raise DataError("file is empty", origin=name)


def _read_bytes(file: Path, name: str) -> bytes:
    """The whole file's bytes, with a leading UTF-8 byte-order mark removed."""
    try:
        return file.read_bytes().removeprefix(_BOM)
    except OSError as err:
        raise DataError(f"cannot read file: {err.strerror or err}", origin=name) from err


def _utf8(data: bytes, name: str, first_line: int = 1) -> str:
    """Decode UTF-8; on failure name the line and the bad byte's offset within that line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data.count(b"\n", 0, err.start)
        offset = err.start - (data.rfind(b"\n", 0, err.start) + 1)
        reason = f"invalid UTF-8 (byte 0x{data[err.start]:02x} at offset {offset})"
        raise DataError(reason, origin=Origin(name, line)) from err


def _json_message(err: json.JSONDecodeError) -> str:
    return f"invalid JSON: {err.msg} (column {err.colno})"


def _as_object(value: object, origin: Origin) -> Record | DataError:
    """The value itself when it is a JSON object, else the error to report for it."""
    if isinstance(value, dict):
        return value
    return DataError(f"expected a JSON object, got {json_type(value)}", origin=origin)


# --- JSONL ------------------------------------------------------------------------------------------


def _read_jsonl(file: Path, name: str) -> Iterator[Scanned]:
    """One record per non-blank line; each line is decoded on its own so errors name that line."""
    try:
        handle = file.open("rb")
    except OSError as err:
        raise DataError(f"cannot read file: {err.strerror or err}", origin=name) from err
    with handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1:
                raw = raw.removeprefix(_BOM)
            if raw.strip():
                origin = Origin(name, line_no)
                yield origin, _jsonl_record(raw, origin)


def _jsonl_record(raw: bytes, origin: Origin) -> Record | DataError:
    try:
        text = _utf8(raw, origin.path, origin.line)
    except DataError as err:
        return err
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return DataError(_json_message(err), origin=origin)
    return _as_object(value, origin)


# --- JSON -------------------------------------------------------------------------------------------


def _read_json(file: Path, name: str) -> Iterator[Scanned]:
    """A top-level list of objects, or an object holding one list; `line` is the 1-based record index."""
    text = _utf8(_read_bytes(file, name), name)
    if not text.strip():
        raise DataError("file is empty", origin=name)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(_json_message(err), origin=Origin(name, err.lineno)) from err
    items = _json_items(document, name)
    if not items:
        raise DataError("file has no records (the JSON list is empty)", origin=name)
    for index, item in enumerate(items, start=1):
        origin = Origin(name, index)
        yield origin, _as_object(item, origin)


def _json_items(document: object, name: str) -> list:
    """The list of records inside a JSON document.

    `{"data": [...]}` is unwrapped; `{"messages": [...]}` (or "conversations") is one conversation,
    not a wrapper, so it is kept as a single record.
    """
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if len(document) == 1:
            key, value = next(iter(document.items()))
            if isinstance(value, list) and key not in ("messages", "conversations"):
                return value
        if "messages" in document or "conversations" in document:
            return [document]
    raise DataError(
        "expected a JSON list of records, or an object with a single list value such as "
        f'{{"data": [...]}}, got {_describe(document)}',
        origin=name,
    )


def _describe(document: object) -> str:
    if isinstance(document, dict):
        keys = ", ".join(f"'{k}'" for k in document) or "none"
        return f"an object with keys {keys}"
    return json_type(document)


# --- CSV / TSV --------------------------------------------------------------------------------------


def _read_csv(file: Path, name: str, delimiter: str = ",") -> Iterator[Scanned]:
    """One record per row, keyed by the header row; `line` is the row's first physical line."""
    text = _utf8(_read_bytes(file, name), name)
    if not text.strip():
        raise DataError("file is empty", origin=name)
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = _csv_header(next(reader), name)
        last_line = reader.line_num
        rows = 0
        for row in reader:
            start, last_line = last_line + 1, reader.line_num
            if row:
                rows += 1
                origin = Origin(name, start)
                yield origin, _csv_record(header, row, origin)
    except csv.Error as err:
        raise DataError(f"invalid CSV: {err}", origin=Origin(name, reader.line_num)) from err
    if rows == 0:
        raise DataError("file has no records (only a header row)", origin=name)


def _read_tsv(file: Path, name: str) -> Iterator[Scanned]:
    return _read_csv(file, name, delimiter="\t")


def _csv_header(header: list[str], name: str) -> list[str]:
    """Check that the header names every column once."""
    origin = Origin(name, 1)
    if not header:
        raise DataError("the header row is empty", origin=origin)
    seen: set[str] = set()
    for position, column in enumerate(header, start=1):
        if not column.strip():
            raise DataError(f"the header has an empty column name (column {position})", origin=origin)
        if column in seen:
            raise DataError(f"the header names column '{column}' twice", origin=origin)
        seen.add(column)
    return header


def _csv_record(header: list[str], row: list[str], origin: Origin) -> Record | DataError:
    if len(row) != len(header):
        return DataError(f"row has {len(row)} fields but the header has {len(header)}", origin=origin)
    return dict(zip(header, row))


# --- Parquet ----------------------------------------------------------------------------------------


def _read_parquet(file: Path, name: str) -> Iterator[Scanned]:
    """One record per row (nested lists and structs become lists and dicts); `line` is the row index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = 0
    try:
        table_file = pq.ParquetFile(file)
        if table_file.metadata.num_rows == 0:
            raise DataError("file has no records (0 rows)", origin=name)
        for batch in table_file.iter_batches():
            for row in batch.to_pylist():
                index += 1
                yield Origin(name, index), row
    except (pa.ArrowException, OSError, ValueError) as err:
        where: str | Origin = Origin(name, index + 1) if index else name
        raise DataError(f"not a readable Parquet file ({err})", origin=where) from err


_READERS = {
    "jsonl": _read_jsonl,
    "json": _read_json,
    "csv": _read_csv,
    "tsv": _read_tsv,
    "parquet": _read_parquet,
}
