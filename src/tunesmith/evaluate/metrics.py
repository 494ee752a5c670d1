"""Task metrics on generated answers."""

from __future__ import annotations

import re
import unicodedata


def normalise(text: str) -> str:
    """Case-, accent- and whitespace-insensitive form used for exact match."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.split()).strip(" .!?\"'")


def extract(text: str, answer_regex: str | None) -> str:
    """The part of an answer that is scored: the regex's first group (or whole match), else the text."""
    if answer_regex is None:
        return text
    m = re.search(answer_regex, text, flags=re.MULTILINE)
    if m is None:
        return ""
    return m.group(1) if m.groups() else m.group(0)


def exact_match(predictions: list[str], references: list[str], answer_regex: str | None = None) -> float:
    """Share of predictions whose scored part equals the reference's, after normalisation."""
    if not references:
        return 0.0
    hits = sum(normalise(extract(p, answer_regex)) == normalise(extract(r, answer_regex)) and
               extract(r, answer_regex) != "" for p, r in zip(predictions, references))
    return hits / len(references)
