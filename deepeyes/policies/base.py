"""The policy interface the agent loop drives, and the per-request sampling settings it takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from deepeyes.chat import Message


@dataclass(frozen=True)
class SamplingParams:
    """How one turn is sampled, named as verl's and vLLM's ``sampling_params`` name them.

    ``temperature`` 0 is greedy (argmax); ``top_p`` 1 keeps every token; ``max_new_tokens``
    is the token limit of one turn (vLLM's ``max_tokens``, OpenAI's ``max_tokens``). Frozen
    and hashable: it travels with a request (:class:`deepeyes.agent.AgentRequest`) and
    concurrent turns with equal settings are batched together.

    Raises:
        ValueError: ``max_new_tokens`` < 1, ``temperature`` < 0 or ``top_p`` outside [0, 1].
    """

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError(f"top_p must be within [0, 1], got {self.top_p}")


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

    ``sampling`` None means the policy's own defaults (the settings it was built with);
    otherwise the turn is sampled with exactly those settings, as verl's server
    ``generate(..., sampling_params)`` is. Implementations must be safe to call from several
    threads: the agent loop runs trajectories concurrently and overlaps one trajectory's
    tool call with another's generation, each with its own settings.
    """

    def generate(self, messages: list[Message], sampling: SamplingParams | None = None) -> Generation: ...
