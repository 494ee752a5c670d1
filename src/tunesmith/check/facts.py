"""Does the training data try to teach facts? Fine-tuning teaches style, format and reasoning; a model tuned on
question -> fact pairs repeats trained phrasings but fails on rephrased and combined questions (measured in
`examples/facts-vs-format`, docs/check.md). Retrieval (RAG) is the tool for facts. The signal: answers that
state specifics (numbers, dates, names) found neither in their prompt nor in more than a few other answers;
labels, codes and a framework's identifiers recur across answers, extracted fields appear in the prompt."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from tunesmith.check.analytics import completion_text, prompt_text
from tunesmith.check.contract import Row
from tunesmith.check.findings import Finding

SHARE = 0.3  # fire when at least this share of the chat training rows state new, rare specifics
MIN_ROWS = 20  # fewer rows are no pattern
_TOKEN = re.compile(r"[A-Za-z][\w'&-]*|\d[\d.,:/%-]*")


def _specifics(text: str) -> set[str]:
    """Tokens of `text` that name something specific: with a digit, or capitalised inside a sentence."""
    out = set()
    for m in _TOKEN.finditer(text):
        token = m.group(0).rstrip(".,:;-")
        if not token:
            continue
        before = text[: m.start()].rstrip()
        sentence_start = not before or before[-1] in ".!?:\n\"'("
        if any(ch.isdigit() for ch in token) or (token[0].isupper() and not sentence_start and len(token) > 1):
            out.add(token.casefold())
    return out


def _words(text: str) -> set[str]:
    return {m.group(0).rstrip(".,:;-").casefold() for m in _TOKEN.finditer(text)}


def fact_rows(rows: Sequence[Row]) -> tuple[list[int], int]:
    """(indices of the rows whose answers state new, rare specifics; chat training rows looked at)."""
    chats = [i for i, r in enumerate(rows) if r.split == "train" and not r.conv.is_text and r.conv.reference()]
    answers = {i: completion_text(rows[i].conv) for i in chats}
    specifics = {i: _specifics(answers[i]) for i in chats}
    df = Counter(token for i in chats for token in specifics[i])
    rare = max(3, len(chats) // 100)  # a fact is stated in a few rows (its phrasings), a label in many
    hits = []
    for i in chats:
        asked = _words(prompt_text(rows[i].conv))
        if any(df[token] <= rare and token not in asked for token in specifics[i]):
            hits.append(i)
    return hits, len(chats)


def fact_injection(rows: Sequence[Row]) -> list[Finding]:
    """One warning when the training answers look like facts to memorise, recommending retrieval."""
    hits, chats = fact_rows(rows)
    if chats < MIN_ROWS or len(hits) < SHARE * chats:
        return []
    examples = ", ".join(str(rows[i].conv.origin) for i in hits[:3])
    return [
        Finding(
            "warning",
            "fact_injection",
            f"{len(hits)} of {chats} training answers ({100 * len(hits) / chats:.0f}%) state specifics (names, "
            f"numbers, dates) found neither in their prompt nor in other answers: this looks like teaching the "
            f"model facts. Fine-tuning teaches style, format and reasoning; a tuned model repeats trained "
            f"phrasings but fails on rephrased or combined questions (docs/check.md). For facts, retrieve them "
            f"at answer time (RAG) and fine-tune on how to answer from the retrieved text. E.g. {examples}",
            origin=str(rows[hits[0]].conv.origin),
        )
    ]
