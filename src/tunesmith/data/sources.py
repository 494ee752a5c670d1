"""Read raw records from data files (JSONL, JSON, CSV/TSV, Parquet), each tagged with where it came from.

Every problem is a `DataError` naming `path:line`. Bad records stop the read (`read_records`) or come back in
place (`scan_records`, for `check`). Inputs are bounded so a hostile file gives a clear error, never a crash or
a hang: lines and CSV fields of at most 16 MiB, nesting of at most 64 levels, integers of at most 64 digits,
no lone UTF-16 surrogates (an escape such as "\\ud800" that is not text).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from tunesmith.errors import DataError, Origin, file_problem

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
MAX_LINE_BYTES = 16 * 2**20  # a JSONL line (one record); far above any trainable row, far below a hang
MAX_FIELD_CHARS = 16 * 2**20  # one string value of any format (long training texts pass csv's 128 KiB default)
MAX_DEPTH = 64  # lists and objects within a record (a chat record is 3 deep)
MAX_INT_DIGITS = 64  # Python refuses 4,300+ digits anyway, with a ValueError in the middle of parsing
_SURROGATE = re.compile("[\ud800-\udfff]")
_RISKY_JSON = re.compile(rf"\\u[dD][89a-fA-F]|\d{{{MAX_INT_DIGITS + 1}}}")  # a surrogate escape, a long integer


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
    if name.startswith(HUB):
        yield from _hub_records(name)
        return
    file = Path(path)
    _check_file(file, name)
    kind = file_kind(name)
    count = 0
    for scanned in _READERS[kind](file, name):
        count += 1
        yield scanned
    if count == 0:
        raise DataError("file is empty", origin=name)


HUB = "hf://"  # data.train: hf://org/name[:split] reads a Hugging Face hub dataset through `datasets`
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def _hub_records(name: str) -> Iterator[Scanned]:
    """The rows of a hub dataset (`hf://org/name[:split]`, split `train` by default), each as a record whose
    origin is the dataset and its 1-based row. Offline, or without `datasets`, a DataError says so."""
    repo, _, split = name[len(HUB) :].partition(":")
    if not _HUB_ID.fullmatch(repo):
        raise DataError("not a hub dataset id: expected hf://org/name or hf://org/name:split", origin=name)
    try:
        import datasets
    except ImportError:
        raise DataError(
            "reading hf:// datasets needs the `datasets` package: pip install datasets", origin=name
        ) from None
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        offline = "offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set)"
    else:
        offline = None
    try:
        rows = datasets.load_dataset(repo, split=split or "train")
    except Exception as e:  # offline, no such dataset or split, gated: datasets raises many kinds
        why = offline or f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        raise DataError(
            f"cannot load the hub dataset '{repo}' (split '{split or 'train'}'): {why}. Offline, download it on a "
            "connected machine and pass the file (.jsonl, .json, .csv, .parquet) instead",
            origin=name,
        ) from None
    count = 0
    for i, row in enumerate(rows, start=1):
        count += 1
        origin = Origin(name, i)
        problem = value_problem(row, origin)
        yield origin, problem if problem is not None else dict(row)
    if count == 0:
        raise DataError("the dataset split is empty", origin=name)


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


def value_problem(value: object, origin: Origin) -> DataError | None:
    """The first value in a parsed record (in file order) that is beyond the limits, as an error naming its
    field: nested too deep, an integer too long, a string too long or holding a lone surrogate."""
    stack: list[tuple[object, str, int]] = [(value, "", 0)]
    while stack:
        item, field, depth = stack.pop()
        if len(field) > 80:
            field = field[:77] + "..."
        if isinstance(item, str):
            if len(item) > MAX_FIELD_CHARS:
                reason = f"a string of {len(item):,} characters, more than the {MAX_FIELD_CHARS:,} allowed"
                return DataError(reason, origin=origin, field=field or None)
            if not item.isascii() and _SURROGATE.search(item):
                reason = "holds a lone UTF-16 surrogate (an escape such as \\ud800 that is not text)"
                return DataError(reason, origin=origin, field=field or None)
        elif isinstance(item, _LongInt):
            reason = f"an integer of {item.digits:,} digits, more than the {MAX_INT_DIGITS} allowed"
            return DataError(reason, origin=origin, field=field or None)
        elif isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                return DataError(f"nested more than {MAX_DEPTH} levels deep", origin=origin, field=field or None)
            children = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            for key, child in reversed(children):
                if isinstance(key, str):
                    sub = f"{field}.{safe_text(key)}" if field else safe_text(key)
                    stack.append((child, sub, depth + 1))
                    stack.append((key, sub, depth + 1))  # a key is text too, checked before its value
                else:
                    stack.append((child, f"{field}[{key}]", depth + 1))
    return None


def _check_file(file: Path, name: str) -> None:
    """Fail early, with a plain message, when the path is not a non-empty regular file (a FIFO would block,
    a symlink loop is not 'missing')."""
    problem = file_problem(file)
    if problem is not None:
        if not file.suffix and _HUB_ID.fullmatch(name) and "/" in name:  # tatsu-lab/alpaca: a hub id, probably
            problem += f" (for a Hugging Face hub dataset, write {HUB}{name} or {HUB}{name}:split)"
        raise DataError(problem, origin=name)
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


class _LongInt:
    """An integer literal too long to convert; `value_problem` reports it with its field."""

    def __init__(self, literal: str):
        self.digits = len(literal.lstrip("-"))


def _parse_int(literal: str) -> int | _LongInt:
    return _LongInt(literal) if len(literal.lstrip("-")) > MAX_INT_DIGITS else int(literal)


class _TooDeep(Exception):
    """JSON nested deeper than the parser's recursion allows."""


def _loads(text: str) -> object:
    """`json.loads` with integer literals bounded and runaway nesting as `_TooDeep`, not a RecursionError."""
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise _TooDeep from None


_JSON_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[\[\]{}\n]')


def _deep_line(text: str) -> int:
    """The 1-based line where JSON text first nests deeper than MAX_DEPTH (strings skipped)."""
    depth, line = 0, 1
    for token in _JSON_TOKEN.finditer(text):
        t = token.group()
        if t == "\n":
            line += 1
        elif t in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line
        elif t in "]}":
            depth -= 1
    return line


def _too_deep(origin: Origin) -> DataError:
    return DataError(f"nested more than {MAX_DEPTH} levels deep", origin=origin)


def _as_object(value: object, origin: Origin) -> Record | DataError:
    """The value itself when it is a JSON object, else the error to report for it."""
    if isinstance(value, dict):
        return value
    return DataError(f"expected a JSON object, got {json_type(value)}", origin=origin)


# --- JSONL ------------------------------------------------------------------------------------------


def _read_jsonl(file: Path, name: str) -> Iterator[Scanned]:
    """One record per non-blank line; each line is decoded on its own so errors name that line. A line past
    MAX_LINE_BYTES is reported (and skipped) without being held in memory."""
    try:
        handle = file.open("rb")
    except OSError as err:
        raise DataError(f"cannot read file: {err.strerror or err}", origin=name) from err
    with handle:
        line_no = 0
        while raw := handle.readline(MAX_LINE_BYTES + 1):
            line_no += 1
            if line_no == 1:
                raw = raw.removeprefix(_BOM)
            origin = Origin(name, line_no)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := handle.readline(2**20)) and not rest.endswith(b"\n"):
                    pass
                reason = f"line is longer than {MAX_LINE_BYTES // 2**20} MiB (a JSONL record is one line)"
                yield origin, DataError(reason, origin=origin)
            elif raw.strip():
                yield origin, _jsonl_record(raw, origin)


def _jsonl_record(raw: bytes, origin: Origin) -> Record | DataError:
    try:
        text = _utf8(raw, origin.path, origin.line)
    except DataError as err:
        return err
    try:
        value = _loads(text)
    except json.JSONDecodeError as err:
        return DataError(_json_message(err), origin=origin)
    except _TooDeep:
        return _too_deep(origin)
    if text.count("[") + text.count("{") > MAX_DEPTH or _RISKY_JSON.search(text):  # else nothing to find
        problem = value_problem(value, origin)
        if problem is not None:
            return problem
    return _as_object(value, origin)


# --- JSON -------------------------------------------------------------------------------------------


def _read_json(file: Path, name: str) -> Iterator[Scanned]:
    """A top-level list of objects, or an object holding one list; `line` is the 1-based record index."""
    text = _utf8(_read_bytes(file, name), name)
    if not text.strip():
        raise DataError("file is empty", origin=name)
    try:
        document = _loads(text)
    except json.JSONDecodeError as err:
        raise DataError(_json_message(err), origin=Origin(name, err.lineno)) from err
    except _TooDeep:
        raise _too_deep(Origin(name, _deep_line(text))) from None
    if not isinstance(document, (list, dict)):
        problem = value_problem(document, Origin(name, 1))
        if problem is not None:
            raise DataError(problem.reason, origin=name)
    items = _json_items(document, name)
    if not items:
        raise DataError("file has no records (the JSON list is empty)", origin=name)
    for index, item in enumerate(items, start=1):
        origin = Origin(name, index)
        yield origin, value_problem(item, origin) or _as_object(item, origin)


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
        return f"an object with keys {shown_keys(document)}"
    return json_type(document)


def shown_keys(keys, most: int = 8) -> str:
    """Keys for a one-line message: quoted, each cut to 40 characters, at most `most` of them."""
    keys = list(keys)
    shown = [f"'{safe_text(str(k))[:40]}'" for k in keys[:most]]
    more = f" and {len(keys) - most} more" if len(keys) > most else ""
    return (", ".join(shown) or "none") + more


def safe_text(text: str) -> str:
    """Text with lone surrogates and line breaks escaped, so a message stays one printable line."""
    if text.isascii() and text.isprintable():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", "\\n").replace("\r", "\\r")


# --- CSV / TSV --------------------------------------------------------------------------------------


def _read_csv(file: Path, name: str, delimiter: str = ",") -> Iterator[Scanned]:
    """One record per row, keyed by the header row; `line` is the row's first physical line."""
    text = _utf8(_read_bytes(file, name), name)
    if not text.strip():
        raise DataError("file is empty", origin=name)
    csv.field_size_limit(MAX_FIELD_CHARS)
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
        reason = f"invalid CSV: {err}"
        if "field larger than field limit" in str(err):
            reason = f"a field is longer than the {MAX_FIELD_CHARS:,} characters allowed"
        raise DataError(reason, origin=Origin(name, reader.line_num)) from err
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
            raise DataError(f"the header names column '{safe_text(column)[:40]}' twice", origin=origin)
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
                origin = Origin(name, index)
                yield origin, value_problem(row, origin) or row
    except (pa.ArrowException, OSError, ValueError, OverflowError) as err:
        where: str | Origin = Origin(name, index + 1) if index else name
        detail = " ".join(str(err).split())
        detail = detail if len(detail) <= 200 else detail[:197] + "..."
        raise DataError(f"not a readable Parquet file ({detail})", origin=where) from err


_READERS = {
    "jsonl": _read_jsonl,
    "json": _read_json,
    "csv": _read_csv,
    "tsv": _read_tsv,
    "parquet": _read_parquet,
}
