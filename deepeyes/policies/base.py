"""The policy interface the agent loop drives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from deepeyes.chat import Message


@dataclass
class Generation:
    """One assistant turn: its text (stop string kept, end-of-turn marker removed) and token counts."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class Policy(Protocol):
    """Anything that writes the next assistant turn of a conversation.

    Implementations must be safe to call from several threads: the agent loop runs
    trajectories concurrently and overlaps one trajectory's tool call with another's
    generation.
    """

    def generate(self, messages: list[Message]) -> Generation: ...
