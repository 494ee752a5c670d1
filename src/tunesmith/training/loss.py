"""Token-level cross-entropy, computed only where there is a label.

The model is asked for logits at the positions that predict a trained token (`logits_to_keep` with the
needed indices), so prompt positions never materialise a vocabulary-sized row: less memory, less time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tunesmith.render import IGNORE


def loss_sum(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Sum of next-token losses over the batch's trained tokens, and how many there were.

    Returning the sum (not the mean) lets the caller normalise by the label count of a whole accumulated
    batch, so that batch 8 and batch 1 x 8 accumulation give the same gradient.
    """
    targets = batch["labels"][:, 1:]
    keep = (targets != IGNORE).any(dim=0).nonzero().squeeze(1)
    n = int((targets != IGNORE).sum())
    if n == 0:
        return torch.zeros((), requires_grad=torch.is_grad_enabled()), 0
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    out = model(**inputs, use_cache=False, logits_to_keep=keep)
    logits = out.logits.float()
    loss = F.cross_entropy(logits.flatten(0, 1), targets[:, keep].flatten(), ignore_index=IGNORE, reduction="sum")
    return loss, n


@torch.no_grad()
def mean_loss(model, batches) -> float:
    """Mean per-token loss over batches (held-out loss). Leaves the model in eval mode."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        loss, n = loss_sum(model, batch)
        total += float(loss)
        count += n
    return total / max(count, 1)
