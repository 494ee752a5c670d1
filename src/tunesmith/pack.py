"""Rendered rows -> batches: seeded, length-grouped ordering, padded or packed collation.

Packing lays a batch's rows end to end; each sample restarts its position ids at 0 and the model is called
without a mask and with `use_cache=False`, so attention stays within each sample (checked per model by
`model.load.keeps_packed_samples_apart`). Each sample's first label is masked (docs/design.md, Packing).
"""

from __future__ import annotations

import random

import torch

from tunesmith.render import IGNORE, Rendered

GROUP_CHUNK = 64  # batches per length-sorted chunk: enough to group lengths, small enough to stay shuffled


def plan_batches(
    lengths: list[int], batch_size: int, *, seed: int, epoch: int, group_by_length: bool = True
) -> list[list[int]]:
    """Row indices for each batch of one epoch; the same (seed, epoch) always gives the same plan.

    With grouping, shuffled rows are sorted by length inside chunks, cut into batches, and the batches
    shuffled again: rows of similar length share a batch (little padding) and the order stays random.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    chunk = batch_size * GROUP_CHUNK
    batches = []
    for c in range(0, len(order), chunk):
        part = sorted(order[c : c + chunk], key=lambda i: -lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


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
