"""Load a data file into validated conversations, list its problems, and split off an eval set."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Mapping, Sequence

from tunesmith.config import DataSpec
from tunesmith.data.formats import check_columns, normalise
from tunesmith.data.sources import read_records, scan_records
from tunesmith.data.types import Conversation
from tunesmith.errors import ConfigError, DataError

Loader = Callable[[str, Mapping[str, str] | None], list[Conversation]] | None


def load_conversations(path: str | os.PathLike, columns: Mapping[str, str] | None = None) -> list[Conversation]:
    """Every record of a data file as a `Conversation`; the first problem is raised as a `DataError`.

    Chat formats may be mixed in one file, but raw text and chat records may not: they train differently.
    """
    mapping = check_columns(columns)
    conversations: list[Conversation] = []
    for origin, record in read_records(path):
        conversation = normalise(record, origin, mapping)
        if conversations and conversation.is_text != conversations[0].is_text:
            raise _mixed_kinds(conversations[0], conversation)
        conversations.append(conversation)
    return conversations


def find_problems(
    path: str | os.PathLike, columns: Mapping[str, str] | None = None, limit: int = 50
) -> tuple[list[DataError], int]:
    """Up to `limit` problems in a data file, in file order, and how many there are in all.

    Unlike `load_conversations` it keeps going past bad records. A text/chat mix is reported once, at the
    first record whose kind differs from the first good record's. A file-level problem (missing file,
    unparseable JSON...) ends the scan and is reported as the last problem.
    """
    mapping = check_columns(columns)
    problems: list[DataError] = []
    total = 0
    first: Conversation | None = None
    mix_reported = False
    try:
        for origin, item in scan_records(path):
            problem = item if isinstance(item, DataError) else None
            if problem is None:
                try:
                    conversation = normalise(item, origin, mapping)
                except DataError as err:
                    problem = err
                else:
                    first = first or conversation
                    if not mix_reported and conversation.is_text != first.is_text:
                        problem, mix_reported = _mixed_kinds(first, conversation), True
            if problem is not None:
                total += 1
                if len(problems) < limit:
                    problems.append(problem)
    except DataError as err:
        total += 1
        if len(problems) < limit:
            problems.append(err)
    return problems, total


def split_eval(
    conversations: Sequence[Conversation], fraction: float, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    """A seeded, reproducible (train, eval) split; both keep the original file order.

    Eval gets `max(1, round(n * fraction))` records, and train always keeps at least one.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(f"eval fraction must be between 0 and 1 (exclusive), got {fraction!r}")
    n = len(conversations)
    if n < 2:
        where = conversations[0].origin.path if conversations else None
        raise DataError(f"need at least 2 records to split off an eval set, got {n}", origin=where)
    size = min(n - 1, max(1, round(n * fraction)))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held_out = set(order[:size])
    train = [c for i, c in enumerate(conversations) if i not in held_out]
    evaluation = [c for i, c in enumerate(conversations) if i in held_out]
    return train, evaluation


def selection_key(conversation: Conversation, answer_regex: str | None) -> str:
    """What a selection split is stratified by: the answer's scored part (its label, for a label task)."""
    answer = conversation.reference() or ""
    if answer_regex is not None:
        found = re.search(answer_regex, answer, flags=re.MULTILINE)
        answer = (found.group(1) if found.groups() else found.group(0)) if found else ""
    return " ".join(answer.lower().split())


def split_selection(
    conversations: Sequence[Conversation],
    seed: int,
    *,
    answer_regex: str | None = None,
    fraction: float = 0.1,
    most: int = 1000,
) -> tuple[list[Conversation], list[Conversation]]:
    """A seeded (train, selection) split of the training data for choosing settings; both keep file order.

    When answers recur (a label task) it is stratified: each label gives `fraction` of its rows, at least
    2 (so that every label can be scored) and at most half (so that every label is still trained on).
    Otherwise a plain random `fraction`. At most `most` rows either way; train keeps at least one row."""
    n = len(conversations)
    if n < 2:
        return list(conversations), []
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, conv in enumerate(conversations):
        groups.setdefault(selection_key(conv, answer_regex), []).append(i)
    chosen: list[int] = []
    if len(groups) <= n // 2 and "" not in groups:
        per_label = max(1, most // len(groups))
        for rows in groups.values():
            rows = list(rows)
            rng.shuffle(rows)
            take = min(len(rows) // 2, per_label, max(2, round(fraction * len(rows))))
            chosen += rows[:take]
    else:
        order = list(range(n))
        rng.shuffle(order)
        chosen = order[: min(n - 1, most, max(1, round(n * fraction)))]
    held = set(chosen)
    return [c for i, c in enumerate(conversations) if i not in held], [
        c for i, c in enumerate(conversations) if i in held
    ]


Conversations = tuple[list[Conversation], list[Conversation] | None]  # training, held-out (None: none)


def train_and_eval(spec: DataSpec, seed: int, load: Loader = None, *, strict: bool = True) -> Conversations:
    """The training and held-out conversations as `data` says: `data.eval` (a file), else a seeded
    `data.eval_fraction` split of train, else no held-out data (None). `load(path, columns)` reads a file
    (default `load_conversations`); with `strict` False, fewer than 2 records are not split (no error)."""
    load = load or load_conversations
    train = load(spec.train, spec.columns)
    if spec.eval is not None:
        return train, load(spec.eval, spec.columns)
    if spec.eval_fraction is not None and (strict or len(train) >= 2):
        return split_eval(train, spec.eval_fraction, seed)
    return train, None


def _kind(conversation: Conversation) -> str:
    return "raw text ('text')" if conversation.is_text else f"chat ('{conversation.source_format}')"


def _mixed_kinds(first: Conversation, offender: Conversation) -> DataError:
    """The error for a file that holds both raw text and chat records, named at the first offender."""
    reason = (
        f"raw text and chat records are mixed: this record is {_kind(offender)} but the first record "
        f"({first.origin}) is {_kind(first)}; use one kind per file"
    )
    return DataError(reason, origin=offender.origin)
