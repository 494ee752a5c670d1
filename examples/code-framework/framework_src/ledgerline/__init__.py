"""ledgerline: a tiny in-house record-pipeline framework (invented for the tunesmith
code-framework example).

A *step* is a function ``(ctx, rec) -> Outcome`` registered under a kebab-case name::

    import ledgerline as ll

    @ll.step("flag-large-refunds", needs=("refund",))
    def flag_large_refunds(ctx, rec):
        if ll.field(rec, "refund") > 50000:
            return ll.fail(ll.E_RANGE, "refund above 500.00")
        return ll.ok(rec)

Steps never raise and never print: they return ``ll.ok(record)``, ``ll.fail(ll.E_..., reason)``
or ``ll.drop(reason)``, and talk through the context (``ctx.note``, ``ctx.tally``).
"""

from __future__ import annotations

import datetime as _dt
import inspect as _inspect
import re as _re

from ledgerline.records import (  # noqa: F401  (re-exported: the framework is used as ``ll.<name>``)
    ABSENT, ConventionError, Record, amend, as_dict, days_between, field, fields, has, money, pick, record, without,
)

__version__ = "0.3.0"

# Error codes a step may fail with.
E_MISSING = "ll/missing"  # a required field is absent
E_TYPE = "ll/type"  # a field has the wrong type
E_RANGE = "ll/range"  # a number is out of its allowed range
E_FORMAT = "ll/format"  # a text field is malformed
E_DUPLICATE = "ll/duplicate"  # the record repeats one seen earlier in the run
E_POLICY = "ll/policy"  # a business rule forbids the record
CODES = (E_MISSING, E_TYPE, E_RANGE, E_FORMAT, E_DUPLICATE, E_POLICY)
E_CRASH = "ll/crash"  # set by the runner only: the step raised or returned a non-Outcome

_NAME = _re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)+")


class Outcome:
    """What a step returns. ``status`` is "ok", "fail" or "drop"."""

    __slots__ = ("status", "record", "code", "reason")

    def __init__(self, status, record=None, code=None, reason=None):
        self.status, self.record, self.code, self.reason = status, record, code, reason

    def __repr__(self) -> str:
        if self.status == "ok":
            return f"ok({self.record!r})"
        if self.status == "drop":
            return f"drop({self.reason!r})"
        return f"fail({self.code!r}, {self.reason!r})"


def ok(rec) -> Outcome:
    """Pass ``rec`` (the same or an amended record) on to the next step."""
    if not isinstance(rec, Record):
        raise ConventionError(f"ll.ok takes a Record, got {type(rec).__name__}")
    return Outcome("ok", record=rec)


def fail(code: str, reason: str) -> Outcome:
    """Reject the record with one of the ``ll.E_*`` codes and a short reason."""
    if code not in CODES:
        raise ConventionError(f"unknown error code {code!r}; use one of the ll.E_* constants")
    if not isinstance(reason, str) or not reason.strip():
        raise ConventionError("ll.fail needs a non-empty reason")
    return Outcome("fail", code=code, reason=reason)


def drop(reason: str) -> Outcome:
    """Remove the record from the ledger quietly (not an error)."""
    if not isinstance(reason, str) or not reason.strip():
        raise ConventionError("ll.drop needs a non-empty reason")
    return Outcome("drop", reason=reason)


class Ctx:
    """The run context every step receives: parameters, today's date, notes, tallies and a
    seen-set for duplicate checks."""

    def __init__(self, today: str | None = None, **params) -> None:
        self.today = today or _dt.date.today().isoformat()
        self._params = dict(params)
        self._seen: set = set()
        self.notes: list[str] = []
        self.counts: dict = {}

    def param(self, name: str, default=ABSENT):
        return self._params.get(name, default)

    def note(self, text) -> None:
        """Leave a message for whoever runs the ledger (steps never print)."""
        self.notes.append(str(text))

    def tally(self, key, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def seen(self, key) -> bool:
        """True if ``key`` was seen before in this context; remembers it either way."""
        if key in self._seen:
            return True
        self._seen.add(key)
        return False


class _Step:
    __slots__ = ("name", "fn", "needs")

    def __init__(self, name, fn, needs):
        self.name, self.fn, self.needs = name, fn, needs


REGISTRY: dict[str, _Step] = {}


def step(name: str, *, needs=()):
    """Register the decorated ``(ctx, rec)`` function as step ``name`` (kebab-case, two or more
    words). Records missing any field in ``needs`` fail with E_MISSING before the step runs."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConventionError(f"step names are kebab-case with two or more words, got {name!r}")
    if isinstance(needs, str) or not all(isinstance(n, str) for n in needs):
        raise ConventionError("needs= takes a tuple of field names")
    needs = tuple(needs)

    def register(fn):
        params = list(_inspect.signature(fn).parameters)
        if params != ["ctx", "rec"]:
            raise ConventionError(f"step {name!r} must take exactly (ctx, rec), not ({', '.join(params)})")
        REGISTRY[name] = _Step(name, fn, needs)
        fn.step_name = name
        return fn

    return register


def get_step(name: str):
    """The function registered as ``name``."""
    if name not in REGISTRY:
        raise LookupError(f"no ledgerline step named {name!r}")
    return REGISTRY[name].fn


def run_step(name: str, ctx: Ctx, rec) -> Outcome:
    """Run one registered step on one record, enforcing ``needs`` and the no-raise rule."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise LookupError(f"no ledgerline step named {name!r}")
    if not isinstance(rec, Record):
        rec = record(rec)
    for need in entry.needs:
        if not has(rec, need):
            return Outcome("fail", code=E_MISSING, reason=f"missing field {need!r}")
    try:
        out = entry.fn(ctx, rec)
    except Exception as exc:  # a step that raises broke the contract
        return Outcome("fail", code=E_CRASH, reason=f"{type(exc).__name__}: {exc}")
    if not isinstance(out, Outcome):
        return Outcome("fail", code=E_CRASH, reason=f"step returned {type(out).__name__}, not an Outcome")
    return out


class Report:
    """The result of ``Ledger.run``: kept records, and (record, outcome) pairs that failed or dropped."""

    def __init__(self) -> None:
        self.kept: list[Record] = []
        self.failed: list[tuple[Record, Outcome]] = []
        self.dropped: list[tuple[Record, Outcome]] = []


class Ledger:
    """An ordered list of records that steps run over, one record at a time."""

    def __init__(self, records=()) -> None:
        self.records = [r if isinstance(r, Record) else record(r) for r in records]

    def run(self, ctx: Ctx, *names: str) -> Report:
        """Run the named steps in order on every record; a record stops at its first fail or drop."""
        report = Report()
        for rec in self.records:
            for name in names:
                out = run_step(name, ctx, rec)
                if out.status != "ok":
                    (report.failed if out.status == "fail" else report.dropped).append((rec, out))
                    break
                rec = out.record
            else:
                report.kept.append(rec)
        return report
