"""Records and the value helpers of ledgerline.

A Record is a frozen bag of named fields. It is deliberately *not* a dict: there is no
``rec["x"]``, no ``rec.get``, no attribute access. Fields are read with ``field`` /
``has`` and new records are built with ``amend``, ``without`` and ``pick``.
"""

from __future__ import annotations

import datetime as _dt


class ConventionError(Exception):
    """A ledgerline convention was broken (bad step name, bad signature, bad outcome...)."""


class _Absent:
    """The type of ``ABSENT``, what ``field`` returns for a field the record does not have."""

    def __repr__(self) -> str:
        return "ll.ABSENT"


ABSENT = _Absent()


class Record:
    """A frozen record. Build one with ``ll.record(...)``; read it with ``ll.field``."""

    __slots__ = ("_data",)

    def __init__(self, data) -> None:
        data = dict(data)
        for key in data:
            if not isinstance(key, str) or not key.isidentifier():
                raise ConventionError(f"field names are identifiers, got {key!r}")
        object.__setattr__(self, "_data", data)

    def __setattr__(self, name, value):
        raise ConventionError("records are frozen: build a new one with ll.amend(rec, ...)")

    def __eq__(self, other) -> bool:
        return isinstance(other, Record) and other._data == self._data

    __hash__ = None

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._data.items())
        return f"Record({inner})"


def _need_record(rec) -> Record:
    if not isinstance(rec, Record):
        raise ConventionError(f"expected a ledgerline Record, got {type(rec).__name__}")
    return rec


def record(data=None, /, **fields) -> Record:
    """``ll.record({"amount": 120})`` or ``ll.record(amount=120)``."""
    merged = dict(data or {})
    merged.update(fields)
    return Record(merged)


def field(rec, name: str, default=ABSENT):
    """The value of field ``name``, or ``default`` (``ll.ABSENT`` unless given) when missing."""
    return _need_record(rec)._data.get(name, default)


def has(rec, name: str) -> bool:
    """Whether the record has field ``name``."""
    return name in _need_record(rec)._data


def fields(rec) -> tuple:
    """The record's field names, in order."""
    return tuple(_need_record(rec)._data)


def as_dict(rec) -> dict:
    """A plain-dict copy (for tests and output; steps should not need it)."""
    return dict(_need_record(rec)._data)


def amend(rec, **changes) -> Record:
    """A new record with ``changes`` set (added or replaced); ``rec`` is left as it was."""
    data = dict(_need_record(rec)._data)
    data.update(changes)
    return Record(data)


def without(rec, *names: str) -> Record:
    """A new record without the named fields (names it lacks are ignored)."""
    return Record({k: v for k, v in _need_record(rec)._data.items() if k not in names})


def pick(rec, *names: str) -> Record:
    """A new record with only the named fields that ``rec`` has, in the order named."""
    data = _need_record(rec)._data
    return Record({k: data[k] for k in names if k in data})


def money(cents: int) -> str:
    """Integer cents as ledgerline money text: ``ll.money(123456) == "1,234.56"``."""
    if not isinstance(cents, int) or isinstance(cents, bool):
        raise ConventionError(f"money amounts are integer cents, got {cents!r}")
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{part:02d}"


def days_between(earlier, later):
    """Whole days from ISO date ``earlier`` to ISO date ``later`` (negative if later is
    before earlier), or None when either is not a ``YYYY-MM-DD`` string."""
    try:
        a = _dt.date.fromisoformat(earlier)
        b = _dt.date.fromisoformat(later)
    except (TypeError, ValueError):
        return None
    return (b - a).days
