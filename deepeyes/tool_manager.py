"""The tool manager: routes parsed actions to the tool runtimes (:mod:`deepeyes.tools`).

It owns the per-trajectory tool session (the input images, the call budget, the calls
already made), runs each tool's open / execute / close for it, brings every returned image
within Qwen2.5-VL's limits, and turns every outcome — including invalid, disabled,
repeated and failing calls — into a wire-format observation, so the agent loop never sees
an exception from a tool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
from PIL import Image

from deepeyes.config import load_config
from deepeyes.images import ImageLoadError, fit_for_qwen, load_image
from deepeyes.sandbox.config import SandboxConfig
from deepeyes.search.config import SearchConfig, text_search_for_api_type
from deepeyes.search.published_cache import image_search_for_cache_path
from deepeyes.tool_specs import CODE, IMAGE_SEARCH, TOOL_NAMES, resolve
from deepeyes.tools.base import (
    BaseTool,
    ToolContext,
    ToolOutput,
    ToolResult,
    ToolSession,
    error_output,
)
from deepeyes.tools.budget import ObservationBudget, fit_observation, keep_all
from deepeyes.tools.registry import REGISTRY
from deepeyes.trajectory import Action, Observation
from deepeyes.videos import VideoClip
from deepeyes.wire import ERROR_BUDGET, ERROR_DISABLED, ERROR_INVALID

logger = logging.getLogger(__name__)

__all__ = ["ObservationBudget", "ToolManager", "ToolManagerConfig", "ToolResult", "ToolSession", "ToolsConfig"]


@dataclass
class ToolsConfig:
    """Which tools the model may call and how much; tools are named as in :mod:`deepeyes.tool_specs`
    or by an alias (``code_execution``, ``text_search`` as in the seed)."""

    enabled: list[str] = field(default_factory=lambda: list(TOOL_NAMES))
    max_calls_per_session: int = 12  # calls beyond this get a budget error observation
    max_images_per_round: int = 10  # images returned to the model by one call
    #: Area limit for images returned by a tool (Qwen2.5-VL's default ``max_pixels``, 16384 × 28 × 28).
    max_image_pixels: int = 16384 * 28 * 28
    #: The pixel limits the model's processor resizes input images to (its ``min_pixels`` /
    #: ``max_pixels``): boxes a tool is given (``image_zoom_in_tool``'s ``bbox_2d``) are read in
    #: that processed frame (:class:`deepeyes.images.ImageFrame`). None: in the file's own pixels.
    frame_min_pixels: int | None = None
    frame_max_pixels: int | None = None


@dataclass
class ToolManagerConfig:
    """The whole ``tool_manager_config.yaml``."""

    tools: ToolsConfig = field(default_factory=ToolsConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


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
        text_search_api_type: str | None = None,
        config: ToolManagerConfig | None = None,
    ):
        """Settings only: nothing is started or contacted until :meth:`start` (or the first call).

        Args:
            code_sandbox_ports: running sandbox instances on ``config.sandbox.host``; None: as configured.
            redis_host, redis_port: the Redis the sandboxes share; ``redis_port`` None: as configured.
            search_cache_path: the image-search cache: the folder the published
                ``DeepEyesV2_Search_Cache`` unpacks into (``fvqa_*`` JSON + zipped
                ``cached_images``), its hub id, or a cache JSON file; resolved (and its archives
                unpacked once) when the image-search tool starts; entries are looked up by
                sample index (without ``config``, the sample data's query-image list is not
                used with it). None: as configured.
            text_search_api_type: ``local``, ``http``, ``private`` or a provider preset
                (``baidu``, ``bing``, ``serper``, ``serpapi``; see
                :func:`deepeyes.search.config.text_search_for_api_type`). None: as configured.
            config: the settings to start from; it is never modified (the arguments above
                go into a copy, ``self.config``).

        Raises:
            ValueError: an unknown ``text_search_api_type`` or tool name in ``config.tools.enabled``.
        """
        base = config or ToolManagerConfig()
        sandbox = base.sandbox
        if code_sandbox_ports is not None:
            sandbox = dataclasses.replace(sandbox, ports=list(code_sandbox_ports))
        if redis_port is not None:
            sandbox = dataclasses.replace(sandbox, redis_host=redis_host, redis_port=redis_port)
        search = base.search
        if text_search_api_type is not None:
            search = dataclasses.replace(search, text=text_search_for_api_type(search.text, text_search_api_type))
        self.config = dataclasses.replace(base, tools=dataclasses.replace(base.tools), sandbox=sandbox, search=search)
        self._search_cache_path = search_cache_path
        self._configured = config is not None
        self._disabled: set[str] = set(TOOL_NAMES) - set(resolve(self.config.tools.enabled))
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()
        self._started = False
        self._tools: dict[str, BaseTool] = {}
        self._redis: redis.Redis | None = None

    @classmethod
    def from_config(cls, path: str | Path) -> ToolManager:
        return cls(config=load_config(path, ToolManagerConfig))

    def resolved_config(self) -> ToolManagerConfig:
        """``self.config`` with ``search_cache_path`` resolved, as the tools will run with it.

        Resolving fetches a hub id into the hub cache and unpacks the cache's archives once;
        no service is started. Nothing to resolve (no path given, or image search disabled):
        ``self.config`` itself.

        Raises:
            deepeyes.hub.HubResolutionError: the path is neither local nor a reachable hub data set.
            deepeyes.search.image_cache.ImageCacheError: a folder without exactly one cache JSON.
        """
        if self._search_cache_path is None or IMAGE_SEARCH.name in self._disabled:
            return self.config
        image = self.config.search.image
        if not self._configured:  # the default query list names the sample cache's entries, not this cache's
            image = dataclasses.replace(image, queries_jsonl=None)
        image = image_search_for_cache_path(image, self._search_cache_path)
        self.config = dataclasses.replace(self.config, search=dataclasses.replace(self.config.search, image=image))
        self._search_cache_path = None
        return self.config

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> ToolManager:
        """Connect to (or start) Redis and start every enabled tool's services."""
        with self._lock:
            if self._started:
                return self
            try:
                self._start_services()
            except BaseException:
                self._stack.close()  # never leave a half-started Redis or sandbox behind
                self._tools.clear()
                raise
            self._started = True
            logger.info("tool manager ready (disabled tools: %s)", sorted(self._disabled) or "none")
        return self

    def _start_services(self) -> None:
        """The search cache path (resolved now, not at construction), Redis (started when none is
        configured), then one runtime per enabled tool."""
        from deepeyes.utils.processes import RedisServer

        self.config = self.resolved_config()
        sandbox = self.config.sandbox
        if sandbox.redis_port is None:
            # A copy, so the configuration still says "start one" after this Redis is gone.
            server = self._stack.enter_context(RedisServer())
            sandbox = dataclasses.replace(sandbox, redis_host=server.host, redis_port=server.port)
        self._redis = redis.Redis(host=sandbox.redis_host, port=sandbox.redis_port)
        self._stack.callback(self._redis.close)
        context = ToolContext(config=dataclasses.replace(self.config, sandbox=sandbox), redis=self._redis, stack=self._stack)
        for tool_class in REGISTRY.tools():
            if tool_class.spec.name not in self._disabled:
                tool = tool_class(context)
                self._tools[tool_class.spec.name] = tool
                self._stack.callback(tool.shutdown)

    def close(self) -> None:
        with self._lock:
            self._stack.close()
            self._tools.clear()
            self._started = False

    def __enter__(self) -> ToolManager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- switches --------------------------------------------------------------------
    def disable_tools(self, tools: list[str]) -> None:
        """Refuse these tools from now on (calls get a 'disabled' observation the model can read).

        Tool names or aliases (``code_execution``, ``text_search``); ``ValueError`` for unknown ones.
        """
        self._disabled |= set(resolve(tools))

    def enable_tools(self, tools: list[str]) -> None:
        """Allow these tools again (a tool disabled when the manager started stays without services)."""
        self._disabled -= set(resolve(tools))

    @property
    def sandbox_client(self):
        """The sandbox client in use (None until started or when code is disabled)."""
        return getattr(self._tools.get(CODE.name), "client", None)

    @property
    def disabled_tools(self) -> set[str]:
        return set(self._disabled)

    # -- sessions --------------------------------------------------------------------
    def open_session(
        self,
        images: list[Image.Image | str | Path | bytes],
        sample_index: str | None = None,
        videos: Sequence[VideoClip] = (),
    ) -> ToolSession:
        """A new session; each tool is opened for it on its first call (the kernel only on the first code call).

        ``videos`` are the request's decoded videos (:func:`deepeyes.videos.load_video`), for the tools that read frames.
        """
        return ToolSession(
            session_id=uuid.uuid4().hex,
            images=[load_image(image) for image in images],
            sample_index=sample_index,
            disabled=set(self._disabled),
            videos=list(videos),
        )

    def close_session(self, session: ToolSession) -> None:
        """Close every tool the session opened (the code tool frees its kernel); never raises."""
        for name in list(session.opened):
            tool = self._tools.get(name)
            session.opened.discard(name)
            if tool is None:
                continue
            try:
                tool.close(session)
            except Exception:  # the service is gone or busy: its TTL eviction frees what is left
                logger.warning("closing the %s tool for session %s failed", name, session.session_id, exc_info=True)

    # -- execution -----------------------------------------------------------------------
    def execute(self, session: ToolSession, action: Action, budget: ObservationBudget | None = None) -> ToolResult:
        """Run one action and return its observation; never raises for tool-side failures.

        ``budget``: the tokens the observation may take in the next prompt; what does not fit
        is cut with a note (:mod:`deepeyes.tools.budget`) and ``ToolResult.tokens`` says what
        is left. None: the observation is kept whole and not measured.
        """
        started = time.perf_counter()
        result = self._dispatch(session, action, budget)
        result.observation.latency_s = time.perf_counter() - started
        return result

    def _dispatch(self, session: ToolSession, action: Action, budget: ObservationBudget | None) -> ToolResult:
        if action.kind == "invalid":
            return self._observe(error_output(ERROR_INVALID, action.reason or "the call could not be parsed"), budget)
        if action.kind not in TOOL_NAMES:
            return self._observe(error_output(ERROR_INVALID, f"'{action.kind}' is not a tool call"), budget)
        if action.kind in session.disabled:
            message = f"the {action.kind} tool is not available for this question; answer without it"
            return self._observe(error_output(ERROR_DISABLED, message, "disabled"), budget)
        if session.calls >= self.config.tools.max_calls_per_session:
            limit = self.config.tools.max_calls_per_session
            message = f"the limit of {limit} tool calls is reached; give your final answer now"
            return self._observe(error_output(ERROR_BUDGET, message, "budget_exceeded"), budget)
        if not self._started:
            self.start()
        tool = self._tools.get(action.kind)
        if tool is None:
            return self._observe(error_output(ERROR_DISABLED, f"the {action.kind} tool is not available", "disabled"), budget)
        session.calls += 1
        signature = (action.kind, action.content.strip())
        repeated = signature in session.seen_calls
        session.seen_calls.add(signature)
        try:
            if action.kind not in session.opened:
                tool.open(session)
                session.opened.add(action.kind)
            result = self._observe(tool.execute(session, action.content), budget)
        except Exception as exc:  # a tool's infrastructure failed: tell the model, keep the loop alive
            logger.exception("%s call failed", action.kind)
            result = self._observe(error_output(f"{action.kind} failed", f"{type(exc).__name__}: {exc}"), budget)
        result.observation.repeated = repeated
        return result

    def _observe(self, output: ToolOutput, budget: ObservationBudget | None) -> ToolResult:
        """Bring the output's images within the model's limits and render the observation.

        At most ``max_images_per_round`` images are kept; each is fitted by
        :func:`~deepeyes.images.fit_for_qwen`; one that cannot be fitted is dropped. Then
        the whole observation is fitted into ``budget`` (:func:`deepeyes.tools.budget.fit_observation`).
        Every change is a note in the observation, so the model knows what it is looking at.
        """
        limit = self.config.tools.max_images_per_round
        kept: list[int] = []
        images: list[Image.Image] = []
        notes: list[str] = []
        for index, image in enumerate(output.images[:limit]):
            try:
                fitted, change = fit_for_qwen(image, self.config.tools.max_image_pixels)
            except (ImageLoadError, OSError, ValueError) as exc:
                notes.append(f"image {index + 1} dropped: {exc}")
                continue
            if change:
                notes.append(f"image {index + 1}: {change}")
            kept.append(index)
            images.append(fitted)
        if len(output.images) > limit:
            notes.append(f"{len(output.images) - limit} more image(s) not shown: at most {limit} per call")
        if budget is None:
            text, tokens = output.render(kept, notes, keep_all), None
        else:
            fitted = fit_observation(lambda positions, notes_, clip: output.render([kept[p] for p in positions], notes_, clip), images, notes, budget)
            text, tokens, images = fitted.text, fitted.tokens, [images[p] for p in fitted.kept]
        return ToolResult(Observation(text=text, image_count=len(images), status=output.status, latency_s=0.0), images, tokens)
