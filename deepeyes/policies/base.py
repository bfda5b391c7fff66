"""The policy interface the agent loop drives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from deepeyes.chat import Message


@dataclass
class Generation:
    """One assistant turn: its text (stop string kept, end-of-turn marker removed) and token counts."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: The sampled token ids, exactly as generated (end-of-turn marker included when the model
    #: wrote it, padding excluded); ``None`` for policies that only return text. RL trains on
    #: these ids rather than on a re-tokenisation of ``text``, which can differ.
    token_ids: list[int] | None = None
    #: The prompt ids the turn was conditioned on (images expanded), padding excluded.
    prompt_token_ids: list[int] | None = None
    #: ``stop``: the model ended the turn (end-of-turn token or a wire stop string);
    #: ``length``: cut at ``max_new_tokens``. ``None`` when the policy does not say.
    finish_reason: Literal["stop", "length"] | None = None


@runtime_checkable
class Policy(Protocol):
    """Anything that writes the next assistant turn of a conversation.

    Implementations must be safe to call from several threads: the agent loop runs
    trajectories concurrently and overlaps one trajectory's tool call with another's
    generation.
    """

    def generate(self, messages: list[Message]) -> Generation: ...
