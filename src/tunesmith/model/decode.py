"""Batched decoding with a preallocated KV cache: the one token loop behind evaluation, `generate` and `chat`.

Prompts that share a long common prefix (a system prompt, few-shot turns) have it computed once and copied to
every row; the rest is one left-padded prefill. A row that stops leaves the batch, so finished rows cost nothing.
Choosing each next token (greedy, sampling, a label set's constraint) is the caller's `pick`.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer

from tunesmith.model.attention import PackedRows, SharedHead, takes_shared_head, text_config, windowed

# prompts sharing at least this many leading tokens have them computed once (below it the copy costs more)
MIN_SHARED = 16
# prefill passes: at most this many tokens each (rows x width, padding included: the activations' memory) ...
PASS_TOKENS = 4096
# ... and, past this many (below it a pass is too small to run the matrix products at full speed) ...
MIN_PASS_TOKENS = 512
PASS_PADDING = 0.125  # ... no more than this share of padding
KEPT_HEADS = 8  # prompt heads (system turns) a serving batch keeps computed, the most recently used
Pick = Callable[[torch.Tensor, Sequence[int], Sequence[Sequence[int]]], list[int]]


class PreallocatedLayer(DynamicLayer):
    """One attention layer's keys and values in a buffer made once with room for `capacity` positions and
    filled in place (transformers' dynamic layer re-makes both tensors at every token). Fuller than planned,
    it doubles."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0
        self.key_buffer = self.value_buffer = torch.empty(0)

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        b, h, _, d = key_states.shape
        self.device = key_states.device
        self.key_buffer = key_states.new_empty((b, h, self.capacity, d))
        self.value_buffer = value_states.new_empty((b, value_states.shape[1], self.capacity, value_states.shape[3]))
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.key_buffer.shape[2]:
            self._resize(max(end, 2 * self.key_buffer.shape[2]))
        self.key_buffer[:, :, self.length : end].copy_(key_states)
        self.value_buffer[:, :, self.length : end].copy_(value_states)
        self.length = end
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self._views()

    def repeated(self, rows: int, capacity: int) -> PreallocatedLayer:
        """A new layer holding this (one-row) layer's positions in each of `rows` rows, with room for `capacity`
        in all (this one is left as it is, to be repeated again)."""
        new = PreallocatedLayer(capacity)
        if self.is_initialized:
            for name in ("key_buffer", "value_buffer"):
                old = getattr(self, name)
                buffer = old.new_empty((rows, old.shape[1], max(capacity, self.length), old.shape[3]))
                buffer[:, :, : self.length].copy_(old[:, :, : self.length].expand(rows, -1, -1, -1))
                setattr(new, name, buffer)
            new.length, new.device, new.is_initialized = self.length, self.device, True
            new._views()
        return new

    @staticmethod
    def unpacked(layer: PreallocatedLayer, rows: PackedRows) -> PreallocatedLayer:
        """A new layer holding a packed prefill's `layer` (one row of every prompt's tokens end to end) as a batch,
        each row right-aligned at the longest (zeros on the left, where the attention mask hides them)."""
        new = PreallocatedLayer(rows.width)
        if layer.is_initialized:
            new.key_buffer = rows.unpack(layer.key_buffer[:, :, : layer.length])
            new.value_buffer = rows.unpack(layer.value_buffer[:, :, : layer.length])
            new.length, new.device, new.is_initialized = rows.width, layer.device, True
            new._views()
        return new

    @staticmethod
    def stacked(parts: Sequence[PreallocatedLayer], capacity: int) -> PreallocatedLayer:
        """A new layer holding every part's rows in turn, each right-aligned at the longest part's length (the
        shorter ones padded with zeros on the left, where the attention mask hides them), with room for
        `capacity` positions."""
        parts = [p for p in parts if p.is_initialized]
        new = PreallocatedLayer(capacity)
        if not parts:
            return new
        length = max(p.length for p in parts)
        for name in ("key_buffer", "value_buffer"):
            first = getattr(parts[0], name)
            rows = sum(getattr(p, name).shape[0] for p in parts)
            buffer = first.new_zeros((rows, first.shape[1], max(capacity, length), first.shape[3]))
            row = 0
            for p in parts:
                old = getattr(p, name)
                buffer[row : row + old.shape[0], :, length - p.length : length].copy_(old[:, :, : p.length])
                row += old.shape[0]
            setattr(new, name, buffer)
        new.length, new.device, new.is_initialized = length, parts[0].device, True
        new._views()
        return new

    def join(self, other: PreallocatedLayer) -> None:
        """Take `other`'s rows into this batch, both right-aligned at the longer length (the shorter padded on
        the left, where the attention mask hides it)."""
        if not other.is_initialized:
            return
        both = other
        if self.is_initialized:
            capacity = max(self.key_buffer.shape[2], other.key_buffer.shape[2], max(self.length, other.length) + 1)
            both = PreallocatedLayer.stacked([self, other], capacity)
        self.key_buffer, self.value_buffer, self.length = both.key_buffer, both.value_buffer, both.length
        self.device, self.is_initialized = both.device, True
        self._views()

    def drop_leading(self, columns: int) -> None:
        """Forget the first `columns` positions (padding in every row)."""
        self.key_buffer = self.key_buffer[:, :, columns:]
        self.value_buffer = self.value_buffer[:, :, columns:]
        self.length -= columns
        self._views()

    def _resize(self, capacity: int) -> None:
        for name in ("key_buffer", "value_buffer"):
            old = getattr(self, name)
            new = old.new_empty((*old.shape[:2], capacity, old.shape[3]))
            new[:, :, : self.length].copy_(old[:, :, : self.length])
            setattr(self, name, new)

    def _views(self) -> None:
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]


def preallocated_cache(model, capacity: int) -> Cache:
    """A cache of `PreallocatedLayer`s, one per decoder layer of `model`."""
    return Cache(layers=[PreallocatedLayer(capacity) for _ in range(text_config(model).num_hidden_layers)])


def cache_argument(model) -> str:
    """The name the model's forward takes its KV cache by: `cache` (transformers >= 5.2x) or `past_key_values`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def shared_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Leading tokens every prompt has in common, leaving each prompt at least one token of its own."""
    if len(prompts) < 2:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        i = 0
        while i < n and p[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


def last_positions(width: int, n: int = 1, device: torch.device | str | None = None) -> torch.Tensor:
    """`logits_to_keep` for the last `n` of `width` positions, as a tensor of positions: transformers slices the
    hidden states with it into a new contiguous tensor. An int `n` slices a strided view, which a batch of more
    than one row sends through a batched matmul that first copies the output head once per row (SmolLM2's:
    16 x 28M values, 3.3 s of a 3.5 s prefill of 16 rows, measured on 2 CPU cores)."""
    return torch.arange(width - n, width, device=device)


def greedy(logits: torch.Tensor, rows: Sequence[int], generated: Sequence[Sequence[int]]) -> list[int]:
    """The most likely next token of every row."""
    return logits.argmax(-1).tolist()


def passes(widths: Sequence[int]) -> list[range]:
    """Consecutive rows computed in one prefill pass, left-padded to the pass's widest: a pass ends before the row
    that would take it past `PASS_TOKENS`, or, once it holds `MIN_PASS_TOKENS`, before a row that would make more
    than `PASS_PADDING` of it padding. Rows sorted by width, longest first, waste little."""
    out, start = [], 0
    while start < len(widths):
        end, width, real = start + 1, widths[start], widths[start]
        while end < len(widths):
            wider = max(width, widths[end])
            tokens = (end - start + 1) * wider
            if tokens > PASS_TOKENS or (
                (end - start) * width >= MIN_PASS_TOKENS and tokens - real - widths[end] > PASS_PADDING * tokens
            ):
                break
            end, width, real = end + 1, wider, real + widths[end]
        out.append(range(start, end))
        start = end
    return out


# forward(cache, ids, mask, positions, rows, head[, packed]): next-token logits of `rows`
Forward = Callable[..., torch.Tensor]


def head_layers(forward: Forward, new_cache: Callable[[int], Cache], tokens: Sequence[int], device) -> list:
    """One row's cache layers holding `tokens` (a prefix many prompts share), from a pass over exactly them."""
    cache = new_cache(len(tokens))
    forward(cache, torch.tensor([list(tokens)], device=device), None, torch.arange(len(tokens))[None], range(1), None)
    return [layer for layer in cache.layers if isinstance(layer, PreallocatedLayer)]


def prefill(
    forward: Forward,
    new_cache: Callable[[int], Cache],
    prompts: Sequence[Sequence[int]],
    shared: int,
    pad_id: int,
    room: int,
    device,
    split: bool = False,
    known: list[PreallocatedLayer] | None = None,
    packed: bool = False,
) -> tuple[torch.Tensor, list, torch.Tensor, torch.Tensor, SharedHead | None]:
    """Compute `prompts`: their first `shared` tokens once, the rest in passes of rows of similar length (`passes`),
    each left-padded to its own widest. `forward(cache, ids, mask, positions, rows, head)` runs the model on `cache`
    for the rows `rows` of `prompts`; `new_cache(capacity)` makes an empty cache.

    The shared tokens' keys and values are copied to every row, or, with `split`, kept once as a `SharedHead` that
    every row's attention reads (the layers and mask then hold each row's own tokens). `known`: those tokens'
    layers already computed (`head_layers`), one row of exactly `shared` positions. Returns the next-token
    logits, the batch's cache layers (every row right-aligned at the longest, with room for `room` more positions),
    the attention mask, every row's next position (each counted from the row's first token), and the head.

    With `packed` (the model attends through tunesmith's attention, which takes `packed_rows`), a pass lays its rows'
    own tokens end to end (`PackedRows`): the linear layers then compute no padding at all (only attention does, in
    the pass's left-padded layout), and `forward` gets the layout as a seventh argument. Not with a head copied to
    every row (`split` off)."""
    layers: list[PreallocatedLayer] = []
    head = None
    if shared:
        layers = known if known is not None else head_layers(forward, new_cache, prompts[0][:shared], device)
        head = SharedHead([la.key_buffer for la in layers], [la.value_buffer for la in layers]) if split else None
    kept = 0 if head is not None else shared  # the shared tokens each row's own cache holds
    logits, masks, positions = [], [], []
    parts: list[list] = []
    own = [len(prompts[i]) - shared for i in range(len(prompts))]
    packed = packed and not kept
    for rows in passes(own):
        if packed:
            layout = PackedRows([own[i] for i in rows], device, left=True)
            ids = torch.tensor([[t for i in rows for t in prompts[i][shared:]]], dtype=torch.long, device=device)
            cache = new_cache(ids.shape[1])
            logits.append(forward(cache, ids, None, (layout.offset + shared)[None], rows, head, layout))
            if layout.calls != len(cache.layers):
                raise RuntimeError(f"{layout.calls} of {len(cache.layers)} layers attended to the packed rows apart")
            _check_head(head, cache)
            parts.append(
                [PreallocatedLayer.unpacked(la, layout) for la in cache.layers if isinstance(la, PreallocatedLayer)]
            )
            masks.append(layout.valid.long())
            positions.append(layout.lengths[:, None] + shared)
            continue
        width = max(len(prompts[i]) for i in rows) - shared
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), kept + width), dtype=torch.long)
        mask[:, :kept] = 1
        for j, i in enumerate(rows):
            rest = list(prompts[i][shared:])
            ids[j, width - len(rest) :] = torch.tensor(rest, dtype=torch.long)
            mask[j, kept + width - len(rest) :] = 1
        cache = new_cache(width)
        if kept:
            cache = Cache(layers=[layer.repeated(len(rows), shared + width) for layer in layers])
        ids, mask = ids.to(device), mask.to(device)
        position = (mask.cumsum(-1) - 1).clamp(min=0) + (shared - kept)
        logits.append(forward(cache, ids, mask, position[:, kept:], rows, head))
        _check_head(head, cache)
        parts.append(cache.layers)
        masks.append(mask)
        positions.append(position[:, -1:] + 1)
    longest = max(m.shape[1] for m in masks)
    stacked = [PreallocatedLayer.stacked(layer, longest + room) for layer in zip(*parts)]
    mask = torch.cat([torch.cat([m.new_zeros((m.shape[0], longest - m.shape[1])), m], 1) for m in masks])
    return torch.cat(logits), stacked, mask, torch.cat(positions), head


def _check_head(head: SharedHead | None, cache: Cache) -> None:
    """Every layer of a pass attended to the shared head (a model whose attention drops the keyword is caught)."""
    if head is not None and head.calls != len(cache.layers):
        raise RuntimeError(f"{head.calls} of {len(cache.layers)} layers attended to the shared head")
    if head is not None:
        head.calls = 0


@torch.no_grad()
def decode(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    stop_ids: Sequence[int],
    pad_id: int,
    max_new_tokens: int,
    pick: Pick = greedy,
    share_prefix: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[int]]:
    """New tokens for each prompt (token ids), up to a stop token (not included) or `max_new_tokens`.

    `pick(logits, rows, generated)` chooses the next token of every row still decoding: `logits` is float32
    (rows still decoding x vocabulary), `rows` their indices in `prompts`, `generated` every row's tokens so far.
    Each row's positions count from its own first token, as transformers' `generate` counts them.
    `progress(rows, tokens)`, where given, hears after every step how many rows finished and tokens came.
    """
    model.eval()
    n = len(prompts)
    out: list[list[int]] = [[] for _ in range(n)]
    if n == 0 or max_new_tokens <= 0:
        if progress is not None and n:
            progress(n, 0)
        return out
    device = model.get_input_embeddings().weight.device
    shared = shared_prefix(prompts) if share_prefix and not windowed(model) else 0  # a copied head pads mid-row
    shared = shared if shared >= MIN_SHARED else 0
    arg = cache_argument(model)

    def forward(cache: Cache, ids, mask, positions, rows: range, head, packed: PackedRows | None = None):
        kw = {arg: cache, "attention_mask": mask, "position_ids": positions.to(device)}
        if head is not None:
            kw["shared_head"] = head
        if packed is not None:  # every row's last token's logits, in row order
            kw["packed_rows"] = packed
            return model(input_ids=ids, use_cache=True, logits_to_keep=packed.ends, **kw).logits[0].float()
        keep = last_positions(ids.shape[1], 1, device)
        return model(input_ids=ids, use_cache=True, logits_to_keep=keep, **kw).logits[:, -1].float()

    def new_cache(capacity: int) -> Cache:
        return preallocated_cache(model, capacity)

    order = sorted(range(n), key=lambda i: -len(prompts[i]))  # passes of similar length waste little padding
    ordered = [prompts[i] for i in order]
    ours = takes_shared_head(model)  # tunesmith's attention: the head kept once, the prefill packed
    logits, layers, mask, positions, head = prefill(
        forward, new_cache, ordered, shared, pad_id, max_new_tokens, device, split=bool(shared) and ours, packed=ours
    )
    cache = Cache(layers=layers)
    stops, alive = set(stop_ids), order
    for _ in range(max_new_tokens):
        picked = pick(logits, alive, out)
        keep, added = [], 0
        for j, (row, token) in enumerate(zip(alive, picked)):
            if token in stops:
                continue
            out[row].append(token)
            added += 1
            if len(out[row]) < max_new_tokens:
                keep.append(j)
        if progress is not None:
            progress(len(alive) - len(keep), added)
        if not keep:
            break
        if len(keep) < len(alive):  # finished rows leave the batch
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, positions = mask[index], positions[index]
            alive = [alive[j] for j in keep]
        ids = torch.tensor([[out[row][-1]] for row in alive], device=device)
        mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
        logits = forward(cache, ids, mask, positions, range(0), head)
        positions = positions + 1
    return out


class Batch:
    """Requests decoding together, joining and leaving at any step (continuous batching): one preallocated KV
    cache with every row right-aligned, each row's own positions, and, on a PEFT model, each row's own adapter
    (peft's mixed-adapter batches; None: the base weights)."""

    def __init__(self, model, pad_id: int = 0):
        self.model, self.arg, self.pad_id = model, cache_argument(model), pad_id  # pad ids are masked: any id does
        self.peft = hasattr(model, "peft_config")
        self.heads: OrderedDict[tuple, list[PreallocatedLayer]] = OrderedDict()  # (adapter, tokens) -> layers
        self.clear()

    def clear(self) -> None:
        """No rows."""
        self.layers: list[PreallocatedLayer] = []
        self.mask = torch.zeros((0, 0), dtype=torch.long)
        self.positions = torch.zeros((0, 1), dtype=torch.long)
        self.adapters: list[str] = []

    def __len__(self) -> int:
        return len(self.adapters)

    def _forward(self, cache: Cache, ids, mask, positions, adapters: list[str]) -> torch.Tensor:
        kw = {self.arg: cache, "attention_mask": mask, "position_ids": positions}
        if self.peft:
            kw["adapter_names"] = adapters
        keep = last_positions(ids.shape[1], 1, ids.device)
        return self.model(input_ids=ids, use_cache=True, logits_to_keep=keep, **kw).logits[:, -1].float()

    def join(self, prompt: Sequence[int], adapter: str | None, room: int) -> torch.Tensor:
        """Compute `prompt` alone (its own adapter), take it into the batch; its next-token logits (float32).
        `room`: the new tokens it may generate (the cache is sized for them)."""
        return self.join_many([prompt], [adapter], room)[0]

    def join_many(
        self, prompts: Sequence[Sequence[int]], adapters: Sequence[str | None], room: int, head: int = 0
    ) -> torch.Tensor:
        """Compute `prompts` together and take them into the batch, in their order: the tokens they all share (a
        system prompt) once when they share an adapter, the rest in left-padded passes (`prefill`). Their next-token
        logits (rows x vocabulary, float32). `room`: the new tokens each may generate.

        `head`: leading tokens these prompts share with prompts still to come (the system turn every request of a
        served model starts with). Computed alone, once, and kept (the last `KEPT_HEADS` per batch), they are not
        computed again for later prompts that start with them: a request pays only for its own tokens."""
        device = self.model.get_input_embeddings().weight.device
        names = [a if a is not None else "__base__" for a in adapters]
        same = len(set(names)) == 1 and not windowed(self.model)  # a copied head pads mid-row: no window allows it
        shared = shared_prefix(prompts) if same else 0
        key = (names[0], tuple(prompts[0][:head]))
        kept = same and head >= MIN_SHARED and all(len(p) > head and tuple(p[:head]) == key[1] for p in prompts)
        shared = head if kept else shared if shared >= MIN_SHARED else 0

        def forward(cache: Cache, ids, mask, positions, rows: range, head: SharedHead | None) -> torch.Tensor:
            return self._forward(cache, ids, mask, positions.to(device), [names[i] for i in rows])

        def new_cache(capacity: int) -> Cache:
            return preallocated_cache(self.model, capacity)

        known = None
        if kept:
            known = self.heads.pop(key, None) or head_layers(forward, new_cache, key[1], device)
            self.heads[key] = known  # the most recent last
            while len(self.heads) > KEPT_HEADS:
                self.heads.popitem(last=False)
        logits, new, mask, positions, _ = prefill(
            forward, new_cache, prompts, shared, self.pad_id, room, device, known=known
        )
        if not self.layers:
            self.layers = new
        else:
            for mine, theirs in zip(self.layers, new):
                mine.join(theirs)
        full = max(self.mask.shape[1], mask.shape[1])

        def pad(m: torch.Tensor) -> torch.Tensor:  # right-aligned at the batch's width
            return torch.cat([m.new_zeros((m.shape[0], full - m.shape[1])), m], 1)

        self.mask = torch.cat([pad(self.mask.to(device)), pad(mask)])
        self.positions = torch.cat([self.positions.to(device), positions])
        self.adapters += names
        return logits

    def step(self, tokens: Sequence[int]) -> torch.Tensor:
        """Feed every row its next token; the logits after it (rows x vocabulary, float32)."""
        device = self.mask.device
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self), 1))], 1)
        ids = torch.tensor([[t] for t in tokens], device=device)
        logits = self._forward(Cache(layers=list(self.layers)), ids, self.mask, self.positions, self.adapters)
        self.positions = self.positions + 1
        return logits

    def keep(self, rows: Sequence[int]) -> None:
        """Only `rows` stay (the others finished, were cancelled or failed); columns no row needs go too."""
        if not rows:
            self.clear()
            return
        index = torch.tensor(list(rows), device=self.mask.device)
        self.mask, self.positions = self.mask[index], self.positions[index]
        self.adapters = [self.adapters[i] for i in rows]
        for layer in self.layers:
            layer.batch_select_indices(index)
        unused = int((self.mask.sum(0) == 0).cumprod(0).sum())  # leading columns that are padding in every row
        if unused:
            self.mask = self.mask[:, unused:]
            for layer in self.layers:
                layer.drop_leading(unused)
