"""The training contract of one row: is the end-of-turn/eos token trained, is BOS doubled, and is the
inference prompt (`render_prompt`) a token-exact prefix of the training row. Training refuses a row that
breaks it (`refuse_contract_errors`); `tunesmith check` reports every such row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tunesmith.data.types import Conversation
from tunesmith.errors import DataError
from tunesmith.findings import Finding
from tunesmith.render import IGNORE, Rendered, render_prompt, stop_token_ids, template_of, with_system


def truncate(full: Rendered, max_length: int) -> Rendered:
    """The row `render(..., max_length)` would return, from the un-truncated rendering."""
    if len(full.input_ids) <= max_length:
        return full
    lost = sum(1 for x in full.labels[max_length:] if x != IGNORE)
    return Rendered(
        full.input_ids[:max_length], full.labels[:max_length], full.origin, truncated=True, trained_tokens_lost=lost
    )


def _text(tokenizer, messages, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        chat_template=template_of(tokenizer),
        tokenize=False,
        add_generation_prompt=generation_prompt,
    )


def _piece(tokenizer, ids: Sequence[int]) -> str:
    return repr(tokenizer.decode(list(ids)))


def row_findings(
    conv: Conversation, row: Rendered, tokenizer, system_prompt: str | None, end_ids: set[int]
) -> list[Finding]:
    """Error-level contract problems of one training row (empty when the row is sound)."""
    out: list[Finding] = []
    where = str(conv.origin)
    if (
        not row.truncated
        and not any(x in end_ids for x in row.labels if x != IGNORE)
        and any(x != IGNORE for x in row.labels)
    ):
        names = ", ".join(repr(tokenizer.convert_ids_to_tokens(i)) for i in sorted(end_ids))
        out.append(
            Finding(
                "error",
                "eos_not_trained",
                "no end-of-turn/eos token is trained in this row "
                f"(looked for {names}): the model would never learn to stop",
                origin=where,
            )
        )
    bos = tokenizer.bos_token_id
    ids = row.input_ids
    if bos is not None and any(ids[i] == bos and ids[i + 1] == bos for i in range(len(ids) - 1)):
        i = next(i for i in range(len(ids) - 1) if ids[i] == bos and ids[i + 1] == bos)
        out.append(
            Finding(
                "error",
                "double_bos",
                f"BOS token {tokenizer.bos_token!r} appears twice in a row at "
                f"token {i}: the model would train on a sequence start it never sees at inference",
                origin=where,
            )
        )
    if not conv.is_text and conv.prompt_messages():
        prompt_messages = with_system(conv.prompt_messages(), system_prompt)
        full_messages = with_system(conv.messages, system_prompt)
        text_prompt = _text(tokenizer, prompt_messages, True)
        text_full = _text(tokenizer, full_messages, False)
        if not text_full.startswith(text_prompt):
            k = next((i for i, (a, b) in enumerate(zip(text_prompt, text_full)) if a != b), len(text_full))
            out.append(
                Finding(
                    "error",
                    "prompt_not_prefix",
                    "the inference rendering (generation prompt) is not "
                    f"a byte-exact prefix of the training rendering: they differ at character {k} "
                    f"(inference {text_prompt[k : k + 20]!r}, training {text_full[k : k + 20]!r})",
                    origin=where,
                    field="messages",
                )
            )
        else:
            prompt = render_prompt(conv.prompt_messages(), tokenizer, system_prompt=system_prompt)
            n = min(len(prompt), len(ids))
            if list(ids[:n]) != list(prompt[:n]):
                k = next(i for i in range(n) if ids[i] != prompt[i])
                out.append(
                    Finding(
                        "error",
                        "prompt_not_prefix",
                        "the inference prompt tokenizes differently "
                        f"from the training row at token {k} (inference {_piece(tokenizer, prompt[k : k + 3])}"
                        f", training {_piece(tokenizer, ids[k : k + 3])}): the model would learn token "
                        "boundaries it never sees at inference",
                        origin=where,
                        field="messages",
                    )
                )
    return out


def refuse_contract_errors(
    convs: Iterable[Conversation], rows: Iterable[Rendered], tokenizer, system_prompt: str | None
) -> None:
    """Raise the first contract error of the rows training is about to use, as a `DataError`."""
    by_origin = {c.origin: c for c in convs}
    end_ids = set(stop_token_ids(tokenizer))
    for row in rows:
        conv = by_origin.get(row.origin)
        if conv is None:
            continue
        for f in row_findings(conv, row, tokenizer, system_prompt, end_ids):
            raise DataError(f.message, origin=f.origin, field=f.field)
