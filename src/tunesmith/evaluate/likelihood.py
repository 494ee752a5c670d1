"""Scoring known answers by the model's own probabilities: held-out loss / perplexity / token accuracy,
and ranking a label set by log-likelihood (an exact, generation-free alternative for label tasks)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch

from tunesmith.generation import candidate_ids, left_pad
from tunesmith.model.decode import last_positions
from tunesmith.model.load import device_of
from tunesmith.model.score import token_stats

__all__ = ["candidate_ids", "rank_labels", "token_stats"]  # shared with decoding (generation) and training (model)


@torch.no_grad()
def rank_labels(
    model, prompts: Sequence[list[int]], candidates: Sequence[list[int]], pad_id: int, batch_rows: int = 32
) -> list[list[float]]:
    """Log-likelihood of every candidate continuation after every prompt: scores[prompt][candidate].

    Exact sums of log-probabilities, computed without decoding: the prompts of a batch (left-padded), plus the
    tokens all candidates share, go through the model once with the KV cache; the cache is then repeated once
    per candidate and the candidates' remaining tokens go through in one more forward pass.
    """
    model.eval()
    device = device_of(model)
    shared = _common_prefix(candidates)
    rests = [list(c[len(shared) :]) for c in candidates]
    n_cand, tail = len(candidates), max(len(r) for r in rests)
    scores: list[list[float]] = []
    step = max(1, batch_rows // n_cand)
    for start in range(0, len(prompts), step):
        seqs = [list(p) + shared for p in prompts[start : start + step]]
        ids, mask = (t.to(device) for t in left_pad(seqs, pad_id))
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=tail > 1,
            logits_to_keep=last_positions(ids.shape[1], len(shared) + 1, device),
        )
        logprobs = torch.log_softmax(out.logits.float(), dim=-1)  # position j predicts shared[j], then rest[0]
        shared_ids = torch.tensor(shared, device=device).view(1, -1, 1).expand(len(seqs), -1, 1)
        head = logprobs[:, : len(shared)].gather(2, shared_ids)
        total = head.sum(dim=(1, 2))[:, None].repeat(1, n_cand)
        for c, rest in enumerate(rests):
            if rest:
                total[:, c] += logprobs[:, len(shared), rest[0]]
        if tail > 1:
            cache = out["cache"] if "cache" in out else out["past_key_values"]
            total += _rest_logprobs(model, cache, rests, mask, positions, pad_id).view(-1, n_cand)
        scores += total.tolist()
    return scores


def _rest_logprobs(
    model, cache, rests: list[list[int]], mask: torch.Tensor, positions: torch.Tensor, pad_id: int
) -> torch.Tensor:
    """Sum of log-probs of rest[1:] for every (prompt, candidate) row, continuing from the prompts' cache."""
    n_cand, n_prompt, tail = len(rests), mask.shape[0], max(len(r) for r in rests)
    cache.batch_repeat_interleave(n_cand)  # row order: prompt-major, candidate-minor
    ids = torch.full((n_prompt * n_cand, tail - 1), pad_id, dtype=torch.long)
    valid = torch.zeros_like(ids)
    for c, rest in enumerate(rests):
        if len(rest) > 1:
            ids[c::n_cand, : len(rest) - 1] = torch.tensor(rest[:-1])
            valid[c::n_cand, : len(rest) - 1] = 1
    targets = torch.full_like(ids, 0)
    for c, rest in enumerate(rests):
        if len(rest) > 1:
            targets[c::n_cand, : len(rest) - 1] = torch.tensor(rest[1:])
    ids, valid, targets = (t.to(mask.device) for t in (ids, valid, targets))
    full_mask = torch.cat([mask.repeat_interleave(n_cand, 0), valid], dim=1)
    pos = positions[:, -1:].repeat_interleave(n_cand, 0) + 1 + torch.arange(tail - 1, device=mask.device)[None]
    logits = model(
        input_ids=ids, attention_mask=full_mask, position_ids=pos, use_cache=True, **{_cache_kwarg(model): cache}
    ).logits.float()
    picked = torch.log_softmax(logits, dim=-1).gather(2, targets[..., None])[..., 0]
    return (picked * valid).sum(dim=1)


def _cache_kwarg(model) -> str:
    """The forward argument that takes a KV cache: `cache` in newer transformers, `past_key_values` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _common_prefix(sequences: Sequence[list[int]]) -> list[int]:
    """The longest token prefix every candidate starts with (kept short of the shortest candidate)."""
    first, n = list(sequences[0]), min(len(s) for s in sequences)
    k = 0
    while k < n - 1 and all(s[k] == first[k] for s in sequences):
        k += 1
    return first[:k]
