"""Replays given assistant turns: for tests, benchmarks and validating SFT trajectories."""

from __future__ import annotations

import time
from collections.abc import Callable

from deepeyes.chat import Message
from deepeyes.policies.base import Generation, SamplingParams
from deepeyes.wire import IMAGE_PLACEHOLDER


class ScriptedPolicy:
    """Returns the n-th scripted turn when the conversation already holds n assistant turns.

    Stateless between calls (the position comes from the conversation itself), so one
    instance serves many concurrent trajectories. ``script`` is either one list of turns
    for every conversation, or a mapping from the question (the first user message's
    text without its image placeholders) to that question's turns. ``latency_s`` simulates generation time.
    The sampling settings of every call are kept in :attr:`samplings`, in call order, so a test
    can check what reached the policy.
    """

    def __init__(
        self,
        script: list[str] | dict[str, list[str]] | Callable[[list[Message]], str],
        latency_s: float = 0.0,
        exhausted_text: str = "",
    ):
        self.script = script
        self.latency_s = latency_s
        self.exhausted_text = exhausted_text
        #: The ``sampling`` argument of each call (None: the caller named none); appends are thread-safe.
        self.samplings: list[SamplingParams | None] = []

    def _turns_for(self, messages: list[Message]) -> list[str]:
        if isinstance(self.script, list):
            return self.script
        question = next(m.content for m in messages if m.role == "user").replace(IMAGE_PLACEHOLDER, "").strip()
        if question not in self.script:
            raise KeyError(f"no scripted turns for question {question[:80]!r}")
        return self.script[question]

    def generate(self, messages: list[Message], sampling: SamplingParams | None = None) -> Generation:
        self.samplings.append(sampling)
        if self.latency_s:
            time.sleep(self.latency_s)
        if callable(self.script):
            text = self.script(messages)
        else:
            turns = self._turns_for(messages)
            position = sum(1 for m in messages if m.role == "assistant")
            text = turns[position] if position < len(turns) else self.exhausted_text
        return Generation(text=text, prompt_tokens=sum(len(m.content.split()) for m in messages), completion_tokens=len(text.split()))
