#!/usr/bin/env python3
"""Generate the synthetic "code generation for an in-house framework" dataset.

Each row asks for one step of `ledgerline`, a small record-pipeline framework invented for this
example (framework_src/ledgerline), and pairs the request with a reference solution, hidden unit
tests and a convention (style) check:

    {"messages": [{"role": "user", "content": INTENT}, {"role": "assistant", "content": CODE}],
     "family": FAMILY, "tests": TESTS, "style": STYLE}

TESTS and STYLE are Python source run after the candidate code in the candidate's own namespace
(STYLE also sees the candidate's text as `__source__`); they pass silently or raise AssertionError.

Output: train.jsonl (300 rows), eval.jsonl (50), test.jsonl (80). Intents and reference solutions
are unique within and across files, and near-duplicates are rejected while generating (see NEAR), so
the files pass `tunesmith check --strict`. Python 3.11 stdlib only; the output depends only on --seed.

Usage: python examples/code-framework/make_data.py [--seed 0] [--out examples/code-framework]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
from collections import Counter
from pathlib import Path

SPLITS = [("train", 300), ("eval", 50), ("test", 80)]
INTENT_WORDS = (15, 50)

# Near-duplicate rejection, a margin below `tunesmith check`'s 0.8: a row whose whole conversation text is at
# least this similar (Jaccard of 5-character shingles of the whitespace-collapsed, case-folded text) to an
# accepted row of the same split is redrawn, and so is an eval or test row whose prompt (the intent) is this
# similar to a prompt of an earlier split (train, then eval).
NEAR = 0.75
SHINGLE = 5
ATTEMPTS = 500  # draws per row before giving up

# --------------------------------------------------------------------------
# The convention check every row carries (STYLE).
# --------------------------------------------------------------------------

# The convention check lives in framework_src/ledgerline_conventions.py; every row's STYLE calls it.
STYLE = "import ledgerline_conventions\n\nledgerline_conventions.check(__source__)\n"

# --------------------------------------------------------------------------
# Vocabularies (all invented)
# --------------------------------------------------------------------------

MONEY = ["amount", "refund", "fee", "deposit", "discount", "tip", "balance", "credit", "surcharge", "payout",
         "penalty", "subtotal", "shipping", "rebate", "late_fee", "unit_price", "net_total", "deductible", "bonus",
         "advance", "tax", "commission"]
COUNTS = ["qty", "seats", "retries", "items", "nights", "pages", "units", "attempts", "weight_g", "boxes", "guests",
          "licenses", "pallets", "lines"]
IDS = {"invoice_no": "INV-", "order_ref": "ORD-", "claim_id": "CLM-", "voucher": "VCH-", "ticket_no": "TK-",
       "payment_ref": "PAY-", "receipt_no": "RC-", "txn_id": "TX-", "policy_no": "POL-"}
DATES = {"filed_on": "claims", "issued_on": "invoices", "opened_on": "tickets", "signed_on": "contracts",
         "renewed_on": "subscriptions", "booked_on": "bookings", "submitted_on": "expenses",
         "received_on": "parcels", "ordered_on": "orders", "approved_on": "permits"}
TEXT = {
    "vendor": ["Marrow & Finch", "Quillby Supply", "Tarn Works", "Hollis Brothers"],
    "carrier": ["Fennick", "Orla Post", "Bramble Freight", "Kestrel Lines"],
    "payee": ["D. Amsel", "Rovan Holdings", "K. Ilves", "Pell Studio"],
    "customer_name": ["Ines Karlo", "Tomas Brandt", "Wen Okoro", "Priya Halden"],
    "guest_name": ["Aldo Mirek", "Sana Voss", "Lior Beck"],
    "address": ["12 Quarry Lane", "4 Saltmarsh Road", "88 Tinker Row"],
    "category": ["travel", "meals", "tools", "office"],
    "room": ["B12", "A03", "C21"],
    "reason_code": ["R1", "R4", "R7"],
    "region": ["north", "south", "east", "west"],
    "channel": ["web", "phone", "branch", "partner"],
    "tier": ["basic", "plus", "gold"],
    "currency": ["EUR", "USD", "GBP", "SEK"],
    "status": ["open", "paid", "overdue"],
    "email": ["ana@corp.example", "t.ruiz@mail.example", "ops@ledger.example"],
    "account_no": ["00128734", "55019022", "71002311"],
    "employee_id": ["E-1042", "E-2290", "E-0317"],
    "account_id": ["AC-883", "AC-102", "AC-5510"],
    "week": ["2024-W14", "2024-W31"],
    "hours": [38, 40, 22],
    "policy_no": ["POL-2231", "POL-9081"],
    "from_account": ["55019022", "10293847"],
    "to_account": ["71002311", "66554433"],
}
FILLER = [("memo", ["spring batch", "manual entry", "carried over", "late upload"]),
          ("desk", ["north-2", "east-1", "hq-4"]), ("batch", [11, 27, 305]), ("clerk", ["J. Varga", "M. Osei", "T. Lind"])]
KINDS = {
    "invoice": ["invoice_no", "amount", "vendor", "issued_on", "currency"],
    "payout": ["payee", "payout", "account_no", "currency"],
    "shipment": ["order_ref", "boxes", "carrier", "address"],
    "booking": ["guest_name", "nights", "room", "booked_on"],
    "claim": ["claim_id", "amount", "filed_on", "policy_no"],
    "refund": ["order_ref", "refund", "reason_code", "channel"],
    "timesheet": ["employee_id", "hours", "week", "region"],
    "subscription": ["account_id", "tier", "renewed_on", "seats"],
    "expense": ["employee_id", "amount", "category", "receipt_no"],
    "transfer": ["from_account", "to_account", "amount", "txn_id"],
}

OPENERS = [
    "Write a ledgerline step named `{n}` that {vp}",
    "Create the ledgerline step `{n}`. It {vp}",
    "Add a step `{n}` to our ledgerline pipeline that {vp}",
    "Implement the ledgerline step `{n}`, which {vp}",
    "I need a ledgerline step called `{n}` that {vp}",
    "Ledgerline step `{n}`: {VP}",
    "Please write `{n}`, a ledgerline step that {vp}",
    "We need `{n}` as a ledgerline step; it {vp}",
]

UNCHANGED = ["and otherwise passes the record on unchanged", "and passes every other record through untouched",
             "and lets all other records through as they are", "and otherwise returns the record unchanged"]


def q(f: str) -> str:
    return f"`{f}`"


def kebab(f: str) -> str:
    return f.replace("_", "-")


def and_list(items: list[str]) -> str:
    items = [q(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def lit(v) -> str:
    """A Python literal for the reference code (double-quoted strings)."""
    return json.dumps(v) if isinstance(v, str) else repr(v)


def tup(names) -> str:
    return "(" + ", ".join(lit(n) for n in names) + ("," if len(names) == 1 else "") + ")"


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{part:02d}"


def sample(rng: random.Random, f: str):
    """A plausible value for field f."""
    if f in MONEY:
        return rng.randrange(100, 90000)
    if f in COUNTS:
        return rng.randint(1, 40)
    if f in DATES:
        return (dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(0, 700))).isoformat()
    if f in TEXT:
        return rng.choice(TEXT[f])
    if f in IDS:
        return f"{IDS[f]}{rng.randint(100, 99999)}"
    return f"{f[:3]}-{rng.randint(10, 99)}"


def filler(rng: random.Random, avoid) -> dict:
    name, values = rng.choice([fv for fv in FILLER if fv[0] not in avoid])
    return {name: rng.choice(values)}


def make_code(name: str, body: list[str], needs=()) -> str:
    deco = f'@ll.step("{name}"' + (f", needs={tup(needs)}" if needs else "") + ")"
    lines = ["import ledgerline as ll", "", "", deco, f"def {name.replace('-', '_')}(ctx, rec):"]
    return "\n".join(lines + ["    " + b for b in body])


class Tests:
    """Builds a row's hidden tests: each case runs the step by its registered name."""

    def __init__(self, name: str) -> None:
        self.name, self.n = name, 0
        self.lines = [
            "import ledgerline as ll",
            "",
            f'assert "{name}" in ll.REGISTRY, "no step is registered under the name {name!r}"',
            "",
            "",
            "def _run(fields, ctx=None):",
            f'    return ll.run_step("{name}", ll.Ctx(today="2024-06-30") if ctx is None else ctx, ll.record(fields))',
            "",
        ]

    def _case(self, fields, ctx, cond: str, want: str) -> None:
        self.n += 1
        call = f"_run({fields!r}" + (f", {ctx}" if ctx else "") + ")"
        self.lines += [f"_out = {call}", f"assert {cond}, {f'case {self.n}: want {want}, got '!r} + repr(_out)"]

    def ok(self, fields, expect=None, ctx=None) -> None:
        expect = fields if expect is None else expect
        self._case(fields, ctx, f'_out.status == "ok" and ll.as_dict(_out.record) == {expect!r}', "ok" if expect == fields else "an amended ok")

    def fail(self, fields, code: str, ctx=None) -> None:
        self._case(fields, ctx, f'_out.status == "fail" and _out.code == ll.{code}', f"a fail with {code}")

    def drop(self, fields, ctx=None) -> None:
        self._case(fields, ctx, '_out.status == "drop"', "a drop")

    def raw(self, *lines: str) -> None:
        self.lines += list(lines)

    def source(self) -> str:
        return "\n".join(self.lines) + "\n"


def missing_clause(rng, f):
    return rng.choice([f" Records without {q(f)} fail with E_MISSING.", f" A record lacking {q(f)} fails with E_MISSING.",
                       f" If {q(f)} is absent, fail with E_MISSING."])


# --------------------------------------------------------------------------
# Task families. Each returns (name, verb phrase, code, tests).
# --------------------------------------------------------------------------

COND = {">": ["is above {t}", "exceeds {t}", "is greater than {t}", "is more than {t}"],
        ">=": ["is {t} or more", "is at least {t}", "is greater than or equal to {t}"],
        "<": ["is below {t}", "is less than {t}", "falls under {t}"],
        "<=": ["is {t} or less", "is at most {t}", "is less than or equal to {t}"]}
WORD = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}
OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}


def fam_bound(rng):
    f = rng.choice(MONEY + COUNTS)
    is_money = f in MONEY
    op = rng.choice(list(COND))
    upper = op in (">", ">=")
    t = rng.choice([500, 1000, 2500, 5000, 10000, 25000, 50000, 100000]) if is_money and rng.random() < 0.5 else (
        rng.randrange(1, 200) * 500 if is_money else rng.randint(2, 99))
    k = kebab(f)
    name = rng.choice(["flag-large-{k}", "check-{k}-ceiling", "reject-high-{k}", "limit-{k}", "guard-{k}-max",
                       "screen-{k}-maximum", "block-excess-{k}"] if upper else
                      ["reject-small-{k}", "check-{k}-floor", "require-min-{k}", "guard-{k}-min", "screen-low-{k}",
                       "block-tiny-{k}"]).format(k=k)
    unit = " (in cents)" if is_money and rng.random() < 0.6 else ""
    from_param = rng.random() < 0.35
    need = rng.random() < 0.5
    tests = Tests(name)
    if from_param:
        p = rng.choice(["max_{f}", "{f}_limit", "{f}_ceiling"] if upper else ["min_{f}", "{f}_floor", "{f}_minimum"]).format(f=f)
        cond = rng.choice(COND[op]).format(t=f"the context parameter {q(p)}")
        vp = (f"fails with E_RANGE when a record's {q(f)}{unit} {cond} (or {t} when that parameter is not set), "
              f"{rng.choice(UNCHANGED)}.")
        body = [f"limit = ctx.param({lit(p)}, {t})", f"if ll.field(rec, {lit(f)}) {op} limit:",
                f"    return ll.fail(ll.E_RANGE, {lit(f'{f} {WORD[op]} the limit')})", "return ll.ok(rec)"]
        other = t * 2 + (7 if is_money else 3)
        for limit, ctx in ((t, None), (other, f"ll.Ctx({p}={other})")):
            for v in (limit - 1, limit, limit + 1):
                rec = {f: v, **filler(rng, [f])}
                (tests.fail(rec, "E_RANGE", ctx) if OPS[op](v, limit) else tests.ok(rec, None, ctx))
    else:
        cond = rng.choice(COND[op]).format(t=t)
        vp = rng.choice([
            f"fails with E_RANGE when a record's {q(f)}{unit} {cond}, {rng.choice(UNCHANGED)}.",
            f"rejects records whose {q(f)}{unit} {cond} with E_RANGE {rng.choice(UNCHANGED)}.",
        ])
        body = [f"if ll.field(rec, {lit(f)}) {op} {t}:", f"    return ll.fail(ll.E_RANGE, {lit(f'{f} {WORD[op]} {t}')})",
                "return ll.ok(rec)"]
        for v in (t - 1, t, t + 1, t * 4 if upper else 0):
            rec = {f: v, **filler(rng, [f])}
            (tests.fail(rec, "E_RANGE") if OPS[op](v, t) else tests.ok(rec))
    if need:
        vp += missing_clause(rng, f)
        tests.fail(filler(rng, [f]), "E_MISSING")
    return name, vp, make_code(name, body, (f,) if need else ()), tests


def fam_require(rng):
    kind = rng.choice(list(KINDS))
    fs = rng.sample(KINDS[kind], rng.choice([2, 2, 3]))
    name = rng.choice(["require-{kind}-fields", "check-{kind}-complete", "validate-{kind}-shape",
                       "need-{a}-and-{b}"]).format(kind=kind, a=kebab(fs[0]), b=kebab(fs[1]))
    vp = rng.choice([
        f"fails with E_MISSING unless the record has every one of {and_list(fs)}; complete {kind} records pass on unchanged.",
        f"checks that {and_list(fs)} are all present: a record missing any of them fails with E_MISSING, the rest pass through untouched.",
        f"makes sure each {kind} record carries {and_list(fs)}, failing with E_MISSING otherwise and passing complete records on as they are.",
    ])
    tests = Tests(name)
    full = {f: sample(rng, f) for f in fs}
    tests.ok({**full, **filler(rng, fs)})
    for f in fs:
        tests.fail({g: v for g, v in full.items() if g != f}, "E_MISSING")
    tests.fail(filler(rng, fs), "E_MISSING")
    return name, vp, make_code(name, ["return ll.ok(rec)"], fs), tests


def fam_type(rng):
    want_int = rng.random() < 0.5
    f = rng.choice(MONEY + COUNTS) if want_int else rng.choice(["vendor", "carrier", "payee", "customer_name", "region",
                                                                 "channel", "currency", "email", "category", "tier"])
    k = kebab(f)
    name = rng.choice(["check-{k}-type", "type-check-{k}", "require-integer-{k}" if want_int else "require-text-{k}",
                       "ensure-{k}-is-int" if want_int else "ensure-{k}-is-str"]).format(k=k)
    what = rng.choice(["an integer", "a whole number (int)", "an int"]) if want_int else rng.choice(["a string", "text (a str)", "a str"])
    vp = rng.choice([
        f"fails with E_TYPE when {q(f)} is not {what} and with E_MISSING when the record lacks it, {rng.choice(UNCHANGED)}.",
        f"makes sure {q(f)} is {what}: a missing {q(f)} fails with E_MISSING, a value of another type fails with E_TYPE, anything else passes on unchanged.",
    ])
    typ = "int" if want_int else "str"
    body = [f"if not isinstance(ll.field(rec, {lit(f)}), {typ}):",
            f"    return ll.fail(ll.E_TYPE, {lit(f'{f} must be ' + ('an int' if want_int else 'a str'))})", "return ll.ok(rec)"]
    tests = Tests(name)
    good = [sample(rng, f), 0] if want_int else [sample(rng, f), ""]
    bad = [str(rng.randint(3, 900)), 12.5, None] if want_int else [rng.randint(3, 900), ["x"], None]
    for v in good:
        tests.ok({f: v, **filler(rng, [f])})
    for v in bad:
        tests.fail({f: v}, "E_TYPE")
    tests.fail(filler(rng, [f]), "E_MISSING")
    return name, vp, make_code(name, body, (f,)), tests


DROP_VALUES = {"status": ["void", "draft", "test", "cancelled", "archived", "on_hold"],
               "channel": ["test", "sandbox", "internal", "fax"], "source": ["demo", "replay", "manual", "import"],
               "kind": ["placeholder", "dummy", "sample"], "flag": ["ignore", "skip", "spam"], "tier": ["trial", "free"]}


def fam_drop(rng):
    if rng.random() < 0.25:
        f = rng.choice(COUNTS + MONEY)
        name = rng.choice(["drop-zero-{k}", "skip-empty-{k}", "discard-zero-{k}"]).format(k=kebab(f))
        vp = rng.choice([f"drops records whose {q(f)} is 0 and passes all others on unchanged, including records without {q(f)}.",
                         f"quietly drops every record with {q(f)} equal to zero; other records (also those lacking {q(f)}) pass through unchanged."])
        body = [f"if ll.field(rec, {lit(f)}) == 0:", f"    return ll.drop({lit(f'{f} is zero')})", "return ll.ok(rec)"]
        tests = Tests(name)
        tests.drop({f: 0, **filler(rng, [f])})
        tests.ok({f: 1, **filler(rng, [f])})
        tests.ok({f: sample(rng, f)})
        tests.ok(filler(rng, [f]))
        return name, vp, make_code(name, body), tests
    f = rng.choice(list(DROP_VALUES))
    vals = rng.sample(DROP_VALUES[f], rng.choice([1, 1, 2]))
    shown = " or ".join(f'"{v}"' for v in vals)
    name = rng.choice(["drop-{v}-records", "skip-{v}-{k}", "discard-{v}-rows", "filter-{k}-{v}"]).format(v=kebab(vals[0]), k=kebab(f))
    vp = rng.choice([
        f"drops records whose {q(f)} is {shown} and passes all others on unchanged, including records without {q(f)}.",
        f"quietly removes (drops) every record with {q(f)} equal to {shown}; any other record, with or without {q(f)}, passes through as it is.",
    ])
    test_expr = f"== {lit(vals[0])}" if len(vals) == 1 else f"in {tup(vals)}"
    body = [f"if ll.field(rec, {lit(f)}) {test_expr}:", f"    return ll.drop({lit(f'{f} is ' + ' or '.join(vals))})", "return ll.ok(rec)"]
    tests = Tests(name)
    for v in vals:
        tests.drop({f: v, **filler(rng, [f])})
    other = rng.choice([v for v in DROP_VALUES[f] + ["live", "ok"] if v not in vals])
    tests.ok({f: other, **filler(rng, [f])})
    tests.ok({f: vals[0].upper()})
    tests.ok(filler(rng, [f]))
    return name, vp, make_code(name, body), tests


RENAMES = [("cust", "customer"), ("amt", "amount"), ("qty_ordered", "qty"), ("desc", "description"), ("ccy", "currency"),
           ("acct", "account_id"), ("ref", "payment_ref"), ("dt", "booked_on"), ("tel", "phone"), ("zip", "postcode"),
           ("vend", "vendor"), ("inv", "invoice_no"), ("cat", "category"), ("addr", "address"), ("cnt", "count"),
           ("prio", "priority"), ("src", "source"), ("dept", "department"), ("mgr", "manager"), ("emp", "employee_id"),
           ("reg", "region"), ("chan", "channel")]


def fam_rename(rng):
    old, new = rng.choice(RENAMES)
    name = rng.choice(["rename-{o}-to-{n}", "map-{o}-field", "rename-{o}-field", "use-{n}-name"]).format(o=kebab(old), n=kebab(new))
    strict = rng.random() < 0.5
    vp = rng.choice([f"renames the field {q(old)} to {q(new)}, keeping its value and every other field;",
                     f"moves the value of {q(old)} into a new field {q(new)} and removes {q(old)}, leaving other fields alone;"])
    vp += (rng.choice([" records without {o} fail with E_MISSING.", " a record that has no {o} fails with E_MISSING."]) if strict else
           rng.choice([" records without {o} pass on unchanged.", " records lacking {o} are passed through as they are."])).format(o=q(old))
    body = ([] if strict else [f"if not ll.has(rec, {lit(old)}):", "    return ll.ok(rec)"]) + [
        f"value = ll.field(rec, {lit(old)})", f"return ll.ok(ll.amend(ll.without(rec, {lit(old)}), {new}=value))"]
    tests = Tests(name)
    for _ in range(2):
        v, extra = sample(rng, new), filler(rng, [old, new])
        tests.ok({old: v, **extra}, {new: v, **extra})
    tests.ok({old: None}, {new: None})
    missing = filler(rng, [old, new])
    tests.fail(missing, "E_MISSING") if strict else tests.ok(missing)
    return name, vp, make_code(name, body, (old,) if strict else ()), tests


DEFAULTS = [("currency", "EUR"), ("region", "north"), ("channel", "web"), ("priority", "normal"), ("tier", "standard"),
            ("status", "open"), ("source", "import"), ("country", "NL"), ("language", "en"), ("carrier", "Orla Post"),
            ("qty", 1), ("discount", 0), ("retries", 0), ("seats", 1), ("tip", 0)]


def fam_default(rng):
    f, d = rng.choice(DEFAULTS)
    k = kebab(f)
    name = rng.choice(["default-{k}", "fill-missing-{k}", "set-default-{k}", "ensure-{k}"]).format(k=k)
    mode = rng.choice(["plain", "plain", "param"] + (["empty"] if isinstance(d, str) else []))
    shown = lit(d)
    tests = Tests(name)
    present = sample(rng, f) if f in TEXT or f in MONEY or f in COUNTS else d + "x"
    if present == d:
        present = d + "-alt" if isinstance(d, str) else d + 2
    extra = filler(rng, [f])
    if mode == "param":
        p = rng.choice(["default_{f}", "{f}_default", "fallback_{f}"]).format(f=f)
        vp = (f"sets {q(f)} from the context parameter {q(p)} ({shown} when that parameter is not set) on records that "
              f"lack {q(f)}; records that already have it pass on unchanged.")
        body = [f"if ll.has(rec, {lit(f)}):", "    return ll.ok(rec)", f"return ll.ok(ll.amend(rec, {f}=ctx.param({lit(p)}, {shown})))"]
        alt = d + "-alt" if isinstance(d, str) else d + 5
        tests.ok(extra, {**extra, f: d})
        tests.ok(extra, {**extra, f: alt}, f"ll.Ctx({p}={alt!r})")
        tests.ok({f: present, **extra}, None, f"ll.Ctx({p}={alt!r})")
    elif mode == "empty":
        vp = rng.choice([f"sets {q(f)} to {shown} when it is missing or an empty string, {rng.choice(UNCHANGED)}.",
                         f"fills in {q(f)} = {shown} on records where it is absent or empty; other records pass on unchanged."])
        body = [f'if ll.field(rec, {lit(f)}, "") == "":', f"    return ll.ok(ll.amend(rec, {f}={shown}))", "return ll.ok(rec)"]
        tests.ok(extra, {**extra, f: d})
        tests.ok({f: "", **extra}, {f: d, **extra})
        tests.ok({f: present, **extra})
    else:
        vp = rng.choice([f"sets {q(f)} to {shown} on records that lack it; records that already have {q(f)} pass on unchanged.",
                         f"gives every record without {q(f)} the default {shown} and leaves records that have one as they are."])
        body = [f"if not ll.has(rec, {lit(f)}):", f"    return ll.ok(ll.amend(rec, {f}={shown}))", "return ll.ok(rec)"]
        tests.ok(extra, {**extra, f: d})
        tests.ok({f: present, **extra})
        tests.ok({f: None}, {f: None})
    return name, vp, make_code(name, body), tests


SENSITIVE = ["ssn", "card_number", "password_hash", "internal_note", "debug", "raw_payload", "phone", "iban",
             "birth_date", "api_token"]


def fam_trim(rng):
    if rng.random() < 0.55:
        kind = rng.choice(list(KINDS))
        keep = rng.sample(KINDS[kind], rng.choice([2, 3]))
        name = rng.choice(["keep-{kind}-fields", "slim-{kind}-record", "project-{kind}", "trim-{kind}"]).format(kind=kind)
        strict = rng.random() < 0.4
        vp = rng.choice([f"keeps only the fields {and_list(keep)} of each record, dropping every other field",
                         f"trims each {kind} record down to {and_list(keep)}, removing all other fields"])
        vp += (f"; records without {q(keep[0])} fail with E_MISSING, other missing fields are simply left out." if strict else
               "; fields the record lacks are simply left out.")
        body = [f"return ll.ok(ll.pick(rec, {', '.join(lit(f) for f in keep)}))"]
        tests = Tests(name)
        full = {f: sample(rng, f) for f in KINDS[kind]}
        extra = {s: sample(rng, s) for s in rng.sample(SENSITIVE, 2)}
        tests.ok({**full, **extra}, {f: full[f] for f in keep})
        tests.ok({keep[0]: full[keep[0]], **extra}, {keep[0]: full[keep[0]]})
        if strict:
            tests.fail({keep[1]: full[keep[1]]}, "E_MISSING")
        else:
            tests.ok(extra, {})
        return name, vp, make_code(name, body, (keep[0],) if strict else ()), tests
    gone = rng.sample(SENSITIVE, rng.choice([1, 2, 2]))
    name = rng.choice(["strip-{a}", "remove-{a}-field", "redact-{a}"] if len(gone) == 1 else
                      ["strip-{a}-and-{b}", "redact-{a}-{b}", "remove-{a}-and-{b}"]).format(
        a=kebab(gone[0]), b=kebab(gone[-1]))
    vp = rng.choice([f"removes the {'field' if len(gone) == 1 else 'fields'} {and_list(gone)} from every record; records that lack {'it' if len(gone) == 1 else 'them'} pass through as they are.",
                     f"strips {and_list(gone)} out of each record before it moves on, keeping all other fields (a record without {'it' if len(gone) == 1 else 'them'} is passed on unchanged)."])
    body = [f"return ll.ok(ll.without(rec, {', '.join(lit(f) for f in gone)}))"]
    tests = Tests(name)
    kind = rng.choice(list(KINDS))
    base = {f: sample(rng, f) for f in KINDS[kind][:3]}
    tests.ok({**base, **{g: sample(rng, g) for g in gone}}, base)
    tests.ok({gone[0]: "x", **base}, base)
    tests.ok(base)
    return name, vp, make_code(name, body), tests


def fam_money_text(rng):
    f = rng.choice(MONEY)
    k = kebab(f)
    ex = rng.randrange(100000, 99999999)
    example = rng.choice([f"(so {ex} cents reads \"{money(ex)}\")", f"(e.g. {ex} becomes \"{money(ex)}\")",
                          f"(like \"{money(ex)}\" for {ex} cents)"])
    mode = rng.choice(["add", "add", "typed", "replace"])
    cases = [0, 5, rng.randrange(100000, 99999999), -rng.randrange(100, 99999)]
    if mode == "replace":
        name = rng.choice(["format-{k}", "render-{k}-text", "show-{k}-as-money"]).format(k=k)
        vp = f"replaces the integer cents in {q(f)} with ledgerline money text {example}; records without {q(f)} fail with E_MISSING."
        body = [f"return ll.ok(ll.amend(rec, {f}=ll.money(ll.field(rec, {lit(f)}))))"]
        tests = Tests(name)
        for v in cases:
            extra = filler(rng, [f])
            tests.ok({f: v, **extra}, {f: money(v), **extra})
    else:
        t = rng.choice(["{f}_text", "display_{f}", "{f}_label", "{f}_shown"]).format(f=f)
        name = rng.choice(["format-{k}", "add-{t}", "label-{k}", "render-{k}"]).format(k=k, t=kebab(t))
        vp = rng.choice([f"adds a field {q(t)} holding {q(f)} (integer cents) as ledgerline money text {example};",
                         f"writes {q(f)} as ledgerline money text into a new field {q(t)} {example}, keeping {q(f)} itself;"])
        vp += f" records without {q(f)} fail with E_MISSING."
        if mode == "typed":
            vp += f" If {q(f)} is not an int, fail with E_TYPE."
            body = [f"value = ll.field(rec, {lit(f)})", "if not isinstance(value, int):",
                    f"    return ll.fail(ll.E_TYPE, {lit(f'{f} is not integer cents')})", f"return ll.ok(ll.amend(rec, {t}=ll.money(value)))"]
        else:
            body = [f"return ll.ok(ll.amend(rec, {t}=ll.money(ll.field(rec, {lit(f)}))))"]
        tests = Tests(name)
        for v in cases:
            extra = filler(rng, [f, t])
            tests.ok({f: v, **extra}, {f: v, t: money(v), **extra})
        if mode == "typed":
            tests.fail({f: "12.50"}, "E_TYPE")
            tests.fail({f: 12.5}, "E_TYPE")
    tests.fail(filler(rng, [f]), "E_MISSING")
    return name, vp, make_code(name, body, (f,)), tests


def fam_combine(rng):
    zero = rng.random() < 0.5
    if rng.random() < 0.6:
        ins = rng.sample([m for m in MONEY if m not in ("subtotal", "net_total")], rng.choice([2, 2, 3]))
        t = rng.choice(["total", "gross", "grand_total", "payable", "charge_total", "sum_due"])
        name = rng.choice(["add-{t}", "compute-{t}", "sum-{a}-and-{b}", "total-{a}-{b}"]).format(t=kebab(t), a=kebab(ins[0]), b=kebab(ins[1]))
        vp = rng.choice([f"adds a {q(t)} field holding the sum of {and_list(ins)}",
                         f"sets {q(t)} to {and_list(ins)} added together"])
        op, calc = " + ", sum
    else:
        ins = rng.sample([m for m in MONEY], 2)
        t = rng.choice(["net", "balance_due", "remaining", "margin", "net_payout"])
        name = rng.choice(["compute-{t}", "derive-{t}", "{a}-minus-{b}"]).format(t=kebab(t), a=kebab(ins[0]), b=kebab(ins[1]))
        vp = rng.choice([f"sets {q(t)} to {q(ins[0])} minus {q(ins[1])}", f"adds a field {q(t)} equal to {q(ins[0])} less {q(ins[1])}"])
        op, calc = " - ", lambda vals: vals[0] - vals[1]  # noqa: E731
    vp += (rng.choice([" (a missing one counts as 0).", "; treat a missing field as 0."]) if zero else
           rng.choice(["; a record missing any of them fails with E_MISSING.", "; if one is absent, fail with E_MISSING."]))
    expr = op.join(f"ll.field(rec, {lit(f)}{', 0' if zero else ''})" for f in ins)
    body = [f"{t} = {expr}", f"return ll.ok(ll.amend(rec, {t}={t}))"]
    tests = Tests(name)
    for _ in range(2):
        rec = {f: sample(rng, f) for f in ins}
        tests.ok({**rec}, {**rec, t: calc([rec[f] for f in ins])})
    part = {ins[0]: sample(rng, ins[0])}
    if zero:
        tests.ok(part, {**part, t: calc([part.get(f, 0) for f in ins])})
        tests.ok({}, {t: 0})
    else:
        tests.fail(part, "E_MISSING")
    return name, vp, make_code(name, body, () if zero else ins), tests


BPS = [("tax", "tax_bp"), ("vat", "vat_bp"), ("fee", "fee_bp"), ("commission", "commission_bp"), ("levy", "levy_bp"),
       ("markup", "markup_bp"), ("tip", "tip_bp"), ("reserve", "reserve_bp"), ("duty", "duty_bp")]


def fam_bps(rng):
    t, p = rng.choice(BPS)
    f = rng.choice([m for m in ("amount", "subtotal", "net_total", "payout", "unit_price", "balance", "deposit") if m != t])
    d = rng.choice([25, 50, 75, 120, 250, 400, 500, 750, 1000, 1500, 2000])
    up = rng.random() < 0.35
    name = rng.choice(["add-{t}", "compute-{t}", "apply-{t}-rate", "{t}-from-{k}"]).format(t=kebab(t), k=kebab(f))
    rounding = "rounded half up to the nearest cent" if up else rng.choice(["rounded down to whole cents", "rounding down"])
    vp = rng.choice([
        f"adds a {q(t)} field equal to {q(f)} times the context parameter {q(p)} (basis points, {d} when not set) divided by 10000, {rounding}.",
        f"computes {q(t)} as {q(f)} * {q(p)} / 10000, {rounding}, where {q(p)} is a context parameter in basis points defaulting to {d}.",
    ]) + missing_clause(rng, f)
    expr = f"(ll.field(rec, {lit(f)}) * bp + 5000) // 10000" if up else f"ll.field(rec, {lit(f)}) * bp // 10000"
    body = [f"bp = ctx.param({lit(p)}, {d})", f"return ll.ok(ll.amend(rec, {t}={expr}))"]
    calc = (lambda a, b: (a * b + 5000) // 10000) if up else (lambda a, b: a * b // 10000)
    tests = Tests(name)
    other = d * 3 + 11
    for bp, ctx in ((d, None), (d, None), (other, f"ll.Ctx({p}={other})")):
        a = rng.randrange(1001, 250000)
        while (a * bp) % 10000 in (0, 5000):
            a += 1
        tests.ok({f: a}, {f: a, t: calc(a, bp)}, ctx)
    tests.ok({f: 0}, {f: 0, t: 0})
    tests.fail(filler(rng, [f]), "E_MISSING")
    return name, vp, make_code(name, body, (f,)), tests


def fam_dedupe(rng):
    pair = rng.random() < 0.35
    if pair:
        a, b = rng.choice([("vendor", "invoice_no"), ("employee_id", "week"), ("payee", "payment_ref"), ("account_id", "receipt_no"),
                           ("carrier", "order_ref"), ("from_account", "txn_id"), ("region", "ticket_no")])
        fs = [a, b]
        name = rng.choice(["dedupe-{a}-{b}", "reject-repeat-{b}", "block-duplicate-{b}"]).format(a=kebab(a), b=kebab(b))
        vp = rng.choice([f"fails with E_DUPLICATE when the pair ({q(a)}, {q(b)}) already appeared on an earlier record in the same run (remember it in the context); first occurrences pass on unchanged.",
                         f"rejects a record with E_DUPLICATE if an earlier record in this run had the same {q(a)} and {q(b)}, tracking what was seen through the context; otherwise the record passes unchanged."])
        key = f"(ll.field(rec, {lit(a)}), ll.field(rec, {lit(b)}))"
    else:
        f = rng.choice(list(IDS) + ["email", "account_no", "employee_id"])
        fs = [f]
        name = rng.choice(["dedupe-{k}", "reject-repeat-{k}", "block-duplicate-{k}", "check-{k}-unique"]).format(k=kebab(f))
        vp = rng.choice([f"fails with E_DUPLICATE when a record's {q(f)} was already seen earlier in the same run (use the context to remember it), and passes first occurrences on unchanged.",
                         f"lets only the first record with a given {q(f)} through unchanged; later ones in the same run fail with E_DUPLICATE (track seen values via the context)."])
        key = f"ll.field(rec, {lit(f)})"
    need = rng.random() < 0.4
    if need:
        vp += f" Records missing {'it' if len(fs) == 1 else 'either field'} fail with E_MISSING."
    body = [f"if ctx.seen({key}):", f"    return ll.fail(ll.E_DUPLICATE, {lit(' and '.join(fs) + ' already seen')})", "return ll.ok(rec)"]
    tests = Tests(name)
    tests.raw('_c = ll.Ctx(today="2024-06-30")')
    r1 = {f: sample(rng, f) for f in fs}
    r2 = dict(r1)
    while r2 == r1:
        r2 = {**r1, fs[-1]: sample(rng, fs[-1])}
    tests.ok({**r1, **filler(rng, fs)}, None, "_c")
    tests.ok(r2, None, "_c")
    tests.fail({**r1, "memo": "second copy"}, "E_DUPLICATE", "_c")
    tests.fail(dict(r2), "E_DUPLICATE", "_c")
    if pair:
        r3 = {**r1, fs[0]: r1[fs[0]] + "x"}
        tests.ok(r3, None, "_c")
    tests.ok(dict(r1), None, 'll.Ctx(today="2024-06-30")')
    if need:
        tests.fail({fs[-1]: r1[fs[-1]]} if pair else filler(rng, fs), "E_MISSING", "_c")
    return name, vp, make_code(name, body, fs if need else ()), tests


def _formats(rng):
    """(field, bad-when phrase, good-when phrase, bad-condition on `value`, good values, bad values, name patterns)."""
    kind = rng.choice(["prefix", "prefix", "digits", "length", "email", "suffix", "upper"])
    if kind == "prefix":
        f, pre = rng.choice(list(IDS.items()))
        return (f, f'does not start with "{pre}"', f'starts with "{pre}"', f"not value.startswith({lit(pre)})",
                [f"{pre}{rng.randint(100, 99999)}", f"{pre}7"], [f"{pre.lower()}{rng.randint(100, 999)}", str(rng.randint(100, 99999)), f"X{pre}12"],
                ["check-{k}-prefix", "validate-{k}"])
    if kind == "digits":
        f = rng.choice(["account_no", "branch_code", "tax_number", "member_no", "sort_code"])
        return (f, "is not made of digits only (or is empty)", "is a non-empty string of digits", "not value.isdigit()",
                ["00428", str(rng.randint(100000, 999999))], ["12a4", "", "12 34"], ["require-numeric-{k}", "check-{k}-digits"])
    if kind == "length":
        f, n = rng.choice([("country", 2), ("currency", 3), ("branch_code", 6), ("region_code", 4), ("pin", 4), ("desk_code", 5)])
        good = "".join(rng.choice("ABCDEFGHJK") for _ in range(n))
        return (f, f"is not exactly {n} characters long", f"is exactly {n} characters long", f"len(value) != {n}",
                [good, "9" * n], [good[:-1], good + "Z", ""], ["check-{k}-length", "validate-{k}-size"])
    if kind == "email":
        f = rng.choice(["email", "contact_email", "billing_email", "notify_email"])
        return (f, 'does not contain exactly one "@"', 'contains exactly one "@"', 'value.count("@") != 1',
                ["ana@corp.example", "x@y"], ["ana.corp.example", "a@b@c.example", ""], ["check-{k}-at-sign", "validate-{k}"])
    if kind == "suffix":
        f, suf = rng.choice([("attachment", ".pdf"), ("export_file", ".csv"), ("scan", ".png"), ("statement", ".pdf"), ("report_file", ".xlsx")])
        return (f, f'does not end with "{suf}"', f'ends with "{suf}"', f"not value.endswith({lit(suf)})",
                [f"q3-report{suf}", f"a{suf}"], [f"q3-report{suf.upper()}", f"q3{suf}.bak", "notes.txt"], ["check-{k}-extension", "require-{k}-type"])
    f = rng.choice(["currency", "country", "region_code", "desk_code"])
    return (f, "is not written in upper-case letters only", "consists of upper-case letters only",
            "not (value.isalpha() and value.isupper())", ["EUR", "NLD"], ["eur", "Eu1", "E-R", ""], ["require-upper-{k}", "check-{k}-case"])


def fam_format(rng):
    f, bad_when, good_when, cond, good, bad, names = _formats(rng)
    name = rng.choice(names + ["guard-{k}-format"]).format(k=kebab(f))
    vp = rng.choice([f"fails with E_FORMAT when {q(f)} {bad_when}, {rng.choice(UNCHANGED)}.",
                     f"checks that {q(f)} {good_when}: otherwise the record fails with E_FORMAT; well-formed records pass on unchanged."])
    vp += missing_clause(rng, f)
    body = [f"value = ll.field(rec, {lit(f)})", f"if {cond}:", f"    return ll.fail(ll.E_FORMAT, {lit(f'{f} is malformed')})", "return ll.ok(rec)"]
    tests = Tests(name)
    for v in good:
        tests.ok({f: v, **filler(rng, [f])})
    for v in bad:
        tests.fail({f: v}, "E_FORMAT")
    tests.fail(filler(rng, [f]), "E_MISSING")
    return name, vp, make_code(name, body, (f,)), tests


def fam_dates(rng):
    f, noun = rng.choice(list(DATES.items()))
    n = rng.choice([7, 14, 30, 45, 60, 90, 180, 365])
    mode = rng.choice(["stale", "stale", "future", "recent"])
    today = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(0, 600))
    day = lambda ago: (today - dt.timedelta(days=ago)).isoformat()  # noqa: E731
    fmt = rng.choice([f" and with E_FORMAT when {q(f)} is not a YYYY-MM-DD date", f"; a value of {q(f)} that is not an ISO date fails with E_FORMAT"])
    if mode == "stale":
        name = rng.choice(["expire-stale-{x}", "reject-old-{x}", "check-{k}-age"]).format(x=noun, k=kebab(f))
        vp = f"fails with E_POLICY when {q(f)} is more than {n} days before the context's today date{fmt}."
        check, cases = f"age > {n}", [(n, True), (n + 1, False), (0, True), (n * 3, False)]
    elif mode == "future":
        name = rng.choice(["reject-future-{x}", "check-{k}-not-future", "block-postdated-{x}"]).format(x=noun, k=kebab(f))
        vp = f"fails with E_POLICY when {q(f)} is after the context's today date{fmt}."
        check, cases = "age < 0", [(0, True), (-1, False), (n, True), (-n, False)]
    else:
        name = rng.choice(["hold-recent-{x}", "enforce-{x}-cooling-off", "check-{k}-waiting-period"]).format(x=noun, k=kebab(f))
        vp = f"fails with E_POLICY when {q(f)} is fewer than {n} days before the context's today date (a waiting period){fmt}."
        check, cases = f"age < {n}", [(n - 1, False), (n, True), (n * 2, True), (0, False)]
    vp += missing_clause(rng, f)
    body = [f"age = ll.days_between(ll.field(rec, {lit(f)}), ctx.today)", "if age is None:",
            f"    return ll.fail(ll.E_FORMAT, {lit(f'{f} is not a date')})", f"if {check}:",
            f"    return ll.fail(ll.E_POLICY, {lit(f'{f} breaks the {n}-day rule' if mode != 'future' else f'{f} is in the future')})",
            "return ll.ok(rec)"]
    tests = Tests(name)
    ctx = f'll.Ctx(today="{today.isoformat()}")'
    for ago, good in cases:
        rec = {f: day(ago), **filler(rng, [f])}
        tests.ok(rec, None, ctx) if good else tests.fail(rec, "E_POLICY", ctx)
    tests.fail({f: rng.choice([today.strftime("%d/%m/%Y"), "soon", "2024-13-40"])}, "E_FORMAT", ctx)
    tests.fail(filler(rng, [f]), "E_MISSING", ctx)
    return name, vp, make_code(name, body, (f,)), tests


# mode: (phrase, expression in the reference code, the same as a function, fields)
NORMALIZE = {
    "lower": ("in lower case", "value.lower()", str.lower, ["email", "username", "handle", "contact_email"]),
    "upper": ("in upper case", "value.upper()", str.upper, ["currency", "country", "sku", "region_code", "desk_code"]),
    "strip": ("with leading and trailing whitespace removed", "value.strip()", str.strip, ["memo", "customer_name", "vendor", "payee"]),
    "strip_lower": ("trimmed of surrounding whitespace and lower-cased", "value.strip().lower()", lambda v: v.strip().lower(),
                    ["email", "username", "handle"]),
    "strip_upper": ("trimmed of surrounding whitespace and upper-cased", "value.strip().upper()", lambda v: v.strip().upper(),
                    ["sku", "currency", "country"]),
    "squash": ("with every run of whitespace collapsed to one space and the ends trimmed", '" ".join(value.split())',
               lambda v: " ".join(v.split()), ["customer_name", "vendor", "address", "payee"]),
}
MESSY = {"email": [" Ana@Corp.Example ", "OPS@LEDGER.example"], "username": ["  KVoss", "mira_T "],
         "handle": ["@Tarn_Works ", "QUILL"], "contact_email": ["Pell@Studio.Example", " x@Y "],
         "currency": ["eur", " Sek "], "country": ["nl", " de"], "sku": ["ab-102 ", "qx-77"], "region_code": ["nw01", "se02 "],
         "desk_code": ["hq-4", " e1b"], "memo": ["  late upload ", "carried over\n"], "customer_name": ["  Wen   Okoro ", "Ines  Karlo"],
         "vendor": [" Tarn  Works", "Quillby Supply  "], "payee": ["  Rovan   Holdings", "K. Ilves "], "address": ["12  Quarry Lane ", " 4 Saltmarsh\tRoad"]}


def fam_normalize(rng):
    mode = rng.choice(list(NORMALIZE))
    desc, expr, fn, fs = NORMALIZE[mode]
    f = rng.choice(fs)
    k = kebab(f)
    name = rng.choice(["normalize-{k}", "clean-{k}", "tidy-{k}", "canon-{k}"]).format(k=k)
    strict = rng.random() < 0.4
    vp = rng.choice([f"rewrites {q(f)} {desc}", f"stores {q(f)} {desc}"])
    vp += f"; it fails with E_TYPE when {q(f)} is not a string"
    vp += (", and records without it fail with E_MISSING." if strict else ", and records without it pass on unchanged.")
    body = [f"value = ll.field(rec, {lit(f)})"] + ([] if strict else ["if value is ll.ABSENT:", "    return ll.ok(rec)"]) + [
        "if not isinstance(value, str):", f"    return ll.fail(ll.E_TYPE, {lit(f'{f} is not text')})",
        f"return ll.ok(ll.amend(rec, {f}={expr}))"]
    tests = Tests(name)
    for v in MESSY[f]:
        extra = filler(rng, [f])
        tests.ok({f: v, **extra}, {f: fn(v), **extra})
    tests.fail({f: rng.randint(5, 500)}, "E_TYPE")
    missing = filler(rng, [f])
    tests.fail(missing, "E_MISSING") if strict else tests.ok(missing)
    return name, vp, make_code(name, body, (f,) if strict else ()), tests


def fam_bookkeeping(rng):
    mode = rng.choice(["tally", "tally", "sum", "note"])
    if mode == "tally":
        f = rng.choice(["region", "channel", "tier", "currency", "carrier", "category", "status"])
        unk = rng.choice(["unknown", "none", "unset", "(missing)"])
        name = rng.choice(["tally-{k}", "count-by-{k}", "count-{k}-values"]).format(k=kebab(f))
        vp = rng.choice([f"counts each record in the context tallies under its {q(f)} value (records without {q(f)} count under \"{unk}\") and passes every record on unchanged.",
                         f"tallies records on the context by {q(f)}, using \"{unk}\" when the field is absent; each record then passes through unchanged."])
        body = [f"ctx.tally(ll.field(rec, {lit(f)}, {lit(unk)}))", "return ll.ok(rec)"]
        recs = [{f: rng.choice(TEXT[f])} for _ in range(4)] + [filler(rng, [f])]
        want = dict(Counter(r.get(f, unk) for r in recs))
    elif mode == "sum":
        f = rng.choice(MONEY + COUNTS)
        key = rng.choice(["{f}_total", "sum_{f}", "total_{f}"]).format(f=f)
        name = rng.choice(["sum-{k}", "total-up-{k}", "track-{k}-total"]).format(k=kebab(f))
        vp = (f"adds each record's {q(f)} to the context tally \"{key}\" (a missing {q(f)} adds 0) and passes every "
              f"record on unchanged.")
        body = [f"ctx.tally({lit(key)}, ll.field(rec, {lit(f)}, 0))", "return ll.ok(rec)"]
        recs = [{f: sample(rng, f)} for _ in range(3)] + [filler(rng, [f]), {f: sample(rng, f), **filler(rng, [f])}]
        want = {key: sum(r.get(f, 0) for r in recs)}
    else:
        f = rng.choice(MONEY)
        idf = rng.choice(list(IDS))
        t = rng.choice([10000, 50000, 100000, 250000])
        name = rng.choice(["note-large-{k}", "watch-{k}", "report-big-{k}"]).format(k=kebab(f))
        vp = rng.choice([f"leaves a note on the context naming the record's {q(idf)} whenever {q(f)} is above {t} (steps never print); every record passes on unchanged.",
                         f"passes every record on unchanged, but when {q(f)} exceeds {t} it adds a context note that mentions the record's {q(idf)}."])
        body = [f"if ll.field(rec, {lit(f)}) > {t}:", f"    ctx.note(f\"{f} above {t} on {{ll.field(rec, '{idf}')}}\")", "return ll.ok(rec)"]
        vals = [t + 1, t, t * 2, 5, t + 999]
        recs = [{idf: f"{IDS[idf]}{rng.randint(1000, 9999)}{i}", f: v} for i, v in enumerate(vals)]
        want = None
    tests = Tests(name)
    tests.raw('_c = ll.Ctx(today="2024-06-30")')
    for r in recs:
        tests.ok(r, None, "_c")
    if want is not None:
        tests.raw(f"assert _c.counts == {want!r}, {'context tallies should be ' + repr(want) + ', got '!r} + repr(_c.counts)")
    else:
        big = [r[idf] for r in recs if r[f] > t]
        tests.raw(f"assert len(_c.notes) == {len(big)}, {f'expected {len(big)} notes, got '!r} + repr(_c.notes)",
                  f"assert all(i in n for i, n in zip({big!r}, _c.notes)), {'each note names its record: '!r} + repr(_c.notes)")
    return name, vp, make_code(name, body), tests


def fam_clamp(rng):
    f = rng.choice(MONEY + COUNTS)
    k = kebab(f)
    mode = rng.choice(["cap", "cap", "zero", "floor"])
    t = rng.choice([500, 2500, 10000, 50000]) if f in MONEY else rng.randint(2, 50)
    tail = rng.choice([f" Records without {q(f)} pass on unchanged.", f" A record with no {q(f)} passes through as it is."])
    if mode == "cap":
        name = rng.choice(["cap-{k}", "clamp-{k}", "limit-{k}-to-max"]).format(k=k)
        vp = rng.choice([f"caps {q(f)} at {t}: a larger value is replaced by {t}, smaller or equal ones are kept.",
                         f"lowers {q(f)} to {t} when it is above {t} and leaves it alone otherwise."]) + tail
        body = [f"value = ll.field(rec, {lit(f)})", f"if value is not ll.ABSENT and value > {t}:",
                f"    return ll.ok(ll.amend(rec, {f}={t}))", "return ll.ok(rec)"]
        fix = lambda v: min(v, t)  # noqa: E731
        vals = [t + 1, t, t - 1, t * 5]
    elif mode == "zero":
        name = rng.choice(["floor-{k}-at-zero", "clear-negative-{k}", "no-negative-{k}"]).format(k=k)
        vp = rng.choice([f"turns a negative {q(f)} into 0 and keeps zero or positive values as they are.",
                         f"replaces any {q(f)} below zero with 0, {rng.choice(UNCHANGED)}."]) + tail
        body = [f"value = ll.field(rec, {lit(f)})", "if value is not ll.ABSENT and value < 0:",
                f"    return ll.ok(ll.amend(rec, {f}=0))", "return ll.ok(rec)"]
        fix = lambda v: max(v, 0)  # noqa: E731
        vals = [-1, 0, t, -t]
    else:
        name = rng.choice(["raise-{k}-to-min", "floor-{k}", "bump-low-{k}"]).format(k=k)
        vp = rng.choice([f"raises {q(f)} to {t} when it is lower than {t}, keeping larger or equal values as they are.",
                         f"makes {t} the smallest allowed {q(f)}: a lower value is replaced by {t}, others are kept."]) + tail
        body = [f"value = ll.field(rec, {lit(f)})", f"if value is not ll.ABSENT and value < {t}:",
                f"    return ll.ok(ll.amend(rec, {f}={t}))", "return ll.ok(rec)"]
        fix = lambda v: max(v, t)  # noqa: E731
        vals = [t - 1, t, t + 1, 0]
    tests = Tests(name)
    for v in vals:
        extra = filler(rng, [f])
        tests.ok({f: v, **extra}, {f: fix(v), **extra})
    tests.ok(filler(rng, [f]))
    return name, vp, make_code(name, body), tests


FAMILIES = {
    "bound-check": fam_bound, "require-fields": fam_require, "type-check": fam_type, "drop-records": fam_drop,
    "rename-field": fam_rename, "default-value": fam_default, "trim-fields": fam_trim, "money-text": fam_money_text,
    "combine-amounts": fam_combine, "basis-points": fam_bps, "dedupe": fam_dedupe, "text-format": fam_format,
    "date-policy": fam_dates, "normalize-text": fam_normalize, "context-bookkeeping": fam_bookkeeping, "clamp": fam_clamp,
}


def make_row(rng: random.Random, family: str) -> dict:
    name, vp, code, tests = FAMILIES[family](rng)
    opener = rng.choice(OPENERS)
    intent = opener.format(n=name, vp=vp, VP=vp[0].upper() + vp[1:])
    return {"messages": [{"role": "user", "content": intent}, {"role": "assistant", "content": code}],
            "family": family, "tests": tests.source(), "style": STYLE}


_SPACE = re.compile(r"\s+")


def shingles(text: str, k: int = SHINGLE) -> frozenset[str]:
    """The check's shingles: k-character substrings of the whitespace-collapsed, case-folded text."""
    text = _SPACE.sub(" ", text).strip().casefold()
    if len(text) <= k:
        return frozenset({text})
    return frozenset(text[i:i + k] for i in range(len(text) - k + 1))


def near_any(s: frozenset[str], others: list[frozenset[str]], threshold: float = NEAR) -> bool:
    """Whether s has Jaccard similarity >= threshold with any of others."""
    for o in others:
        small, large = (len(s), len(o)) if len(s) <= len(o) else (len(o), len(s))
        if small < threshold * large:  # Jaccard <= small / large
            continue
        inter = len(s & o)
        if inter >= threshold * (len(s) + len(o) - inter):
            return True
    return False


def conversation_text(row: dict) -> str:
    """What `tunesmith check` compares for near-duplicates: every turn as "role: content", one per line."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in row["messages"])


def prompt_text(row: dict) -> str:
    """What it compares for leakage: the turns before the last assistant turn."""
    last = max(i for i, m in enumerate(row["messages"]) if m["role"] == "assistant")
    return "\n".join(f"{m['role']}: {m['content']}" for m in row["messages"][:last])


def generate(seed: int) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    seen_intents: set[str] = set()
    seen_codes: set[str] = set()
    convs: dict[str, list[frozenset[str]]] = {s: [] for s, _ in SPLITS}  # shingles of accepted rows, per split
    prompts: dict[str, list[frozenset[str]]] = {s: [] for s, _ in SPLITS}  # ... and of their intents
    out: dict[str, list[dict]] = {}
    names = list(FAMILIES)
    for si, (split, n) in enumerate(SPLITS):
        earlier = [s for s, _ in SPLITS[:si]]
        rows: list[dict] = []
        order = names[:]
        rng.shuffle(order)  # which families get the extra rows differs by split
        for i in range(n):
            family = order[i % len(order)]
            for _ in range(ATTEMPTS):
                row = make_row(rng, family)
                intent, code = row["messages"][0]["content"], row["messages"][1]["content"]
                words = len(intent.split())
                if intent in seen_intents or code in seen_codes or not INTENT_WORDS[0] <= words <= INTENT_WORDS[1]:
                    continue
                conv, prompt = shingles(conversation_text(row)), shingles(prompt_text(row))
                if near_any(conv, convs[split]) or any(near_any(prompt, prompts[s]) for s in earlier):
                    continue
                seen_intents.add(intent)
                seen_codes.add(code)
                convs[split].append(conv)
                prompts[split].append(prompt)
                rows.append(row)
                break
            else:
                raise SystemExit(f"could not make a new {family} row")
        rng.shuffle(rows)
        out[split] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in generate(args.seed).items():
        with open(out_dir / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        words = [len(r["messages"][0]["content"].split()) for r in rows]
        chars = [len(r["messages"][0]["content"]) + len(r["messages"][1]["content"]) for r in rows]
        lines = [r["messages"][1]["content"].count("\n") + 1 for r in rows]
        fams = Counter(r["family"] for r in rows)
        print(f"{split}: {len(rows)} rows, {len(fams)} families ({min(fams.values())}-{max(fams.values())} rows each), "
              f"intent {min(words)}-{max(words)} words, code {min(lines)}-{max(lines)} lines, "
              f"intent+code {min(chars)}-{max(chars)} chars")


if __name__ == "__main__":
    main()
