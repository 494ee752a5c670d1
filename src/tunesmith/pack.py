"""Rendered rows -> batches: seeded, length-grouped ordering, padded or packed collation.

Packing lays a batch's rows end to end; each sample restarts its position ids at 0 and the model is called
without a mask and with `use_cache=False`, so attention stays within each sample (checked per model by
`model.load.keeps_packed_samples_apart`). Each sample's first label is masked (docs/design.md, Packing).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from tunesmith.config import TrainSpec
from tunesmith.render import IGNORE, Rendered

GROUP_CHUNK = 64  # batches per length-sorted chunk: enough to group lengths, small enough to stay shuffled
# train.batch_tokens: auto (opt-in). A step has a fixed cost (optimizer, per-layer dispatch) besides its per-token
# work: on 2 CPU cores 8 rows of 48 tokens trained at 72% of the tokens/s of 8 rows of 170
# (benchmarks/train_throughput.py, the short-row variant). Auto batches hold as many tokens as batch_size rows
# of this length ...
AUTO_ROW_TOKENS = 256
MIN_EPOCH_BATCHES = 16  # ... but never so many rows that an epoch has fewer micro-batches than this


def batch_tokens(t: TrainSpec, lengths: Sequence[int]) -> int | None:
    """The token limit of a micro-batch, or None to count rows (batch_size). `auto` batches by tokens in an auto
    run (lr or epochs auto) whose batch_size is not set, and only where rows are short enough for it to matter."""
    if t.batch_tokens != "auto":
        return t.batch_tokens
    if not t.auto or "batch_size" in t.model_fields_set or not lengths:
        return None
    mean = sum(lengths) / len(lengths)
    rows = min(t.batch_size * AUTO_ROW_TOKENS / mean, len(lengths) / MIN_EPOCH_BATCHES)
    return round(rows * mean) if rows >= 2 * t.batch_size else None


def plan_batches(
    lengths: Sequence[int],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    tokens: int | None = None,
) -> list[list[int]]:
    """Row indices for each batch of one epoch; the same (seed, epoch) always gives the same plan.

    With grouping, shuffled rows are sorted by length inside chunks, cut into batches, and the batches
    shuffled again: rows of similar length share a batch (little padding) and the order stays random.
    With `tokens`, a batch takes rows while (rows x its longest row) stays within `tokens` (one row at least),
    so short rows make batches of many rows and long rows of few.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if tokens is None and not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    per_batch = batch_size if tokens is None else max(1, round(tokens * len(lengths) / max(sum(lengths), 1)))
    chunk = per_batch * GROUP_CHUNK
    batches: list[list[int]] = []
    for c in range(0, len(order), chunk):
        part = order[c : c + chunk]
        if group_by_length:
            part = sorted(part, key=lambda i: -lengths[i])
        batches += (
            [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
            if tokens is None
            else _cut_by_tokens(part, lengths, tokens)
        )
    rng.shuffle(batches)
    return batches


def _cut_by_tokens(order: list[int], lengths: Sequence[int], tokens: int) -> list[list[int]]:
    """`order` cut into runs whose rows x longest row stays within `tokens` (a longer row alone)."""
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        if current and (len(current) + 1) * max(width, lengths[i]) > tokens:
            batches.append(current)
            current, width = [], 0
        current.append(i)
        width = max(width, lengths[i])
    return batches + [current] if current else batches


def epoch_batches(lengths: Sequence[int], t: TrainSpec, epoch: int) -> list[list[int]]:
    """The training plan's batches of `epoch` (row indices), as `train` configures them."""
    return plan_batches(
        lengths,
        t.batch_size,
        seed=t.seed,
        epoch=epoch,
        group_by_length=t.group_by_length,
        tokens=batch_tokens(t, lengths),
    )


def collate_padded(rows: list[Rendered], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch with an attention mask; padding is never a label (even when pad = eos)."""
    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        labels[i, :n] = torch.tensor(r.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def collate_packed(rows: list[Rendered]) -> dict[str, torch.Tensor]:
    """All rows end to end in one sequence, positions restarting per row; no padding at all."""
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for r in rows:
        ids += r.input_ids
        labels += [IGNORE] + r.labels[1:]
        positions += range(len(r.input_ids))
    return {
        "input_ids": torch.tensor([ids]),
        "labels": torch.tensor([labels]),
        "position_ids": torch.tensor([positions]),
    }


def collate(rows: list[Rendered], pad_id: int, packing: bool) -> dict[str, torch.Tensor]:
    return collate_packed(rows) if packing else collate_padded(rows, pad_id)


def real_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Non-pad tokens in a batch (what throughput is measured in)."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())
