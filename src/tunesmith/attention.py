"""Causal self-attention for training on CPU: query blocks through batched matmuls.

On SmolLM2's shapes PyTorch's CPU flash-attention kernel (what SDPA runs for a causal batch on CPU) reached
50-60 GFLOP/s here, where a bf16 batched matmul reaches 400+. Attention computed one block of queries at a
time, each block against only the keys it may see (matmul, softmax, matmul; autograd does the backward),
ran forward + backward 2-2.4x faster on those shapes (`benchmarks/attention.py`). It keeps each block's
softmax output for backward, about half an attention matrix per layer, so it is used only for sequences up
to `MAX_LENGTH` tokens; everything else (a padding or packing mask, a KV cache, attention dropout, soft-capping,
sliding windows, no gradients, GPUs, longer sequences) goes to transformers' own SDPA function unchanged.

It is registered under the name `blocked` through transformers' documented `AttentionInterface`, with
SDPA's mask function, so models build exactly the masks they build for SDPA.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "blocked"
BLOCK = 64  # queries per block: the fastest of 64/128/whole on SmolLM2 shapes at 150-500 tokens
MAX_LENGTH = 1024  # longer sequences: the kept softmax outputs would outgrow the rest of the activations


def _eligible(module, query, key, attention_mask, dropout, kwargs) -> bool:
    return (query.device.type == "cpu" and torch.is_grad_enabled() and attention_mask is None and dropout == 0.0
            and query.shape[2] == key.shape[2] <= MAX_LENGTH and query.shape[2] > 1
            and getattr(module, "is_causal", True) and kwargs.get("is_causal") is not False
            and kwargs.get("softcap") is None and kwargs.get("position_bias") is None
            and kwargs.get("sliding_window") is None and not kwargs.get("output_attentions", False)
            and query.shape[1] % key.shape[1] == 0)


def block_causal_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float,
                           block: int = BLOCK) -> torch.Tensor:
    """softmax(q k^T * scaling + causal mask) v, block by block of queries; (B, H, S, D) -> (B, S, H, D).

    Key/value heads are shared by groups of query heads (GQA) without repeating them: the group's queries
    are stacked along the sequence axis of one matmul.
    """
    b, h, s, d = query.shape
    hkv = key.shape[1]
    g = h // hkv
    q = (query * scaling).view(b, hkv, g, s, d)
    outs = []
    for s0 in range(0, s, block):
        s1 = min(s, s0 + block)
        n = s1 - s0
        scores = q[:, :, :, s0:s1].reshape(b, hkv, g * n, d) @ key[:, :, :s1].transpose(-1, -2)
        future = torch.ones(n, n, dtype=torch.bool, device=query.device).triu_(1)
        scores.view(b, hkv, g, n, s1)[..., s0:s1].masked_fill_(future, float("-inf"))
        probs = scores.softmax(-1)
        outs.append((probs @ value[:, :, :s1]).view(b, hkv, g, n, d))
    out = torch.cat(outs, dim=3) if len(outs) > 1 else outs[0]
    return out.view(b, h, s, d).transpose(1, 2).contiguous()


def blocked_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                              scaling: float | None = None, **kwargs):
    """transformers' attention-function signature; SDPA wherever the blocked path does not apply."""
    if not _eligible(module, query, key, attention_mask, dropout, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return block_causal_attention(query, key, value, scale), None


AttentionInterface.register(NAME, blocked_attention_forward)
ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
