"""Secrets and PII never leave `check` in full: the masked-token samples (terminal, JSON, HTML) are redacted as
the pii finding is, also where a secret spans several tokens."""

from __future__ import annotations

import json

import tiny
from tunesmith.check.pii import redact_text
from tunesmith.check.view import redacted, sample
from tunesmith.data.types import Conversation, Message
from tunesmith.render import render

CARD = "4539 1488 0343 6467"  # Luhn-valid test number
KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"


def test_redact_text():
    text = f"mail jane.doe@example.com, card {CARD}."
    out = redact_text(text)
    assert "jane.doe@example.com" not in out and "0343" not in out
    assert out.startswith("mail jan***om, card 453***67")


def test_pieces_are_redacted_across_token_boundaries():
    pieces = [{"text": t, "trained": False, "id": i} for i, t in enumerate(["write to ja", "ne@exa", "mple.com now"])]
    shown = "".join(p["text"] for p in redacted(pieces))
    assert shown == "write to jan***om now"
    assert [p["id"] for p in redacted(pieces)] == [0, 1, 2]  # one piece per token still


def test_masked_token_samples_are_redacted():
    tok = tiny.chatml_tokenizer()
    conv = Conversation(
        "t.jsonl:1",  # type: ignore[arg-type]
        (Message("user", f"My key is {KEY} and card {CARD}"), Message("assistant", "Rotate it at once.")),
    )
    row = render(conv, tok, max_length=512)
    view = sample(tok, row)
    shown = "".join(p["text"] for p in view["pieces"])
    assert KEY not in shown and "0343" not in shown and "1488" not in shown
    assert "sk-***p6" in shown and "453***67" in shown
    assert "0343" not in json.dumps(view)
    raw = "".join(p["text"] for p in sample(tok, row, redact=False)["pieces"])
    assert CARD in raw and KEY in raw  # only on request
