"""Generate answers with the chat template applied exactly as in training (batched, greedy by default).

A label task's answers can be held to its label set (`LabelSet`): each decoding step is masked to the tokens
that keep the answer on the token path of `prefix + label` for some label (`LabelTrie`).
"""

from __future__ import annotations

import json
import os
import re
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from tunesmith.data.types import Message
from tunesmith.errors import RunError
from tunesmith.model.attention import takes_shared_head, text_config
from tunesmith.model.decode import MIN_SHARED, cache_argument, decode, preallocated_cache, shared_prefix
from tunesmith.model.inference import for_inference
from tunesmith.model.load import device_of
from tunesmith.progress import RowProgress
from tunesmith.render import render_prompt, stop_token_ids


@dataclass(frozen=True)
class LabelSet:
    """A label task's closed answer set: every answer starts with `prefix + label` for one of `labels`; with
    `end_of_turn` that is the whole answer, otherwise the answer goes on after it (`category: billing\nreply: ...`)."""

    labels: tuple[str, ...]
    prefix: str = ""
    end_of_turn: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if not self.labels or not all(self.prefix + label for label in self.labels):
            raise ValueError("a label set needs at least one label, and no empty answer")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> LabelSet | None:
        """The label set in a run's `labels.json` (`RunFolder(run).labels`); None when there is no such file."""
        path = Path(path)
        if not path.is_file():
            return None
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise RunError(f"the label set cannot be read: {e}", origin=path) from None
        if not isinstance(obj, dict):
            raise RunError('the label set must be a JSON object {"labels": [...], "prefix": ...}', origin=path)
        labels, prefix = obj.get("labels"), obj.get("prefix", "")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise RunError("must be a non-empty list of non-empty strings", origin=path, field="labels")
        if not isinstance(prefix, str):
            raise RunError("must be a string (the text every answer starts with)", origin=path, field="prefix")
        end_of_turn = obj.get("end_of_turn", obj.get("answer_regex") is None)
        if not isinstance(end_of_turn, bool):
            raise RunError("must be true or false", origin=path, field="end_of_turn")
        return cls(tuple(labels), prefix, end_of_turn)


def candidate_ids(tokenizer, labels: Sequence[str], prefix: str, end_of_turn: bool) -> list[list[int]]:
    """Token ids of each label's answer text (`prefix + label`, plus eos when the label is the whole answer).

    The answer text is tokenized as one string, as the model reads and writes the whole answer."""
    out = []
    for label in labels:
        ids = list(tokenizer(prefix + label, add_special_tokens=False).input_ids)
        out.append(ids + ([tokenizer.eos_token_id] if end_of_turn else []))
    return out


class LabelTrie:
    """The token paths of a label set's answers, merged into a prefix tree, for masking each decoding step.

    `allowed(generated)` walks the answer so far: inside the tree only the next tokens of some path may come.
    At the end of a complete label: when the label is the whole answer, only the stop tokens (or a longer
    label's next token); otherwise the answer goes on freely, except that a label ending in a word character
    is not glued to more of the word ('billing' never becomes 'billings'): the next token is a stop token, a
    `boundary` token (one whose text starts with no word character), or a longer label's next token.
    """

    def __init__(
        self,
        paths: Sequence[Sequence[int]],
        stop_ids: Sequence[int],
        end_of_turn: bool,
        *,
        glued: Sequence[bool] = (),
        boundary: Sequence[int] = (),
    ):
        self.children: list[dict[int, int]] = [{}]
        self.complete: list[bool] = [False]
        self.glued: list[bool] = [False]  # a complete label here ends in a word character
        for i, path in enumerate(paths):
            node = 0
            for token in path:
                if token not in self.children[node]:
                    self.children[node][token] = len(self.children)
                    self.children.append({})
                    self.complete.append(False)
                    self.glued.append(False)
                node = self.children[node][token]
            self.complete[node] = True
            self.glued[node] = self.glued[node] or (i < len(glued) and glued[i])
        self.stop_ids, self.end_of_turn = list(stop_ids), end_of_turn
        self.after_word = list(dict.fromkeys([*stop_ids, *boundary]))
        self.depth = max((len(p) for p in paths), default=0)  # tokens of the longest label's answer

    @property
    def room(self) -> int:
        """New tokens that always fit a whole label (and its end of turn)."""
        return self.depth + int(self.end_of_turn)

    @classmethod
    def of(cls, labels: LabelSet, tokenizer) -> LabelTrie:
        """The tree of `prefix + label` for every label, tokenized as the whole answer text is."""
        paths = candidate_ids(tokenizer, labels.labels, labels.prefix, end_of_turn=False)
        glued = [] if labels.end_of_turn else [bool(_WORD.match((labels.prefix + x)[-1])) for x in labels.labels]
        boundary = boundary_tokens(tokenizer) if any(glued) else []
        return cls(paths, stop_token_ids(tokenizer), labels.end_of_turn, glued=glued, boundary=boundary)

    def allowed(self, generated: Sequence[int]) -> list[int] | None:
        """The tokens that may follow `generated` (the answer's tokens so far); None when any token may."""
        node = 0
        for token in generated:
            if token not in self.children[node]:
                return None  # past a complete label: free text after it, or the answer has ended
            node = self.children[node][token]
        nxt = list(self.children[node])
        if not self.complete[node]:
            return nxt
        if self.end_of_turn:
            return nxt + [t for t in self.stop_ids if t not in self.children[node]]
        return nxt + self.after_word if self.glued[node] else None


_WORD = re.compile(r"\w")
_BOUNDARY_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def boundary_tokens(tokenizer) -> list[int]:
    """The tokens whose text starts with no word character (space, newline, punctuation): those that can
    follow a word without extending it. Worked out once per tokenizer."""
    if tokenizer not in _BOUNDARY_TOKENS:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=True)
        _BOUNDARY_TOKENS[tokenizer] = [
            i for i, t in enumerate(texts) if t and t[0] != "\ufffd" and not _WORD.match(t[0])
        ]
    return _BOUNDARY_TOKENS[tokenizer]


def only(logits: torch.Tensor, allowed: Sequence[int]) -> torch.Tensor:
    """`logits` (last dimension: the vocabulary) with every token but `allowed` set to -inf."""
    banned = torch.ones(logits.shape[-1], dtype=torch.bool, device=logits.device)
    banned[torch.tensor(list(allowed), dtype=torch.long, device=logits.device)] = False
    return logits.masked_fill(banned, float("-inf"))


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with rows right-aligned, so every row's last token shares one position."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids, mask


def picker(
    trie: LabelTrie | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
):
    """How `decode` chooses each row's next token: greedy unless `temperature > 0` (then nucleus sampling),
    among the tokens `trie` allows the answer so far where there is a trie."""

    def pick(logits: torch.Tensor, rows: Sequence[int], generated: Sequence[Sequence[int]]) -> list[int]:
        if trie is not None:
            masked = []
            for j, row in enumerate(rows):
                allowed = trie.allowed(generated[row])
                masked.append(logits[j] if allowed is None else only(logits[j], allowed))
            logits = torch.stack(masked)
        if temperature <= 0:
            return logits.argmax(-1).tolist()
        return [sample(row, temperature, top_p, generator) for row in logits]

    return pick


def generate_ids(
    model,
    tokenizer,
    prompts: list[list[int]],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    labels: LabelSet | None = None,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[int]]:
    """Each prompt's answer tokens (up to an end-of-turn token, not included), from one batched `decode` of the
    model as inference runs it (`for_inference`: a LoRA adapter merged into a copy of the weights).

    Greedy decoding unless `temperature > 0`. With `labels`, every answer starts with `prefix + label` for one of
    the labels (and ends there when `labels.end_of_turn`); `max_new_tokens` is raised to fit the longest label.
    `progress(rows, tokens)` hears after every decoding step how many rows finished and tokens came.
    """
    trie = None if labels is None else LabelTrie.of(labels, tokenizer)
    if trie is not None:
        max_new_tokens = max(max_new_tokens, trie.room)
    return decode(
        for_inference(model),
        prompts,
        stop_ids=stop_token_ids(tokenizer),
        pad_id=tokenizer.pad_token_id,
        max_new_tokens=max_new_tokens,
        pick=picker(trie, temperature, top_p, generator),
        progress=progress,
    )


def generate_batch(
    model,
    tokenizer,
    prompts: list[list[int]],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    labels: LabelSet | None = None,
) -> list[str]:
    """Continue each prompt (token ids) until an end-of-turn token; return the decoded answers
    (`generate_ids`, decoded)."""
    ids = generate_ids(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, labels=labels
    )
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]


# generation batches: up to this many times the scoring batch size (eval.batch_size) ... (a decoding step's cost
# grows slowly with its rows: SmolLM2 fp32 on 2 EPYC cores, 39 ms for 1 row, 65 for 16, 165 for 64)
GENERATE_ROWS = 16
CACHE_BUDGET = 1 << 30  # ... while their KV cache stays under 1 GiB (SmolLM2 fp32, 200-token rows: 116 rows)


def cache_bytes_per_token(model) -> int:
    """Bytes of KV cache one token takes in `model` (every layer's keys and values, in the model's dtype)."""
    config = text_config(model)
    heads = getattr(config, "num_attention_heads", 1) or 1
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    itemsize = next(model.parameters()).element_size()
    return 2 * config.num_hidden_layers * kv_heads * head_dim * itemsize


def batches(model, prompts: Sequence[Sequence[int]], batch_size: int, max_new_tokens: int) -> list[list[int]]:
    """The prompts' indices in generation batches: longest first, each batch up to `GENERATE_ROWS` x
    `batch_size` rows and a KV cache (every row at its longest prompt plus `max_new_tokens`) under `CACHE_BUDGET`.
    Where the model's attention keeps the tokens every prompt shares once (`takes_shared_head`), they count once."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    per_token = max(1, cache_bytes_per_token(model))
    head = shared_prefix(prompts) if takes_shared_head(model) else 0
    head = head if head >= MIN_SHARED else 0
    out, start = [], 0
    while start < len(order):
        longest = len(prompts[order[start]]) - head + max_new_tokens
        rows = max(1, min(GENERATE_ROWS * batch_size, (CACHE_BUDGET - per_token * head) // (per_token * longest)))
        out.append(order[start : start + rows])
        start += rows
    return out


def generate_answers(
    model,
    tokenizer,
    conversations: list[list[Message]],
    *,
    system_prompt: str | None,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    labels: LabelSet | None = None,
    progress: str | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Answer each conversation's last user turn; longest prompts first to waste little padding. Greedy
    unless `temperature > 0` (nucleus sampling with `top_p`, drawn from `generator`).

    A batch takes up to `GENERATE_ROWS` x `batch_size` rows, as many as keep its KV cache (every row at the
    batch's longest prompt plus `max_new_tokens`) under `CACHE_BUDGET`: more rows per decoding step is faster,
    and a row's answer does not depend on the batch.

    With `labels` (a label task), every answer is held to the label set (see `generate_batch`). With
    `progress` (a title), rows done, tokens/s and the time left are shown as it goes (`RowProgress`)."""
    model = for_inference(model)  # once for every batch
    prompts = [render_prompt(c, tokenizer, system_prompt=system_prompt) for c in conversations]
    answers: list[str] = [""] * len(prompts)
    shown = RowProgress(progress or "", len(prompts), enabled=progress is not None)
    try:
        for chunk in batches(model, prompts, batch_size, max_new_tokens):
            batch = [prompts[i] for i in chunk]
            ids = generate_ids(
                model,
                tokenizer,
                batch,
                max_new_tokens=max_new_tokens,
                labels=labels,
                temperature=temperature,
                top_p=top_p,
                generator=generator,
                progress=shown.advance,
            )
            for i, row in zip(chunk, ids):
                answers[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    finally:
        shown.close()
    return answers


def stream_answer(
    model,
    tokenizer,
    messages: list[Message],
    *,
    system_prompt: str | None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    labels: LabelSet | None = None,
) -> Iterator[str]:
    """Yield the answer to a conversation piece by piece, as it is generated (the server's token path).

    With `labels`, the answer is held to the label set as in `generate_batch`."""
    prompt = render_prompt(messages, tokenizer, system_prompt=system_prompt)
    text = TextStream(tokenizer)
    trie = None if labels is None else LabelTrie.of(labels, tokenizer)
    for token in generate_tokens(
        for_inference(model),  # as `generate_answers` decodes: the adapter merged into a copy
        prompt,
        max_new_tokens=max_new_tokens if trie is None else max(max_new_tokens, trie.room),
        stop_ids=stop_token_ids(tokenizer),
        temperature=temperature,
        constraint=trie,
    ):
        piece = text.push(token)
        if piece:
            yield piece


@torch.no_grad()
def generate_tokens(
    model,
    prompt: list[int],
    *,
    max_new_tokens: int,
    stop_ids: list[int],
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    constraint: LabelTrie | None = None,
) -> Iterator[int]:
    """Yield new token ids one at a time (KV cache, one sequence); a stop token ends it and is not yielded.

    Greedy (argmax) unless `temperature > 0`; then nucleus sampling with `top_p`, drawn from `generator`.
    With `constraint`, each step picks only among the tokens it allows (a label set's answers; a label cut
    short by `max_new_tokens` stays cut: the caller sets the budget).
    The caller may stop iterating at any point (a client went away, a stop string appeared).
    """
    model.eval()
    device = device_of(model)
    ids = torch.tensor([prompt], dtype=torch.long, device=device)
    cache = {cache_argument(model): preallocated_cache(model, len(prompt) + max_new_tokens)}  # filled in place
    stops = set(stop_ids)
    generated: list[int] = []
    pick = picker(constraint, temperature, top_p, generator)  # as `generate_ids` chooses
    for _ in range(max_new_tokens):
        logits = model(input_ids=ids, use_cache=True, logits_to_keep=1, **cache).logits[0, -1].float()
        token = pick(logits[None], [0], [generated])[0]
        if token in stops:
            return
        yield token
        generated.append(token)
        ids = torch.tensor([[token]], dtype=torch.long, device=device)


def sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    # in float64, from the top logit down: a tiny temperature neither overflows nor rounds to 0 (NaN)
    logits = logits.double()
    probs = torch.softmax((logits - logits.max()) / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        keep = sorted_probs.cumsum(0) - sorted_probs < top_p
        keep[0] = True  # the most likely token always stays, however small top_p is (5e-324 is 0 in float32)
        probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


class TextStream:
    """Turn generated token ids into text pieces as they arrive, never splitting a multi-byte character."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.sent = 0  # characters of the decoded text already returned

    def push(self, token: int) -> str:
        """Add one token; return the text it completes ('' while a character is still incomplete)."""
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if text.endswith("\ufffd"):
            return ""
        piece, self.sent = text[self.sent :], len(text)
        return piece
