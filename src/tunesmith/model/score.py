"""Known answers scored by a model's own probabilities: mean next-token loss, perplexity and token accuracy over
the trained tokens of rendered rows. The held-out loss before, during and after training and each evaluated
system's loss all come from here, one definition."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers.cache_utils import Cache

from tunesmith.model.decode import (
    MIN_SHARED,
    PreallocatedLayer,
    cache_argument,
    last_positions,
    preallocated_cache,
    shared_prefix,
)
from tunesmith.model.load import device_of
from tunesmith.pack import collate_padded
from tunesmith.progress import RowProgress
from tunesmith.render import IGNORE, Rendered


@torch.no_grad()
def token_stats(
    model, rows: Sequence[Rendered], pad_id: int, batch_size: int = 16, progress: str | None = None
) -> dict:
    """Mean next-token loss, perplexity and mean token accuracy (argmax = target) over trained tokens.

    Rows go through in batches of similar length (the sums do not depend on the order). Leading tokens that
    every row shares and none of them trains (a system prompt, few-shot turns) are computed once and their KV
    cache copied to each batch, so a few-shot evaluation costs little more than a zero-shot one. With `progress`
    (a title), rows done, tokens/s and the time left are shown as it goes."""
    model.eval()
    device = device_of(model)
    head = _untrained_prefix(rows)
    cache = _prefix_cache(model, rows[0].input_ids[:head], device) if head >= MIN_SHARED else None
    head = head if cache is not None else 0
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
    total, correct, count = 0.0, 0, 0
    shown = RowProgress(progress or "", len(rows), enabled=progress is not None, unit="tokens")
    try:
        for start in range(0, len(rows), batch_size):
            chunk = [rows[i] for i in order[start : start + batch_size]]
            scored = _batch_stats(model, chunk, head, cache, pad_id, device)
            total, correct, count = total + scored[0], correct + scored[1], count + scored[2]
            shown.advance(len(chunk), sum(len(r.input_ids) - head for r in chunk))
    finally:
        shown.close()
    loss = total / max(count, 1)
    return {
        "eval_loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "token_accuracy": correct / max(count, 1),
        "tokens": count,
    }


def _batch_stats(
    model, chunk: list[Rendered], head: int, cache: list[PreallocatedLayer] | None, pad_id: int, device
) -> tuple[float, int, int]:
    """Summed loss, correct and scored tokens of one batch: each row after its first `head` tokens, which are in
    `cache` (one row, copied to every row of the batch) when `head` > 0."""
    tails = [Rendered(r.input_ids[head:], r.labels[head:], r.origin) for r in chunk]
    batch = {k: v.to(device) for k, v in collate_padded(tails, pad_id).items()}
    targets = batch["labels"][:, 1:]
    keep = (targets != IGNORE).any(dim=0).nonzero().squeeze(1)
    if keep.numel() == 0:
        return 0.0, 0, 0
    ids, mask = batch["input_ids"], batch["attention_mask"]
    kw: dict = {"use_cache": False}
    if cache is not None:  # the shared head before the tails (right-padded), positions counted on from it
        width = ids.shape[1]
        rows_cache = Cache(layers=[layer.repeated(len(chunk), head + width) for layer in cache])
        kw = {"use_cache": True, cache_argument(model): rows_cache}
        kw["position_ids"] = torch.arange(head, head + width, device=device).expand(len(chunk), -1)
        mask = torch.cat([mask.new_ones((len(chunk), head)), mask], dim=1)
    logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep, **kw).logits.float()
    kept = targets[:, keep]
    loss = float(F.cross_entropy(logits.flatten(0, 1), kept.flatten(), ignore_index=IGNORE, reduction="sum"))
    valid = kept != IGNORE
    return loss, int(((logits.argmax(-1) == kept) & valid).sum()), int(valid.sum())


def _untrained_prefix(rows: Sequence[Rendered]) -> int:
    """Leading tokens all `rows` share where neither they nor the token after them is trained, so nothing is
    scored from inside them (at least one token of each row is left after them)."""
    if len(rows) < 2:
        return 0
    trained = min(next((i for i, label in enumerate(r.labels) if label != IGNORE), len(r.labels)) for r in rows)
    return max(0, min(shared_prefix([r.input_ids for r in rows]), trained - 1))


def _prefix_cache(model, prefix: list[int], device) -> list[PreallocatedLayer] | None:
    """`prefix` computed once into one-row preallocated layers (None where the model takes no such cache)."""
    cache = preallocated_cache(model, len(prefix))
    model(
        input_ids=torch.tensor([prefix], device=device),
        use_cache=True,
        logits_to_keep=last_positions(len(prefix), 1, device),
        **{cache_argument(model): cache},
    )
    layers = [layer for layer in cache.layers if isinstance(layer, PreallocatedLayer) and layer.is_initialized]
    return layers if len(layers) == len(cache.layers) else None
