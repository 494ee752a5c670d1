"""Conversation -> (input_ids, labels): the ONE place where training tokens and their loss mask are made.

Through the tokenizer's chat template (or `PLAIN_TEMPLATE` for base models), so training sees the text
inference produces; a token is trained when it starts inside a trained turn, whose end-of-turn token is
always trained and the template's separator after it is not (docs/design.md, Rendering and masking).
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.data.types import Conversation, Message
from tunesmith.errors import ConfigError, DataError, Origin

IGNORE = -100

# For base models without a chat template. bos/eos come from the tokenizer; a trained turn ends in eos.
PLAIN_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### User:\n{{ m['content'] }}\n\n"
    "{% else %}### Assistant:\n{{ m['content'] }}{{ eos_token }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)
# data.template: named templates for models without one (or to replace theirs). Each needs its marker tokens
# in the vocabulary: a marker split into pieces would be trained and generated as text.
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
NAMED_TEMPLATES = {"chatml": CHATML_TEMPLATE, "llama3": LLAMA3_TEMPLATE, "plain": PLAIN_TEMPLATE}
TEMPLATE_TOKENS = {
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "llama3": ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "plain": (),
}
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>", "<|endoftext|>")


@dataclass(frozen=True)
class Rendered:
    """One training row. `labels[i]` is `input_ids[i]` where trained, else IGNORE (not shifted)."""

    input_ids: list[int]
    labels: list[int]
    origin: Origin
    truncated: bool = False
    trained_tokens_lost: int = 0

    @property
    def n_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def template_of(tokenizer) -> str:
    """The chat template this tokenizer renders with: its own, or the plain fallback."""
    return tokenizer.chat_template or PLAIN_TEMPLATE


def use_template(tokenizer, setting: str = "auto") -> str:
    """Give `tokenizer` the chat template `data.template` names; return what is used, in words.

    `auto` keeps the model's own (the plain format when it has none); `chatml`, `llama3` and `plain` are the
    named templates; anything else is a Jinja file. The tokenizer carries the choice from here on: training,
    inference and every export render with it."""
    if setting == "auto":
        return "the model's own" if tokenizer.chat_template else "plain (the model has no chat template)"
    if setting in NAMED_TEMPLATES:
        missing = [t for t in TEMPLATE_TOKENS[setting] if _token_id(tokenizer, t) is None]
        if missing:
            raise ConfigError(
                f"'{setting}' needs the tokens {', '.join(missing)}, which this model's vocabulary lacks (they would "
                "be trained as plain text); choose plain, or a template file written with the model's own tokens",
                field="data.template",
            )
        tokenizer.chat_template = NAMED_TEMPLATES[setting]
        return f"{setting} (data.template)"
    tokenizer.chat_template = _template_file(tokenizer, setting)
    return f"{setting} (data.template)"


def _template_file(tokenizer, path: str) -> str:
    """A Jinja chat template read from `path`, refused unless it renders a conversation with its content."""
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = "no such file" if isinstance(e, FileNotFoundError) else getattr(e, "strerror", None) or str(e)
        raise ConfigError(
            f"not 'auto', 'chatml', 'llama3', 'plain' or a readable template file: {why}",
            field="data.template",
            origin=path,
        ) from None
    probe = [{"role": "user", "content": "PROBE-QUESTION"}, {"role": "assistant", "content": "PROBE-ANSWER"}]
    try:
        shown = tokenizer.apply_chat_template(probe, chat_template=text, tokenize=False)
    except Exception as e:  # jinja2's syntax and runtime errors, whatever the template raised
        raise ConfigError(
            f"the chat template does not render: {type(e).__name__}: {e}", field="data.template", origin=path
        ) from None
    if "PROBE-QUESTION" not in shown or "PROBE-ANSWER" not in shown:
        raise ConfigError(
            "the chat template leaves out the messages' content (it should print each message's 'content')",
            field="data.template",
            origin=path,
        )
    return text


def with_system(messages: tuple[Message, ...] | list[Message], system_prompt: str | None) -> list[Message]:
    """Insert the configured system prompt when a conversation has none (training and inference alike)."""
    messages = list(messages)
    if system_prompt is not None and not (messages and messages[0].role == "system"):
        messages.insert(0, Message(role="system", content=system_prompt))
    return messages


def _apply(tokenizer, messages: list[Message], *, generation_prompt: bool) -> str:
    if not messages and not generation_prompt:
        return ""
    return tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        chat_template=template_of(tokenizer),
        tokenize=False,
        add_generation_prompt=generation_prompt,
    )


def _token_id(tokenizer, token: str) -> int | None:
    """The id of one token string, or None when the vocabulary lacks it (no full vocabulary copy: fast)."""
    return tokenizer.backend_tokenizer.token_to_id(token)


def _end_tokens(tokenizer) -> list[str]:
    names = [tokenizer.eos_token] if tokenizer.eos_token else []
    return names + [t for t in END_OF_TURN_TOKENS if t not in names and _token_id(tokenizer, t) is not None]


def _trained_spans(
    tokenizer, messages: list[Message], full: str, origin: Origin, train_on_prompt: bool
) -> list[tuple[int, int, bool]]:
    """Character spans [start, end) of trained text, and whether each already ends in an end-of-turn token."""
    if train_on_prompt:
        return [(0, len(full), True)]
    ends = _end_tokens(tokenizer)
    spans = []
    for i, m in enumerate(messages):
        if not m.trained:
            continue
        head = _apply(tokenizer, messages[:i], generation_prompt=m.role == "assistant")
        upto = _apply(tokenizer, messages[: i + 1], generation_prompt=False)
        if not (full.startswith(head) and full.startswith(upto) and len(upto) >= len(head)):
            raise DataError(
                "the chat template does not render conversations prefix by prefix, so the "
                "trained turn cannot be located",
                origin=origin,
                field=f"messages[{i}]",
            )
        segment = full[len(head) : len(upto)]
        cut = max((segment.rfind(t) + len(t) for t in ends if t in segment), default=-1)
        if cut > 0:
            spans.append((len(head), len(head) + cut, True))
        else:
            spans.append((len(head), len(head) + len(segment.rstrip()), False))
    return spans


def render(
    conv: Conversation, tokenizer, *, max_length: int, system_prompt: str | None = None, train_on_prompt: bool = False
) -> Rendered:
    """Tokenize one conversation and mark the trained tokens. Pure: same input, same output."""
    if conv.is_text:
        ids = tokenizer(conv.text, add_special_tokens=False).input_ids
        if tokenizer.bos_token_id is not None and _adds_bos(tokenizer):
            ids = [tokenizer.bos_token_id] + ids
        ids = ids + [tokenizer.eos_token_id]
        labels = list(ids)
    else:
        messages = with_system(conv.messages, system_prompt)
        full = _apply(tokenizer, messages, generation_prompt=False)
        enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc.input_ids), enc.offset_mapping
        labels = [IGNORE] * len(ids)
        inserts = []
        for start, end, has_end in _trained_spans(tokenizer, messages, full, conv.origin, train_on_prompt):
            last = None
            for j, (s, _) in enumerate(offsets):
                if start <= s < end:
                    labels[j] = ids[j]
                    last = j
            if not has_end and last is not None:
                inserts.append(last + 1)
        for pos in reversed(inserts):  # templates without an end-of-turn marker: train an explicit eos
            ids.insert(pos, tokenizer.eos_token_id)
            labels.insert(pos, tokenizer.eos_token_id)
    ids, labels = _dedupe_bos(tokenizer, ids, labels)
    if len(ids) <= max_length:
        return Rendered(ids, labels, conv.origin)
    lost = sum(1 for x in labels[max_length:] if x != IGNORE)
    return Rendered(ids[:max_length], labels[:max_length], conv.origin, truncated=True, trained_tokens_lost=lost)


def render_prompt(
    messages: tuple[Message, ...] | list[Message], tokenizer, *, system_prompt: str | None = None
) -> list[int]:
    """Token ids a model is given to answer: the same rendering as training, up to the generation prompt."""
    text = _apply(tokenizer, with_system(messages, system_prompt), generation_prompt=True)
    ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    return _dedupe_bos(tokenizer, ids, list(ids))[0]


def prompt_head(tokenizer, system_prompt: str | None) -> list[int]:
    """The tokens every prompt rendered with `system_prompt` starts with, whatever the user says: the system turn
    and what the template puts before the user's words (two one-turn prompts' common start)."""
    one, other = (render_prompt([Message("user", text)], tokenizer, system_prompt=system_prompt) for text in "ab")
    n = 0
    while n < min(len(one), len(other)) and one[n] == other[n]:
        n += 1
    return one[:n]


def stop_token_ids(tokenizer) -> list[int]:
    """Tokens that end a generated answer: eos and the template's end-of-turn token(s)."""
    ids = [i for i in (_token_id(tokenizer, t) for t in _end_tokens(tokenizer)) if i is not None]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.insert(0, tokenizer.eos_token_id)
    return ids


def template_overhead(tokenizer, system_prompt: str | None) -> int:
    """Tokens a one-turn conversation costs before any content: the floor for max_length."""
    empty = [Message("user", ""), Message("assistant", "")]
    text = _apply(tokenizer, with_system(empty, system_prompt), generation_prompt=False)
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def check_max_length(tokenizer, max_length: int, system_prompt: str | None) -> None:
    """Refuse a max_length that cannot hold even an empty turn plus a few tokens of content."""
    overhead = template_overhead(tokenizer, system_prompt)
    if max_length < overhead + 8:
        raise ConfigError(
            f"{max_length} is below the chat template's overhead ({overhead} tokens for an empty "
            f"turn, system prompt included) plus room for content; use at least {overhead + 8}",
            field="train.max_length",
        )


def render_all(
    convs: list[Conversation],
    tokenizer,
    *,
    max_length: int,
    system_prompt: str | None = None,
    train_on_prompt: bool = False,
) -> tuple[list[Rendered], list[Rendered]]:
    """Render every conversation; return (kept, dropped) where dropped rows have no trained token left."""
    kept: list[Rendered] = []
    dropped: list[Rendered] = []
    for conv in convs:
        r = render(conv, tokenizer, max_length=max_length, system_prompt=system_prompt, train_on_prompt=train_on_prompt)
        (kept if any(x != IGNORE for x in r.labels[1:]) else dropped).append(r)  # label 0 has no context
    return kept, dropped


def _adds_bos(tokenizer) -> bool:
    ids = tokenizer("a", add_special_tokens=True).input_ids
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def _dedupe_bos(tokenizer, ids: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
    bos = tokenizer.bos_token_id
    while bos is not None and len(ids) > 1 and ids[0] == bos and ids[1] == bos:
        ids, labels = ids[1:], labels[1:]
    return ids, labels
