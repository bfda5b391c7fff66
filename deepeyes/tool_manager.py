"""The tool manager: routes parsed actions to the code sandbox and the search tools.

It owns the per-trajectory tool session (the input images preloaded in a kernel, the
call budget, the calls already made) and turns every outcome — including invalid,
disabled, repeated and failing calls — into a wire-format observation, so the agent
loop never sees an exception from a tool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import redis
from PIL import Image

from deepeyes import wire
from deepeyes.config import load_config
from deepeyes.images import load_image, to_png_bytes
from deepeyes.sandbox.config import SandboxConfig
from deepeyes.search.config import SearchConfig
from deepeyes.trajectory import Action, Observation

logger = logging.getLogger(__name__)

ToolName = Literal["code", "search", "image_search"]
ALL_TOOLS: tuple[str, ...] = ("code", "search", "image_search")


@dataclass
class ToolsConfig:
    """Which tools the model may call and how much."""

    enabled: list[ToolName] = field(default_factory=lambda: list(ALL_TOOLS))
    max_calls_per_session: int = 12  # calls beyond this get a budget error observation
    max_images_per_round: int = 10  # images returned to the model by one call


@dataclass
class ToolManagerConfig:
    """The whole ``tool_manager_config.yaml``."""

    tools: ToolsConfig = field(default_factory=ToolsConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


@dataclass
class ToolResult:
    """What one call gives back: the observation record and the images that go with it."""

    observation: Observation
    images: list[Image.Image] = field(default_factory=list)


@dataclass
class ToolSession:
    """One trajectory's tool state."""

    session_id: str
    images: list[Image.Image]
    sample_index: str | None = None
    disabled: set[str] = field(default_factory=set)
    calls: int = 0
    seen_calls: set[tuple[str, str]] = field(default_factory=set)
    sandbox_open: bool = False


class ToolManager:
    """Executes actions for sessions; starts the local services it needs when none are configured.

    Construct it with the DESIGN §6 arguments or :meth:`from_config`, then use it as a
    context manager (or call :meth:`start` / :meth:`close`) so that a locally started
    ``redis-server`` and sandbox instances are stopped afterwards.
    """

    def __init__(
        self,
        code_sandbox_ports: list[int] | None = None,
        redis_host: str = "127.0.0.1",
        redis_port: int | None = None,
        search_cache_path: str | None = None,
        text_search_api_type: str = "local",
        config: ToolManagerConfig | None = None,
    ):
        self.config = config or ToolManagerConfig()
        sandbox = self.config.sandbox
        if code_sandbox_ports is not None:
            sandbox.ports = list(code_sandbox_ports)
        if redis_port is not None:
            sandbox.redis_host, sandbox.redis_port = redis_host, redis_port
        if search_cache_path is not None:
            self.config.search.image.cache_json = search_cache_path
        if text_search_api_type != "local":
            self.config.search.text.backend = text_search_api_type  # type: ignore[assignment]
        self._disabled: set[str] = {tool for tool in ALL_TOOLS if tool not in self.config.tools.enabled}
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()
        self._started = False
        self._sandbox_client = None
        self._closer: ThreadPoolExecutor | None = None
        self._text_searcher = None
        self._image_searcher = None
        self._redis: redis.Redis | None = None

    @classmethod
    def from_config(cls, path: str | Path) -> ToolManager:
        return cls(config=load_config(path, ToolManagerConfig))

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> ToolManager:
        """Connect to (or start) Redis and the sandbox, and open the search backends."""
        with self._lock:
            if self._started:
                return self
            try:
                self._start_services()
            except BaseException:
                self._stack.close()  # never leave a half-started Redis or sandbox behind
                raise
            self._started = True
            logger.info("tool manager ready (disabled tools: %s)", sorted(self._disabled) or "none")
        return self

    def _start_services(self) -> None:
        """Redis (started when none is configured), the sandbox, the search backends."""
        from deepeyes.utils.processes import RedisServer

        sandbox = self.config.sandbox
        if sandbox.redis_port is None:
            # A copy, so the configuration still says "start one" after this Redis is gone.
            server = self._stack.enter_context(RedisServer())
            sandbox = dataclasses.replace(sandbox, redis_host=server.host, redis_port=server.port)
        self._redis = redis.Redis(host=sandbox.redis_host, port=sandbox.redis_port)
        self._stack.callback(self._redis.close)
        if "code" not in self._disabled:
            from deepeyes.sandbox.client import SandboxClient
            from deepeyes.sandbox.launch import SandboxCluster

            if sandbox.ports:
                self._sandbox_client = SandboxClient(sandbox.ports, host=sandbox.host)
            else:
                cluster = self._stack.enter_context(SandboxCluster(sandbox, num_instances=1))
                self._sandbox_client = cluster.client()
        if "search" not in self._disabled:
            from deepeyes.search.text import TextSearcher

            self._text_searcher = TextSearcher.from_config(self.config.search, redis_client=self._redis)
        if "image_search" not in self._disabled:
            from deepeyes.search.image import ImageSearcher

            self._image_searcher = ImageSearcher.from_config(self.config.search)

    def close(self) -> None:
        with self._lock:
            self._stack.close()
            self._started = False

    def __enter__(self) -> ToolManager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- switches --------------------------------------------------------------------
    def disable_tools(self, tools: list[str]) -> None:
        """Refuse these tools from now on (calls get a 'disabled' observation the model can read)."""
        unknown = set(tools) - set(ALL_TOOLS)
        if unknown:
            raise ValueError(f"unknown tool(s) {sorted(unknown)}; known: {list(ALL_TOOLS)}")
        self._disabled |= set(tools)

    def enable_tools(self, tools: list[str]) -> None:
        self._disabled -= set(tools)

    @property
    def sandbox_client(self):
        """The sandbox client in use (None until started or when code is disabled)."""
        return self._sandbox_client

    @property
    def disabled_tools(self) -> set[str]:
        return set(self._disabled)

    # -- sessions --------------------------------------------------------------------
    def open_session(self, images: list[Image.Image | str | Path | bytes], sample_index: str | None = None) -> ToolSession:
        """A new session; the kernel (with ``image_1 … image_N``) is only started on the first code call."""
        return ToolSession(
            session_id=uuid.uuid4().hex,
            images=[load_image(image) for image in images],
            sample_index=sample_index,
            disabled=set(self._disabled),
        )

    def close_session(self, session: ToolSession) -> None:
        """Release the session's kernel in the background: the trajectory is already finished."""
        if session.sandbox_open and self._sandbox_client is not None and self._closer is not None:
            self._closer.submit(self._close_sandbox_session, session.session_id)
            session.sandbox_open = False

    def _close_sandbox_session(self, session_id: str) -> None:
        try:
            self._sandbox_client.close_session(session_id)
        except Exception:  # the instance is gone or busy: its TTL eviction frees the kernel
            logger.warning("closing sandbox session %s failed", session_id, exc_info=True)

    # -- execution -----------------------------------------------------------------------
    def execute(self, session: ToolSession, action: Action) -> ToolResult:
        """Run one action and return its observation; never raises for tool-side failures."""
        started = time.perf_counter()
        result = self._dispatch(session, action)
        result.observation.latency_s = time.perf_counter() - started
        return result

    def _dispatch(self, session: ToolSession, action: Action) -> ToolResult:
        if action.kind == "invalid":
            return _error("invalid call", action.reason or "the call could not be parsed", "error")
        if action.kind not in ALL_TOOLS:
            return _error("invalid call", f"'{action.kind}' is not a tool call", "error")
        if action.kind in session.disabled:
            return _error("tool disabled", f"the {action.kind} tool is not available for this question; answer without it", "disabled")
        if session.calls >= self.config.tools.max_calls_per_session:
            limit = self.config.tools.max_calls_per_session
            return _error("budget", f"the limit of {limit} tool calls is reached; give your final answer now", "budget_exceeded")
        if not self._started:
            self.start()
        session.calls += 1
        signature = (action.kind, action.content.strip())
        repeated = signature in session.seen_calls
        session.seen_calls.add(signature)
        try:
            if action.kind == "code":
                result = self._run_code(session, action.content)
            elif action.kind == "search":
                result = self._run_text_search(action.content)
            else:
                result = self._run_image_search(session)
        except Exception as exc:  # a tool's infrastructure failed: tell the model, keep the loop alive
            logger.exception("%s call failed", action.kind)
            result = _error(f"{action.kind} failed", f"{type(exc).__name__}: {exc}", "error")
        result.observation.repeated = repeated
        return result

    def _run_code(self, session: ToolSession, code: str) -> ToolResult:
        client = self._sandbox_client
        if client is None:
            return _error("tool disabled", "code execution is not available", "disabled")
        if not session.sandbox_open:
            client.open_session(session.session_id, [to_png_bytes(image) for image in session.images])
            session.sandbox_open = True
        run = client.execute(session.session_id, code, timeout=self.config.sandbox.default_timeout_s)
        limit = self.config.tools.max_images_per_round
        images = [load_image(png) for png in run.images[:limit]]
        stderr = run.stderr
        if len(run.images) > limit:
            stderr += f"\n[{len(run.images) - limit} more image(s) not shown: at most {limit} per call]"
        if run.notes:
            stderr += "".join(f"\n[sandbox] {note}" for note in run.notes)
        stdout = run.stdout
        if run.result and run.result not in stdout:
            stdout = f"{stdout}{run.result}" if not stdout or stdout.endswith("\n") else f"{stdout}\n{run.result}"
        status = run.status if run.status in ("success", "error", "timeout", "denied") else "error"
        text = wire.code_observation(stdout, stderr.lstrip("\n"), len(images))
        return ToolResult(Observation(text=text, image_count=len(images), status=status, latency_s=0.0), images)

    def _run_text_search(self, query: str) -> ToolResult:
        if self._text_searcher is None:
            return _error("tool disabled", "text search is not available", "disabled")
        outcome = self._text_searcher.search(query)
        status = "error" if outcome.error else "success"
        return ToolResult(Observation(text=outcome.render(), image_count=0, status=status, latency_s=0.0))

    def _run_image_search(self, session: ToolSession) -> ToolResult:
        if self._image_searcher is None:
            return _error("tool disabled", "image search is not available", "disabled")
        if not session.images:
            return _error("image_search", "this question has no image to search with", "error")
        outcome = self._image_searcher.search(session.images[0], sample_index=session.sample_index)
        limit = self.config.tools.max_images_per_round
        thumbnails = list(outcome.thumbnails[:limit])
        titles = list(outcome.titles[: len(thumbnails)]) if outcome.thumbnails else list(outcome.titles)
        status = "error" if outcome.error else "success"
        text = outcome.render() if len(titles) == len(outcome.titles) else wire.tool_response(wire.image_search_body(titles))
        return ToolResult(Observation(text=text, image_count=len(thumbnails), status=status, latency_s=0.0), thumbnails)


def _error(kind: str, message: str, status: str) -> ToolResult:
    return ToolResult(Observation(text=wire.error_response(kind, message), image_count=0, status=status, latency_s=0.0))  # type: ignore[arg-type]
