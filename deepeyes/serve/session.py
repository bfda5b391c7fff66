"""One request's run of the agent loop: its own tool session, switches, and cancellation.

The service shares one :class:`~deepeyes.tool_manager.ToolManager` and one model across
requests. :class:`RequestTools` is that tool manager as one request sees it — with the
request's disabled tools, its one sandbox session, and an :meth:`RequestTools.abort`
that the event loop calls when the client goes away: the session is closed as soon as the
tool call in flight (if any) returns, and the loop stops at its next generation or tool call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest, Rollout, TurnCallback
from deepeyes.chat import Message
from deepeyes.policies.base import Generation, Policy
from deepeyes.tool_manager import (
    ObservationBudget,
    ToolManager,
    ToolResult,
    ToolSession,
)
from deepeyes.trajectory import Action

logger = logging.getLogger(__name__)


class RequestCancelled(RuntimeError):
    """The client disconnected; the request's agent loop stops at its next step."""


class RequestPolicy:
    """The shared policy for one request: counts its tokens and stops when the request is cancelled."""

    def __init__(self, policy: Policy, cancelled: threading.Event, tokenizer: Any = None, max_pixels: int | None = None) -> None:
        self.policy = policy
        self.cancelled = cancelled
        #: What the agent loop measures prompts and observations with (the model's; None: UTF-8 bytes).
        self.tokenizer = tokenizer
        self.max_pixels = max_pixels
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cpu_s = 0.0  # CPU time of this thread inside generation (a batch leader runs the whole batch)

    def generate(self, messages: list[Message]) -> Generation:
        if self.cancelled.is_set():
            raise RequestCancelled("client disconnected")
        started = time.thread_time()
        try:
            generation = self.policy.generate(messages)
        finally:
            self.cpu_s += time.thread_time() - started
        self.prompt_tokens += generation.prompt_tokens
        self.completion_tokens += generation.completion_tokens
        return generation


class RequestTools:
    """The shared tool manager as one request sees it (the interface :class:`AgentLoop` drives).

    ``run_later`` runs a callable off the event loop (a disconnect closes the request's
    session there, since closing waits for the sandbox).
    """

    def __init__(
        self,
        manager: ToolManager,
        disabled: set[str],
        cancelled: threading.Event,
        run_later: Callable[[Callable[[], None]], object],
    ) -> None:
        self.manager = manager
        self.disabled = disabled
        self.cancelled = cancelled
        self.run_later = run_later
        self.session: ToolSession | None = None
        self.cpu_s = 0.0  # CPU time of this thread inside tool calls
        self._lock = threading.Lock()

    def open_session(self, images: list[Image.Image | str | Path | bytes], sample_index: str | None = None) -> ToolSession:
        session = self.manager.open_session(images, sample_index)
        session.disabled |= self.disabled
        with self._lock:
            self.session = session
        return session

    def execute(self, session: ToolSession, action: Action, budget: ObservationBudget | None = None) -> ToolResult:
        # The call holds the lock that closing takes, and checks for cancellation under it: a
        # disconnect's close then either waits for the call in flight or stops the next one.
        # Unordered, a close could reach the sandbox before the call's own request did, and the
        # sandbox would open the session again for that call, to live until its idle TTL.
        with self._lock:
            if self.cancelled.is_set():
                raise RequestCancelled("client disconnected")
            started = time.thread_time()
            try:
                return self.manager.execute(session, action, budget)
            finally:
                self.cpu_s += time.thread_time() - started

    def close_session(self, session: ToolSession) -> None:
        with self._lock:
            self.manager.close_session(session)  # idempotent: each tool closes once

    def abort(self) -> None:
        """Cancel the request and release its sandbox session once no call is in flight (called from the event loop)."""
        self.cancelled.set()
        session = self.session
        if session is not None:
            self.run_later(lambda: self.close_session(session))


class RequestRun:
    """Everything one agent-mode request needs; :meth:`run` blocks (call it in a worker thread)."""

    def __init__(
        self,
        policy: Policy,
        manager: ToolManager | None,
        agent_config: AgentConfig,
        disabled: set[str],
        run_later: Callable[[Callable[[], None]], object],
        tokenizer: Any = None,
        max_pixels: int | None = None,
    ) -> None:
        self.cancelled = threading.Event()
        self.policy = RequestPolicy(policy, self.cancelled, tokenizer, max_pixels)
        self.tools = RequestTools(manager, disabled, self.cancelled, run_later) if manager is not None and agent_config.use_tools else None
        self.loop = AgentLoop(self.tools, agent_config)  # type: ignore[arg-type]  # RequestTools has ToolManager's session interface
        #: CPU seconds the service itself spent on this request outside generation and tool calls
        #: (the loop's thread here; the event loop's share is added by the app).
        self.service_cpu_s = 0.0

    def run(self, question: str, images: list[Image.Image], on_turn: TurnCallback | None = None, **request: Any) -> Rollout:
        started = time.thread_time()
        try:
            return self.loop.rollout(self.policy, AgentRequest(question=question, images=images, **request), on_turn=on_turn)
        finally:
            tools_cpu = self.tools.cpu_s if self.tools is not None else 0.0
            self.service_cpu_s += time.thread_time() - started - self.policy.cpu_s - tools_cpu

    def abort(self) -> None:
        self.cancelled.set()
        if self.tools is not None:
            self.tools.abort()
