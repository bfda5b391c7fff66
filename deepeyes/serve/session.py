"""One request's run of the shared agent loop, with its token and CPU accounting.

Everything that differs between requests — disabled tools, ``force_no_tool``, sampling, the
turn limit and the cancel event — is on the :class:`~deepeyes.agent.AgentRequest`; the model,
the tool manager and the loop are the service's, shared and never changed per request. When
the client goes away the event loop calls :meth:`RequestRun.abort`: the loop stops before
its next generation or tool call (a call in flight finishes first, in the loop's own thread,
so a close can never overtake it) and closes the request's sandbox session in its ``finally``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from deepeyes.agent import AgentLoop, AgentRequest, Rollout, TurnCallback
from deepeyes.chat import Message
from deepeyes.policies.base import Generation, Policy, SamplingParams


class CountingPolicy:
    """The shared policy as one request sees it: counts the request's tokens and generation CPU time."""

    def __init__(self, policy: Policy, tokenizer: Any = None, max_pixels: int | None = None) -> None:
        self.policy = policy
        #: What the agent loop measures prompts and observations with (the model's; None: UTF-8 bytes).
        self.tokenizer = tokenizer
        self.max_pixels = max_pixels
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cpu_s = 0.0  # CPU time of this thread inside generation (a batch leader runs the whole batch)

    def generate(self, messages: list[Message], sampling: SamplingParams | None = None) -> Generation:
        started = time.thread_time()
        try:
            generation = self.policy.generate(messages, sampling)
        finally:
            self.cpu_s += time.thread_time() - started
        self.prompt_tokens += generation.prompt_tokens
        self.completion_tokens += generation.completion_tokens
        return generation


class RequestRun:
    """One agent-mode request; :meth:`run` blocks (call it in a worker thread)."""

    def __init__(self, loop: AgentLoop, policy: Policy, request: AgentRequest, tokenizer: Any = None, max_pixels: int | None = None) -> None:
        if request.cancel is None:
            request.cancel = threading.Event()
        self.loop = loop
        self.request = request
        self.policy = CountingPolicy(policy, tokenizer, max_pixels)
        #: CPU seconds the service spent on this request in the loop's thread outside generation
        #: (the tool clients' share included; the event loop's share is added by the app).
        self.service_cpu_s = 0.0

    def run(self, on_turn: TurnCallback | None = None) -> Rollout:
        """The request's trajectory; raises :class:`~deepeyes.agent.RunCancelled` after :meth:`abort`."""
        started = time.thread_time()
        try:
            return self.loop.rollout(self.policy, self.request, on_turn=on_turn)
        finally:
            self.service_cpu_s += time.thread_time() - started - self.policy.cpu_s

    def abort(self) -> None:
        """Cancel the request (called from the event loop): the loop stops at its next step and frees its session."""
        assert self.request.cancel is not None  # set in __init__
        self.request.cancel.set()
