"""The held-out figures `tunesmith train` prints before and after training: loss and, for chat data, task
accuracy (exact match) on up to `eval.max_samples` rows (label tasks: answers held to the label set)."""

from __future__ import annotations

from collections.abc import Sequence

from tunesmith.config import Config
from tunesmith.data.types import Conversation
from tunesmith.evaluate.metrics import exact_match
from tunesmith.evaluate.task import infer_task
from tunesmith.generation import generate_answers
from tunesmith.training.loss import mean_loss


def heldout_metrics(model, tokenizer, config: Config, convs: Sequence[Conversation], batches: list[dict]) -> dict:
    """{"eval_loss": ..., "accuracy": ..., "samples": ...} of `model` on the held-out `batches` / `convs`."""
    result: dict = {"eval_loss": mean_loss(model, batches)}
    chats = [c for c in convs if not c.is_text][: config.eval.max_samples]
    if chats:
        references = [c.reference() or "" for c in chats]
        task = infer_task(references, answer_regex=config.eval.answer_regex)
        answers = generate_answers(
            model,
            tokenizer,
            [list(c.prompt_messages()) for c in chats],
            system_prompt=config.data.system_prompt,
            max_new_tokens=config.eval.max_new_tokens,
            batch_size=config.eval.batch_size,
            labels=None if config.eval.free_text else task.label_set(),
        )
        result["accuracy"] = exact_match(answers, references, config.eval.answer_regex)
        result["samples"] = len(chats)
    return result
