"""The training contract over a whole data set: format problems (`data.find_problems`, every bad record with
`path:line` and field), then each row's contract (`tunesmith/contract.py`, as `tunesmith train` applies it)
and the counts behind it: truncation, dropped rows, pad = eos.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tunesmith.contract import row_findings, truncate
from tunesmith.data import find_problems, normalise, scan_records
from tunesmith.data.types import Conversation
from tunesmith.errors import DataError
from tunesmith.findings import Finding, from_error
from tunesmith.render import IGNORE, Rendered, stop_token_ids

__all__ = ["Row", "contract_findings", "format_findings", "load_good", "row_findings", "truncate"]

PER_CHECK_LIMIT = 20  # per-row findings listed per check; the rest are counted


@dataclass(frozen=True)
class Row:
    """One good record and its rendering: `full` before truncation, `row` as training sees it."""

    conv: Conversation
    full: Rendered
    row: Rendered
    split: str  # "train" or "eval"

    @property
    def kept(self) -> bool:
        """Training drops a row with no trained token after position 0 (label 0 has no context)."""
        return any(x != IGNORE for x in self.row.labels[1:])


def format_findings(
    path: str | os.PathLike, columns: Mapping[str, str] | None, limit: int
) -> tuple[list[Finding], int]:
    """Every bad record of a data file (up to `limit`) as error findings, and how many there are in all."""
    problems, total = find_problems(path, columns, limit)
    return [from_error(p) for p in problems], total


def load_good(path: str | os.PathLike, columns: Mapping[str, str] | None) -> list[Conversation]:
    """The records of a file that normalise cleanly (bad ones are reported by `format_findings`)."""
    good: list[Conversation] = []
    try:
        for origin, item in scan_records(path):
            if isinstance(item, DataError):
                continue
            try:
                conv = normalise(item, origin, columns)
            except DataError:
                continue
            if good and conv.is_text != good[0].is_text:
                continue
            good.append(conv)
    except DataError:
        pass
    return good


def contract_findings(
    rows: Sequence[Row], tokenizer, *, max_length: int, system_prompt: str | None, train_path: str
) -> tuple[list[Finding], dict, dict[str, int]]:
    """Contract findings over all rows, the counts behind them, and per-check findings left out."""
    end_ids = set(stop_token_ids(tokenizer))
    findings: list[Finding] = []
    left_out: dict[str, int] = {}

    def add(f: Finding) -> None:
        if sum(1 for g in findings if g.check == f.check) < PER_CHECK_LIMIT:
            findings.append(f)
        else:
            left_out[f.check] = left_out.get(f.check, 0) + 1

    if not tokenizer.chat_template:
        add(
            Finding(
                "warning",
                "no_chat_template",
                "the tokenizer has no chat template (a base model): rows "
                "are rendered in tunesmith's plain '### User:/### Assistant:' format; tunesmith generate, "
                "chat, serve and its exports use the same, other inference stacks may not (data.template picks "
                "one: chatml, llama3, plain or a file)",
            )
        )
    errors: dict[str, int] = {}
    for r in rows:
        for f in row_findings(r.conv, r.row, tokenizer, system_prompt, end_ids):
            errors[f.check] = errors.get(f.check, 0) + 1
            add(f)
    train = [r for r in rows if r.split == "train"]
    for r in rows:
        if not r.kept:
            why = f"after truncation to max_length={max_length} " if r.row.truncated else ""
            add(
                Finding(
                    "warning",
                    "no_trained_tokens",
                    f"no trained token left {why}(the row is dropped)",
                    origin=str(r.conv.origin),
                )
            )
    truncated = [r for r in train if r.row.truncated]
    trained = sum(sum(1 for x in r.full.labels if x != IGNORE) for r in train)
    lost = sum(r.row.trained_tokens_lost for r in train)
    eos_lost = sum(1 for r in truncated if any(x in end_ids for x in r.full.labels[max_length:] if x != IGNORE))
    if truncated:
        first = ", ".join(str(r.conv.origin) for r in truncated[:3])
        add(
            Finding(
                "warning",
                "truncated",
                f"{len(truncated)} of {len(train)} training rows are longer than "
                f"max_length={max_length} and are truncated: {lost} of {trained} trained tokens "
                f"({100 * lost / max(trained, 1):.1f}%) lost, {eos_lost} rows lose their end-of-turn token "
                f"(first: {first})",
                origin=train_path,
                related=tuple(str(r.conv.origin) for r in truncated),
            )
        )
    pad_is_eos = tokenizer.pad_token_id is not None and tokenizer.pad_token_id == tokenizer.eos_token_id
    if pad_is_eos:
        with_eos = sum(1 for r in train if tokenizer.eos_token_id in [x for x in r.row.labels if x != IGNORE])
        add(
            Finding(
                "info",
                "pad_is_eos",
                f"pad = eos ({tokenizer.eos_token!r}): padding is masked by the "
                f"attention mask, not by id, so eos stays trained ({with_eos} training rows train it)",
            )
        )
    stats = {
        "rows": len(rows),
        "train_rows": len(train),
        "kept": sum(r.kept for r in train),
        "dropped": sum(not r.kept for r in rows),
        "truncated": len(truncated),
        "trained_tokens": trained,
        "trained_tokens_lost": lost,
        "lost_share": lost / max(trained, 1),
        "eos_lost_to_truncation": eos_lost,
        "eos_not_trained": errors.get("eos_not_trained", 0),
        "double_bos": errors.get("double_bos", 0),
        "prompt_not_prefix": errors.get("prompt_not_prefix", 0),
        "pad_is_eos": pad_is_eos,
        "chat_template": bool(tokenizer.chat_template),
    }
    return findings, stats, left_out
