"""The one conversation type every data format is normalised to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tunesmith.errors import Origin

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One turn. `weight` says whether its tokens are trained (1) or only context (0).

    `weight=None` means "the default for the role": assistant turns are trained, others are not.
    """

    role: Role
    content: str
    weight: int | None = None

    @property
    def trained(self) -> bool:
        return self.weight == 1 if self.weight is not None else self.role == "assistant"


@dataclass(frozen=True)
class Conversation:
    """A training example.

    Chat-like formats (messages, prompt/completion, alpaca) become a list of messages; raw text for
    continued pre-training sets `text` instead and has no messages (every token is trained).
    """

    origin: Origin
    messages: tuple[Message, ...] = ()
    text: str | None = None
    source_format: str = "messages"
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def is_text(self) -> bool:
        return self.text is not None

    def prompt_messages(self) -> tuple[Message, ...]:
        """Messages before the last assistant turn: what a model sees when asked to answer."""
        last = max((i for i, m in enumerate(self.messages) if m.role == "assistant"), default=len(self.messages))
        return self.messages[:last]

    def reference(self) -> str | None:
        """The content of the last assistant turn: the expected answer for evaluation."""
        for m in reversed(self.messages):
            if m.role == "assistant":
                return m.content
        return None
