"""The masked-token view: a rendered row as text pieces, each marked trained or not (and its token id).

This is what `render` decided, made visible: the prompt in grey, trained tokens in colour (or marked in the
HTML report), so a masked EOS or a trained system prompt is seen at a glance.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from rich.text import Text

from tunesmith.render import IGNORE, Rendered

TRAINED_STYLE = "bold black on green3"
PROMPT_STYLE = "grey62"


def segments(tokenizer, row: Rendered) -> list[dict]:
    """One entry per token: its text (decoded in context, so multi-byte characters stay whole), id, trained."""
    out, shown = [], ""
    for i, token in enumerate(row.input_ids):
        text = tokenizer.decode(row.input_ids[: i + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        piece, shown = text[len(shown) :] if text.startswith(shown) else text, text
        out.append({"text": piece, "id": int(token), "trained": row.labels[i] != IGNORE})
    return out


def runs(pieces: Sequence[dict]) -> list[dict]:
    """Consecutive tokens with the same mark merged: what is shown when ids are not asked for."""
    merged: list[dict] = []
    for p in pieces:
        if merged and merged[-1]["trained"] == p["trained"]:
            merged[-1]["text"] += p["text"]
            merged[-1]["ids"].append(p["id"])
        else:
            merged.append({"text": p["text"], "trained": p["trained"], "ids": [p["id"]]})
    return merged


def choose(n_rows: int, n: int, seed: int = 0) -> list[int]:
    """Which rows to show: a seeded sample, in file order."""
    if n <= 0 or n_rows == 0:
        return []
    return sorted(random.Random(seed).sample(range(n_rows), min(n, n_rows)))


def redacted(pieces: list[dict]) -> list[dict]:
    """The pieces with every PII or secret (as the pii check finds them) redacted across token boundaries: the
    redacted form goes in the first piece the secret starts in, its other pieces lose their share of it."""
    from tunesmith.check.pii import matches, redact

    text = "".join(p["text"] for p in pieces)
    found = matches(text)
    if not found:
        return pieces
    out, at = [], 0
    for p in pieces:
        start, end, shown = at, at + len(p["text"]), ""
        i = start
        while i < end:
            hit = next(((a, b, v) for _, a, b, v in found if a <= i < b), None)
            if hit is None:
                shown += text[i]
                i += 1
                continue
            a, b, value = hit
            shown += redact(value) if i == a else ""
            i = min(b, end)
        out.append({**p, "text": shown})
        at = end
    return out


def sample(tokenizer, row: Rendered, *, redact: bool = True) -> dict:
    """A row's masked-token view as data (for the terminal, JSON and HTML reports); PII and secrets redacted
    unless `redact` is False."""
    pieces = segments(tokenizer, row)
    pieces = redacted(pieces) if redact else pieces
    return {
        "origin": str(row.origin),
        "tokens": len(row.input_ids),
        "trained": sum(1 for x in row.labels if x != IGNORE),
        "truncated": row.truncated,
        "pieces": pieces,
    }


def to_text(view: dict, show_ids: bool = False) -> Text:
    """The view for the terminal: trained tokens highlighted, token ids after each token on request."""
    out = Text()
    if show_ids:
        for p in view["pieces"]:
            out.append(p["text"], style=TRAINED_STYLE if p["trained"] else PROMPT_STYLE)
            out.append(f"[{p['id']}]", style="cyan" if p["trained"] else "grey42")
    else:
        for r in runs(view["pieces"]):
            out.append(r["text"], style=TRAINED_STYLE if r["trained"] else PROMPT_STYLE)
    return out
