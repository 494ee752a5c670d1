"""The systems compared on a test set: the base model zero-shot and few-shot, the tuned run, other runs.

A system is a model plus the way a test conversation is put to it (system prompt, few-shot turns). The base
model of a LoRA run is the same in-memory model with its adapter disabled, so nothing is loaded twice.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunesmith.data.types import Conversation, Message
from tunesmith.evaluate.task import Task


@dataclass
class System:
    """One way of answering: `key` names it in eval.json, `title` in tables and the report."""

    key: str
    title: str
    description: str
    model: Any
    tokenizer: Any
    system_prompt: str | None = None
    shots: list[Message] = field(default_factory=list)
    base_of_adapter: bool = False  # run `model` with its PEFT adapter disabled
    identity: str | None = None  # who answers (`evaluate.answers`): kept answers are reused; None: never kept

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """The model as this system uses it (adapter disabled for the base of a LoRA run)."""
        if self.base_of_adapter:
            with self.model.disable_adapter():
                yield
        else:
            yield

    def prompt(self, conv: Conversation) -> list[Message]:
        """The messages the model answers: its own system turn, then the few-shot turns, then the test turns."""
        return self._with_shots(list(conv.prompt_messages()))

    def conversation(self, conv: Conversation) -> Conversation:
        """The whole test conversation as this system sees it (only the reference answer is trained)."""
        return Conversation(conv.origin, tuple(self._with_shots(list(conv.messages))), source_format="messages")

    def _with_shots(self, messages: list[Message]) -> list[Message]:
        head = messages[:1] if messages and messages[0].role == "system" else []
        return head + self.shots + messages[len(head) :]


def pick_shots(pool: Sequence[Conversation], k: int, seed: int, task: Task | None = None) -> list[Message]:
    """K seeded examples from the training data as prior (untrained) user/assistant turns.

    For a label task the draw goes round the labels first, so a handful of shots shows as many labels as it can.
    """
    candidates = [c for c in pool if not c.is_text and c.reference() is not None and c.prompt_messages()]
    rng = random.Random(seed)
    order = list(range(len(candidates)))
    rng.shuffle(order)
    if task is not None and task.kind == "label":
        buckets: dict[str, list[int]] = {}
        for i in order:
            buckets.setdefault(task.gold(candidates[i].reference() or ""), []).append(i)
        queues = [buckets[label] for label in sorted(buckets)]
        rng.shuffle(queues)
        order = []
        while any(queues):
            for q in queues:
                if q:
                    order.append(q.pop(0))
    shots: list[Message] = []
    for i in order[:k]:
        turns = [t for t in candidates[i].prompt_messages() if t.role != "system"]
        shots += [Message(t.role, t.content, weight=0) for t in turns]
        shots.append(Message("assistant", candidates[i].reference() or "", weight=0))
    return shots


def is_adapter_model(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")
