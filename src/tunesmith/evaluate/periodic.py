"""During training: a small generation eval every `eval.generate_every` steps with the task's metric,
best-weights tracking (`eval.select_best`) and early stopping (`eval.patience` evaluations without gain)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from tunesmith.data.types import Conversation
from tunesmith.evaluate.task import infer_task, score, task_for
from tunesmith.generation import generate_answers

log = logging.getLogger("tunesmith")


class GenerationProbe:
    """Scores the model's generated answers on the first `samples` held-out conversations."""

    def __init__(
        self,
        model,
        tokenizer,
        eval_convs: Sequence[Conversation],
        *,
        samples: int,
        system_prompt: str | None,
        answer_regex: str | None,
        max_new_tokens: int,
        batch_size: int,
        select_best: bool = False,
        patience: int | None = None,
        free_text: bool = False,
        spec=None,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.convs = [c for c in eval_convs if not c.is_text and c.reference() is not None][:samples]
        self.references = [c.reference() or "" for c in self.convs]
        self.extras = [c.extra for c in self.convs]
        self.task = (
            task_for(spec, self.references, rows_extra=self.extras)
            if spec is not None
            else infer_task(self.references, answer_regex=answer_regex)
        )
        self.metric = self.task.primary
        self.labels = None if free_text else self.task.label_set()  # label tasks: answers held to the labels
        self.system_prompt, self.max_new_tokens, self.batch_size = system_prompt, max_new_tokens, batch_size
        self.select_best, self.patience = select_best, patience
        self.best: tuple[int, float] | None = None  # (step, value)
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.since_best = 0

    @property
    def key(self) -> str:
        """The metrics.jsonl field this probe writes."""
        return f"eval_{self.metric}"

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.since_best >= self.patience

    def __call__(self, step: int) -> float:
        """Generate, score, and remember the best step (and its trainable weights when selecting the best)."""
        was_training = self.model.training
        answers = generate_answers(
            self.model,
            self.tokenizer,
            [list(c.prompt_messages()) for c in self.convs],
            system_prompt=self.system_prompt,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            labels=self.labels,
        )
        self.model.train(was_training)
        value = score(self.task, answers, self.references, [], extras=self.extras)["metrics"][self.metric]["value"]
        if self.best is None or value > self.best[1]:
            self.best, self.since_best = (step, value), 0
            if self.select_best:
                self.best_weights = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}
        else:
            self.since_best += 1
        log.debug("step %d: %s %.4f (best %.4f at step %d)", step, self.key, value, self.best[1], self.best[0])
        return value

    def restore_best(self) -> None:
        """Put the best step's trainable weights back into the model (when they were kept)."""
        if self.best_weights is None or self.best is None:
            return
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in self.best_weights.items():
                params[name].copy_(value)
        log.info("kept the weights of step %d (%s %.4f)", self.best[0], self.key, self.best[1])

    def summary(self) -> dict | None:
        if self.best is None:
            return None
        return {
            "metric": self.key,
            "step": self.best[0],
            "value": self.best[1],
            "selected": self.select_best,
            "early_stopped": self.should_stop,
        }
