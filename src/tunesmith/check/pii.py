"""PII and secrets in training text: emails, phone numbers, payment card numbers (Luhn-checked), API keys
and private keys. Each hit names the record's `path:line` and field; matches are shown redacted."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from tunesmith.check.findings import Finding
from tunesmith.data.types import Conversation

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})(?:[ .-]\d{2,4}){2,4}(?![\w-])"
    r"|(?<![\w+])\+\d{9,14}(?!\w)"
)
SECRETS = (
    ("private key", re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")),
    ("API key (OpenAI)", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}")),
    ("API key (AWS access key id)", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("API key (GitHub token)", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("API key (Slack token)", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("API key (Google)", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("API key (Hugging Face)", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("API key (Stripe)", re.compile(r"\b[rs]k_live_[A-Za-z0-9]{20,}\b")),
)


def luhn(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def redact(value: str) -> str:
    """Enough of a match to find it, not enough to leak it."""
    if len(value) <= 6:
        return value[0] + "***"
    return value[:3] + "***" + value[-2:]


def matches(text: str) -> list[tuple[str, int, int, str]]:
    """(kind, start, end, shown value) of each PII or secret in a text; a span is reported under one kind only."""
    found: list[tuple[str, int, int, str]] = []

    def free(m: re.Match) -> bool:
        return all(m.end() <= a or m.start() >= b for _, a, b, _ in found)

    for kind, pattern in SECRETS:
        for m in pattern.finditer(text):
            if free(m):
                found.append((kind, *m.span(), m.group(0)))
    for m in EMAIL.finditer(text):
        if free(m):
            found.append(("email address", *m.span(), m.group(0)))
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and luhn(digits) and free(m):
            found.append(("card number (Luhn-valid)", *m.span(), digits))
    for m in PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 10 <= len(digits) <= 15 and free(m):
            found.append(("phone number", *m.span(), m.group(0)))
    return found


def scan_text(text: str) -> Iterator[tuple[str, str]]:
    """(kind, redacted match) for each PII or secret in a text."""
    for kind, _, _, value in matches(text):
        yield kind, redact(value)


def redact_text(text: str) -> str:
    """The text with every PII or secret replaced by its redacted form (as the pii finding shows it)."""
    for _, start, end, value in sorted(matches(text), key=lambda m: -m[1]):
        text = text[:start] + redact(value) + text[end:]
    return text


def fields(conv: Conversation) -> Iterator[tuple[str, str]]:
    """(field name as the user wrote it, text) for each text field of a record."""
    if conv.is_text:
        yield "text", conv.text or ""
        return
    fmt = conv.source_format
    for i, m in enumerate(conv.messages):
        if fmt == "messages":
            name = f"messages[{i}].content"
        elif fmt == "prompt_completion":
            name = {"system": "system", "assistant": "completion"}.get(m.role, "prompt")
        else:
            name = {"system": "system", "user": "instruction", "assistant": "output"}[m.role]
        yield name, m.content


def pii_findings(convs: Iterable[Conversation]) -> list[Finding]:
    """One warning per record field holding PII or secrets, naming what was found."""
    out = []
    for conv in convs:
        for name, text in fields(conv):
            hits = list(scan_text(text))
            if hits:
                what = ", ".join(f"{kind} {shown!r}" for kind, shown in hits)
                out.append(
                    Finding("warning", "pii", f"possible PII or secret: {what}", origin=str(conv.origin), field=name)
                )
    return out
