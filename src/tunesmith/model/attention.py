"""tunesmith's attention: training's causal blocks on CPU, packed samples apart, and decoding steps on CPU.

Blocked attention keeps each block's softmax for backward, so it serves sequences up to `MAX_LENGTH`; packed rows
are attended per sample as a padded batch for attention alone (SDPA's causal kernels on GPUs). A decoding step's
one query per row goes through grouped matmuls (`one_query_attention`). Everything else goes to transformers' SDPA
unchanged. `register()` adds it to transformers' `AttentionInterface` under `NAME`, with SDPA's masks.
"""

from __future__ import annotations

import itertools
import sys
import weakref

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "blocked"
BLOCK = 64  # queries per block: the fastest of 64/128/whole on SmolLM2 shapes at 150-500 tokens
MAX_LENGTH = 1024  # longer sequences: the kept softmax outputs would outgrow the rest of the activations


def _eligible(module, query, key, dropout, kwargs) -> bool:
    return (
        torch.is_grad_enabled()
        and dropout == 0.0
        and query.shape[2] == key.shape[2]
        and query.shape[2] > 1
        and getattr(module, "is_causal", True)
        and kwargs.get("is_causal") is not False
        and kwargs.get("softcap") is None
        and kwargs.get("position_bias") is None
        and kwargs.get("sliding_window") is None
        and kwargs.get("s_aux") is None
        and not kwargs.get("output_attentions", False)
        and query.shape[1] % key.shape[1] == 0
    )


def _one_query(query, key, dropout, kwargs) -> bool:
    """A decoding step on a CPU without gradients: one new token per row, nothing but a mask to apply."""
    return (
        not torch.is_grad_enabled()
        and runs_blocked(query.device)
        and dropout == 0.0
        and query.shape[2] == 1
        and query.shape[1] % key.shape[1] == 0
        and not any(kwargs.get(k) is not None for k in ("softcap", "sliding_window", "position_bias", "s_aux"))
        and not kwargs.get("output_attentions", False)
    )


def one_query_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, scaling: float
) -> torch.Tensor:
    """softmax(q k^T * scaling, masked) v for one query per row (a decoding step); (B, H, 1, D) -> (B, 1, H, D).

    The query heads sharing a key/value head (GQA) meet it in one matmul, without repeating keys (SmolLM2, 64 rows,
    float32, 2 EPYC cores: a whole decoding step's attention 34 ms against SDPA's 39). `mask`: SDPA's (boolean:
    True attends; or additive), broadcast over heads."""
    b, h, _, d = query.shape
    hkv, n = key.shape[1], key.shape[2]
    q = (query * scaling).reshape(b, hkv, h // hkv, d)
    scores = q @ key.transpose(-1, -2)  # (B, KV, G, T)
    if mask is not None:
        mask = mask[:, :, -1:, :n]
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    probs = scores.softmax(-1, dtype=torch.promote_types(scores.dtype, torch.float32)).to(value.dtype)  # fp32 at least
    return (probs @ value).reshape(b, 1, h, d)


class SharedHead:
    """The keys and values of the leading tokens every row of a batch shares (a system prompt, few-shot turns), kept
    once for all rows: per layer, (1, KV heads, tokens, head dim) each. Given to the model's forward as
    `shared_head=`, tunesmith's attention puts them before every row's own keys (`shared_head_attention`); `calls`
    counts the layers that did, so a model whose attention ignored it is caught."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor]):
        self.keys, self.values, self.calls = keys, values, 0

    def __len__(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0


def text_config(model):
    """The config of `model`'s language model (a multimodal model's text part; the config itself otherwise)."""
    return model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config


def windowed(model) -> bool:
    """Whether some layer of `model` attends through a sliding window (in its config, or in its layer types): a
    window counts cache positions, so a row's tokens must then lie together in the cache, with no padding between."""
    config = text_config(model)
    types = getattr(config, "layer_types", None)
    if types is not None:
        return any(t != "full_attention" for t in types)
    return bool(getattr(config, "sliding_window", None)) and bool(getattr(config, "use_sliding_window", True))


def plain_causal(model) -> bool:
    """Whether every layer of `model` attends to all earlier tokens and nothing else: no sliding window, no
    soft-capped attention logits, no attention sinks. The shared head and the packed prefill compute exactly that,
    and nothing more."""
    capped = getattr(text_config(model), "attn_logit_softcapping", None) is not None
    return not windowed(model) and not capped and not any(hasattr(m, "sinks") for m in model.modules())


def takes_shared_head(model) -> bool:
    """Whether `model` attends through tunesmith's attention on a CPU, which takes a `SharedHead` and a packed
    prefill (`PackedRows`), and its attention is plain causal attention (`plain_causal`)."""
    device = model.get_input_embeddings().weight.device
    ours = getattr(text_config(model), "_attn_implementation", None) == NAME
    return ours and runs_blocked(device) and plain_causal(model)


def shared_head_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    head_keys: torch.Tensor | None,
    head_values: torch.Tensor | None,
) -> torch.Tensor:
    """Attention over a shared head, seen by every query, then each row's own keys (causal, `mask`: SDPA's, for the
    own keys only); (B, H, S, D) -> (B, S, H, D). The head's keys and values are read once for all rows: one matmul
    per KV head with every row's queries stacked, where a copy per row would read them once per row. Without a head
    (`head_keys` None), the own keys alone."""
    b, h, s, d = query.shape
    hkv, n = key.shape[1], key.shape[2]
    m = head_keys.shape[2] if head_keys is not None else 0
    gs = h // hkv * s  # the queries that share a KV head, per row
    q = (query * scaling).reshape(b, hkv, gs, d)
    own = (q @ key.transpose(-1, -2)).view(b, hkv, gs // s, s, n)
    if mask is None and s > 1:  # SDPA's causal case: no padding, each query sees the own keys up to its own
        mask = torch.ones(s, n, dtype=torch.bool, device=query.device).tril_(n - s)
    if mask is not None:
        mask = mask[..., -s:, :n]
        mask = mask.unsqueeze(-3) if mask.dim() == 4 else mask  # (B or 1, 1, 1, S, N) against (B, KV, G, S, N)
        own = own.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else own + mask
    if head_keys is None or head_values is None:  # no shared head: each row's own keys alone
        probs = own.view(b, hkv, gs, n).softmax(-1, dtype=torch.promote_types(own.dtype, torch.float32))
        return (probs.to(value.dtype) @ value).view(b, h, s, d).transpose(1, 2)
    shared = (q.transpose(0, 1).reshape(hkv, b * gs, d) @ head_keys[0].transpose(-1, -2)).view(hkv, b, gs, m)
    probs = torch.cat([shared.transpose(0, 1), own.view(b, hkv, gs, n)], -1)
    probs = probs.softmax(-1, dtype=torch.promote_types(probs.dtype, torch.float32)).to(value.dtype)
    out = probs[..., m:] @ value
    heads = probs[..., :m].transpose(0, 1).reshape(hkv, b * gs, m) @ head_values[0]
    out += heads.view(hkv, b, gs, d).transpose(0, 1)
    return out.view(b, h, s, d).transpose(1, 2)


class PackedRows:
    """Samples laid end to end in one sequence (`lengths` tokens each, in order), seen by attention alone as a padded
    batch (`unpack`, `pack`): the linear layers around it see their tokens and no padding. Rows are right-padded
    (training's causal kernels: a real token never sees the padding after it) or, with `left`, right-aligned at the
    longest (a packed prefill, whose cache decoding goes on from). Given to the model's forward as `packed_rows=`
    with position ids that count each row's own positions (`offset`); `ends`: the packed position of every row's
    last token (`logits_to_keep`). `calls` counts the layers that attended this way, so a model whose attention
    ignored the layout (and let rows see each other) is caught."""

    def __init__(self, lengths: list[int], device=None, left: bool = False):
        self.calls = 0
        self.lengths = n = torch.tensor(lengths, device=device)
        self.rows_n, self.width = len(lengths), int(n.max())
        self.row = torch.repeat_interleave(torch.arange(len(lengths), device=device), n)
        self.offset = torch.arange(int(n.sum()), device=device) - (n.cumsum(0) - n)[self.row]  # within its row
        self.pad = (self.width - n) if left else torch.zeros_like(n)  # padding before each row
        self.column = self.offset + self.pad[self.row]
        self.ends = n.cumsum(0) - 1

    @property
    def valid(self) -> torch.Tensor:
        """(rows, width): True on the real tokens."""
        columns = torch.arange(self.width, device=self.lengths.device)
        return (columns[None, :] >= self.pad[:, None]) & (columns[None, :] < (self.pad + self.lengths)[:, None])

    def mask(self) -> torch.Tensor:
        """(rows, 1, width, width), boolean: each query sees its row's earlier tokens; a padding query sees itself
        alone (its output is dropped)."""
        device = self.lengths.device
        causal = torch.ones(self.width, self.width, dtype=torch.bool, device=device).tril_()
        return ((causal[None] & self.valid[:, None, :]) | torch.eye(self.width, dtype=torch.bool, device=device))[
            :, None
        ]

    def unpack(self, t: torch.Tensor) -> torch.Tensor:
        """(1, heads, tokens, dim) packed -> (rows, heads, width, dim), zeros on the padding."""
        out = t.new_zeros(self.rows_n, t.shape[1], self.width, t.shape[3])
        out[self.row, :, self.column] = t[0].transpose(0, 1)
        return out

    def pack(self, out: torch.Tensor) -> torch.Tensor:
        """(rows, width, heads, dim) -> (1, tokens, heads, dim): the real tokens, in packed order."""
        return out[self.row, self.column].unsqueeze(0)


def packed_segments(position_ids: torch.Tensor | None) -> list[tuple[int, int]] | None:
    """(start, end) of each sample in a single packed row whose position ids count 0, 1, ... per sample."""
    if position_ids is None or position_ids.dim() != 2 or position_ids.shape[0] != 1:
        return None
    pos = position_ids[0]
    starts = (pos == 0).nonzero().flatten().tolist()
    if not starts or starts[0] != 0:
        return None
    bounds = starts + [pos.numel()]
    offsets = torch.repeat_interleave(torch.tensor(starts), torch.tensor(bounds[1:]) - torch.tensor(starts))
    if not torch.equal(pos.cpu(), torch.arange(pos.numel()) - offsets):
        return None
    return list(itertools.pairwise(bounds))


def _sample_of_position(segments: list[tuple[int, int]], device=None) -> torch.Tensor:
    """For each position of the packed row, the index of its sample."""
    lengths = torch.tensor([e - a for a, e in segments], device=device)
    return torch.repeat_interleave(torch.arange(len(segments), device=device), lengths)


class MaskCheck:
    """Whether a packed row's mask is exactly block-causal. Every layer gets the same mask object in one
    forward pass, so the answer for the last mask seen is kept and the check runs once per forward."""

    def __init__(self) -> None:
        self._last: tuple[weakref.ref, list] | None = None  # the last mask found block-causal, with its samples

    def __call__(self, mask: torch.Tensor, segments: list[tuple[int, int]]) -> bool:
        if self._last is not None and self._last[0]() is mask and self._last[1] == segments:
            return True
        if not is_block_causal(mask, segments):
            return False
        self._last = (weakref.ref(mask), segments)
        return True


def is_block_causal(mask: torch.Tensor, segments: list[tuple[int, int]]) -> bool:
    """True when the boolean (1, 1, S, S) mask lets each token see exactly its own sample's earlier tokens."""
    n = segments[-1][1]
    if mask.dtype != torch.bool or mask.shape != (1, 1, n, n):
        return False
    sample = _sample_of_position(segments)
    return torch.equal(mask[0, 0].cpu(), (sample[:, None] == sample[None, :]).tril_())


def block_causal_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float, block: int = BLOCK
) -> torch.Tensor:
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


def runs_blocked(device: torch.device) -> bool:
    """Whether attention runs as blocked matmuls (CPUs) rather than through SDPA's fused kernels (GPUs)."""
    return device.type == "cpu"


def sdpa_causal(module):
    """The GPU kernel: transformers' SDPA call on a causal batch without a mask; (B, H, S, D) -> (B, S, H, D)."""

    def kernel(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float) -> torch.Tensor:
        return sdpa_attention_forward(module, query, key, value, None, dropout=0.0, scaling=scaling)[0]

    return kernel


def packed_causal_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    scaling: float,
    segments: list[tuple[int, int]],
    kernel=block_causal_attention,
) -> torch.Tensor:
    """Attention within each sample of one packed row: (1, H, S, D) -> (1, S, H, D).

    The samples are laid out as the rows of a right-padded batch for attention alone (`PackedRows`; the linear
    layers around it still see no padding), so every sample is attended in the same few batched matmuls of a
    causal `kernel`: a real token never sees the padding after it, and the padded positions are dropped.
    """
    rows = PackedRows([e - a for a, e in segments], query.device)
    return rows.pack(kernel(rows.unpack(query), rows.unpack(key), rows.unpack(value), scaling))  # (n, width, H, D)


def fallback(module, extra: list[str]):
    """What computes attention where tunesmith's own does not apply: transformers' SDPA, or, where the layer asks for
    what SDPA would drop (`extra`: soft-capped logits, attention sinks), the model's own eager attention (the
    `eager_attention_forward` of its modeling file)."""
    if not {"softcap", "s_aux"} & set(extra):
        return sdpa_attention_forward
    eager = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if eager is None:
        raise ValueError(
            f"{type(module).__name__} asks for {', '.join(extra)}, which SDPA does not compute, and its modeling file "
            "has no eager attention: set model.attention to eager"
        )

    def additive(module, query, key, value, attention_mask, **kwargs):  # eager adds its mask; ours are boolean
        if attention_mask is not None and attention_mask.dtype == torch.bool:
            low = torch.finfo(query.dtype).min
            attention_mask = torch.zeros_like(attention_mask, dtype=query.dtype).masked_fill_(~attention_mask, low)
        return eager(module, query, key, value, attention_mask, **kwargs)

    return additive


class BlockedAttention:
    """transformers' attention-function signature; SDPA wherever the blocked path does not apply."""

    def __init__(self) -> None:
        self.mask_check = MaskCheck()

    def __call__(
        self, module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs
    ):
        head = kwargs.pop("shared_head", None)
        rows = kwargs.pop("packed_rows", None)
        extra = [k for k in ("softcap", "sliding_window", "position_bias", "s_aux") if kwargs.get(k) is not None]
        if (head is not None or rows is not None) and extra:  # `takes_shared_head` keeps such models off this path
            raise ValueError(f"a shared head or a packed prefill attends plainly, without {', '.join(extra)}")
        if rows is not None:  # a packed prefill: attended as a left-padded batch of its rows
            if torch.is_grad_enabled() or dropout:
                raise ValueError("a packed prefill is for inference: no gradients, no dropout")
            scale = scaling if scaling is not None else query.shape[-1] ** -0.5
            keys = values = None
            if head is not None:
                keys, values = head.keys[module.layer_idx], head.values[module.layer_idx]
                head.calls += 1
            rows.calls += 1
            q, k, v = rows.unpack(query), rows.unpack(key), rows.unpack(value)
            return rows.pack(shared_head_attention(q, k, v, rows.mask(), scale, keys, values)), None
        if head is not None:
            if torch.is_grad_enabled() or dropout:
                raise ValueError("a shared head is for inference: no gradients, no dropout")
            scale = scaling if scaling is not None else query.shape[-1] ** -0.5
            keys, values = head.keys[module.layer_idx], head.values[module.layer_idx]
            head.calls += 1
            return shared_head_attention(query, key, value, attention_mask, scale, keys, values), None
        if _one_query(query, key, dropout, kwargs):
            scale = scaling if scaling is not None else query.shape[-1] ** -0.5
            return one_query_attention(query, key, value, attention_mask, scale), None
        segments = None
        if _eligible(module, query, key, dropout, kwargs):
            if attention_mask is None:
                segments = [(0, query.shape[2])]
            else:
                packed = packed_segments(kwargs.get("position_ids"))
                if packed is not None and self.mask_check(attention_mask, packed):
                    segments = packed
        blocked = runs_blocked(query.device)
        if (
            segments is None
            or (blocked and max(e - s for s, e in segments) > MAX_LENGTH)
            or (not blocked and len(segments) == 1)
        ):
            return fallback(module, extra)(
                module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
            )
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        if len(segments) == 1:
            return block_causal_attention(query, key, value, scale), None
        kernel = block_causal_attention if blocked else sdpa_causal(module)
        return packed_causal_attention(query, key, value, scale, segments, kernel), None


def register() -> str:
    """Make `NAME` an attention implementation transformers knows (again: a fresh one); return the name."""
    AttentionInterface.register(NAME, BlockedAttention())
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME
