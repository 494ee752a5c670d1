"""Generate answers with the chat template applied exactly as in training (batched, greedy by default)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from tunesmith.data.types import Message
from tunesmith.model.load import device_of
from tunesmith.render import render_prompt, stop_token_ids


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with rows right-aligned, so every row's last token shares one position."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids, mask


@torch.no_grad()
def generate_batch(
    model,
    tokenizer,
    prompts: list[list[int]],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
) -> list[str]:
    """Continue each prompt (token ids) until an end-of-turn token; return the decoded answers.

    Prompts are left-padded so every row's last prompt token sits at the same position, and the KV cache
    is used; greedy decoding unless `temperature > 0`.
    """
    model.eval()
    pad = tokenizer.pad_token_id
    ids, mask = left_pad(prompts, pad)
    device = device_of(model)
    ids, mask = ids.to(device), mask.to(device)
    width = ids.shape[1]
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p}
        if temperature > 0
        else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    )
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        eos_token_id=stop_token_ids(tokenizer),
        pad_token_id=pad,
        **sampling,
    )
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]


def generate_answers(
    model,
    tokenizer,
    conversations: list[list[Message]],
    *,
    system_prompt: str | None,
    max_new_tokens: int = 128,
    batch_size: int = 16,
) -> list[str]:
    """Answer each conversation's last user turn; longest prompts first to waste little padding."""
    prompts = [render_prompt(c, tokenizer, system_prompt=system_prompt) for c in conversations]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    answers: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for i, text in zip(
            chunk, generate_batch(model, tokenizer, [prompts[i] for i in chunk], max_new_tokens=max_new_tokens)
        ):
            answers[i] = text
    return answers


def stream_answer(
    model,
    tokenizer,
    messages: list[Message],
    *,
    system_prompt: str | None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
) -> Iterator[str]:
    """Yield the answer to a conversation piece by piece, as it is generated (the server's token path)."""
    prompt = render_prompt(messages, tokenizer, system_prompt=system_prompt)
    text = TextStream(tokenizer)
    for token in generate_tokens(
        model, prompt, max_new_tokens=max_new_tokens, stop_ids=stop_token_ids(tokenizer), temperature=temperature
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
) -> Iterator[int]:
    """Yield new token ids one at a time (KV cache, one sequence); a stop token ends it and is not yielded.

    Greedy (argmax) unless `temperature > 0`; then nucleus sampling with `top_p`, drawn from `generator`.
    The caller may stop iterating at any point (a client went away, a stop string appeared).
    """
    from transformers import DynamicCache

    model.eval()
    device = device_of(model)
    ids = torch.tensor([prompt], dtype=torch.long, device=device)
    cache = {_cache_argument(model): DynamicCache()}  # filled in place, step by step
    stops = set(stop_ids)
    for _ in range(max_new_tokens):
        logits = model(input_ids=ids, use_cache=True, logits_to_keep=1, **cache).logits[0, -1].float()
        token = int(logits.argmax()) if temperature <= 0 else _sample(logits, temperature, top_p, generator)
        if token in stops:
            return
        yield token
        ids = torch.tensor([[token]], dtype=torch.long, device=device)


def _cache_argument(model) -> str:
    """The name the model's forward takes its KV cache by: `cache` (transformers >= 5.2x) or `past_key_values`."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        keep = sorted_probs.cumsum(0) - sorted_probs < top_p  # always keeps the most likely token
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
