"""The held-out figures `tunesmith train` prints before and after training: loss and, for chat data, task
accuracy (exact match) on up to `eval.max_samples` rows (label tasks: answers held to the label set)."""

from __future__ import annotations

from collections.abc import Sequence

from tunesmith.config import Config
from tunesmith.data.types import Conversation
from tunesmith.evaluate.answers import AnswerCache
from tunesmith.evaluate.metrics import exact_match
from tunesmith.evaluate.task import score, task_for
from tunesmith.model.score import token_stats
from tunesmith.render import Rendered


def heldout_metrics(
    model,
    tokenizer,
    config: Config,
    convs: Sequence[Conversation],
    rows: Sequence[Rendered],
    *,
    train: Sequence[Conversation] = (),
    cache: AnswerCache | None = None,
    identity: str | None = None,
    known: dict | None = None,
) -> dict:
    """{"eval_loss": ..., "accuracy": ..., "samples": ...} (and for json, codes and code tasks their primary
    metric, named by "task_metric") of `model` on the held-out `rows` (rendered) / `convs`.

    The task (and a label task's label set) is inferred as the comparison report infers it, from the held-out
    answers and the `train` answers; with `cache` and `identity` the answers are the ones it keeps. `known`: the
    model's token stats on `rows`, already computed (the last periodic evaluation, the weights unchanged since)."""
    cache, bs = cache or AnswerCache(None), config.eval.batch_size

    def compute() -> dict:
        return known or token_stats(model, rows, tokenizer.pad_token_id, bs, "held-out loss")

    stats = cache.stats(identity, model, rows, bs, compute)
    result: dict = {"eval_loss": stats["eval_loss"]}
    chats = [c for c in convs if not c.is_text and c.reference() is not None][: config.eval.max_samples]
    if chats:
        references = [c.reference() or "" for c in chats]
        extra = [c.reference() or "" for c in train if not c.is_text]
        extras = [c.extra for c in chats]
        task = task_for(config.eval, references, extra_references=extra, rows_extra=extras)
        answers = cache.answers(
            identity,
            model,
            tokenizer,
            [list(c.prompt_messages()) for c in chats],
            system_prompt=config.data.system_prompt,
            max_new_tokens=config.eval.max_new_tokens,
            batch_size=config.eval.batch_size,
            labels=None if config.eval.free_text else task.label_set(),
            progress="answering the held-out rows",
        )
        result["accuracy"] = exact_match(answers, references, config.eval.answer_regex)
        result["samples"] = len(chats)
        if task.kind in ("json", "codes", "code"):  # exact match says little there: the task's own metric too
            result[task.primary] = score(task, answers, references, [], extras=extras)["metrics"][task.primary]["value"]
            result["task_metric"] = task.primary
    return result
