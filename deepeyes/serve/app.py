"""The FastAPI application: routes, error shape, request log, and the request lifecycle.

``create_app(config)`` builds the app; the model and the tool manager are started in its
lifespan (or an already started tool manager is passed in). Agent loops are blocking and
run in a thread pool; the event loop only parses, fetches images and videos, and streams
(videos are decoded in the pool).

Bounded before any work: a prompt over ``max_context_tokens`` is refused with OpenAI's 400
``context_length_exceeded`` before generation; JSON nested past the parser's limit is a 400;
every 4xx carries a ``code``. With ``$DEEPEYES_API_KEY`` set, every request but ``/health`` needs
``Authorization: Bearer <key>`` (what an OpenAI client sends as its ``api_key``), else 401
``invalid_api_key`` (:mod:`deepeyes.utils.auth`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from PIL import Image
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepeyes import wire
from deepeyes.agent import (
    AgentConfig,
    AgentLoop,
    AgentRequest,
    ContextLengthExceeded,
    Rollout,
    RunCancelled,
    prompt_tokens,
)
from deepeyes.model_args import build_tool_manager
from deepeyes.policies.base import SamplingParams
from deepeyes.policies.openai import PolicyServerError
from deepeyes.serve import inputs
from deepeyes.serve.backend import Backend
from deepeyes.serve.config import ServeConfig
from deepeyes.serve.errors import (
    APIError,
    bad_request,
    context_length_exceeded,
    model_not_found,
    server_error,
    too_large,
    unauthorized,
)
from deepeyes.serve.fetch import FetchRules, image_client
from deepeyes.serve.metrics import CONTENT_TYPE, ServeMetrics
from deepeyes.serve.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    ChunkDelta,
    ModelCard,
    ModelList,
    ToolCallUsage,
    Usage,
)
from deepeyes.serve.session import RequestRun
from deepeyes.tool_manager import ToolManager
from deepeyes.tools.budget import tokenizer_counter
from deepeyes.trajectory import TOOL_KINDS, Trajectory, Turn
from deepeyes.utils.auth import OPEN_PATHS, authorized
from deepeyes.videos import VideoClip, VideoSampling

logger = logging.getLogger("deepeyes.serve")

#: The environment variable holding the service's API key (the bearer token clients send).
TOKEN_ENV = "DEEPEYES_API_KEY"

_OBSERVATION_SUMMARY_CHARS = 400
#: Images up to this many encoded bytes in all are decoded on the event loop (well under a millisecond).
_INLINE_DECODE_BYTES = 256 * 1024


@dataclass
class ServeState:
    """What the routes share: the policy backend, the tools, the one agent loop, metrics and worker threads."""

    config: ServeConfig
    backend: Backend
    tools: ToolManager | None
    loop: AgentLoop
    metrics: ServeMetrics
    workers: ThreadPoolExecutor
    http: httpx.AsyncClient
    started: float = field(default_factory=time.time)



@dataclass
class RequestClock:
    """When a request started, and the event loop's CPU time spent on it (its synchronous stretches only)."""

    started: float = field(default_factory=time.perf_counter)
    cpu_s: float = 0.0

    def add_since(self, mark: float) -> None:
        self.cpu_s += time.thread_time() - mark


# -- request log ---------------------------------------------------------------------------------
class RequestLogMiddleware:
    """One log line per request (method, path, status, milliseconds, and what the route noted) plus request/error counters."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            notes = scope.get("state", {}).get("log", "")
            elapsed_ms = (time.perf_counter() - started) * 1000
            route = scope.get("route")
            self.metrics.requests.labels(route=getattr(route, "path", "other"), status=str(status)).inc()
            logger.info("%s %s %d %.1fms%s", scope["method"], scope["path"], status, elapsed_ms, f" {notes}" if notes else "")


class BearerTokenMiddleware:
    """HTTP 401 ``invalid_api_key`` (OpenAI's shape) for a request without the service's key; ``/health`` stays open."""

    def __init__(self, app: ASGIApp, token: str, metrics: ServeMetrics) -> None:
        self.app = app
        self.token = token
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        header = headers.get(b"authorization", b"").decode("latin-1")
        if authorized(header, self.token):
            await self.app(scope, receive, send)
            return
        error = unauthorized()
        self.metrics.errors.labels(status=str(error.status), code=str(error.code)).inc()
        scope.setdefault("state", {})["log"] = "error=invalid_api_key"
        await error.response()(scope, receive, send)


# -- the app ------------------------------------------------------------------------------------
def create_app(config: ServeConfig, tool_manager: ToolManager | None = None, token: str | None = None) -> FastAPI:
    """The service for ``config``. ``tool_manager``: an already started one to share (the caller closes it);
    by default one is built from ``config.tools`` (none with ``use_tools`` false) and closed with the app. ``token``: the
    API key requests must carry (default: ``$DEEPEYES_API_KEY``; neither: no authentication)."""
    metrics = ServeMetrics()
    token = token or os.environ.get(TOKEN_ENV) or None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = tool_manager is None
        tools = build_tool_manager(config.tools) if owned else tool_manager
        backend = await asyncio.to_thread(Backend, config)
        loop = AgentLoop(tools, AgentConfig(
            max_turns=config.tools.max_turns,
            max_context_tokens=config.max_context_tokens,
            use_tools=config.tools.use_tools and tools is not None,
        ))
        state = ServeState(
            config=config,
            backend=backend,
            tools=tools,
            loop=loop,
            metrics=metrics,
            workers=ThreadPoolExecutor(config.max_concurrent_requests, thread_name_prefix="serve"),
            http=image_client(FetchRules.from_list(config.allow_private_image_urls, config.image_url_hosts)),
        )
        if owned and tools is not None:
            await asyncio.to_thread(tools.start)
        app.state.serve = state
        offered = sorted(set(TOOL_KINDS) - tools.disabled_tools - set(config.tools.disable_tools)) if tools is not None else []
        logger.info("serving %r (%s) with tools %s", config.served_model_name, backend.description, offered)
        try:
            yield
        finally:
            await state.http.aclose()
            state.workers.shutdown(wait=False, cancel_futures=True)
            if owned and tools is not None:
                await asyncio.to_thread(tools.close)

    app = FastAPI(title="DeepEyes inference service", lifespan=lifespan)
    if token is not None:
        app.add_middleware(BearerTokenMiddleware, token=token, metrics=metrics)
    app.add_middleware(RequestLogMiddleware, metrics=metrics)  # added last: outermost, so refusals are logged too

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        metrics.errors.labels(status=str(exc.status), code=str(exc.code)).inc()
        request.state.log = f"error={exc.code or exc.type}"
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        try:
            code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")  # not_found, method_not_allowed
        except ValueError:
            code = f"http_{exc.status_code}"
        return await api_error(request, APIError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, PolicyServerError):  # the --api_base upstream failed, not this service
            return await api_error(request, APIError(502, str(exc), type="server_error", code="upstream_error"))
        logger.exception("unhandled error")
        return await api_error(request, server_error(f"{type(exc).__name__}: {exc}"))

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        state: ServeState = request.app.state.serve
        tools = sorted(set(TOOL_KINDS) - state.tools.disabled_tools) if state.tools else []
        return {"status": "ok", "model": config.served_model_name, "backend": state.backend.description, "tools": tools,
                "uptime_s": round(time.time() - state.started, 1)}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models(request: Request) -> ModelList:
        state: ServeState = request.app.state.serve
        return ModelList(data=[ModelCard(id=config.served_model_name, created=int(state.started))])

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        clock = RequestClock()
        state: ServeState = request.app.state.serve
        body = await _read_body(request, config.max_request_bytes)
        mark = time.thread_time()
        chat = _parse(body)
        if chat.model != config.served_model_name:
            raise model_not_found(chat.model, config.served_model_name)
        unknown = sorted(set(chat.disable_tools) - set(TOOL_KINDS))
        if unknown:
            raise bad_request(f"unknown tool(s) {unknown} in disable_tools; tools: {list(TOOL_KINDS)}", "disable_tools", "unknown_tool")
        if chat.max_turns is not None and chat.max_turns > config.tools.max_turns:
            raise bad_request(f"max_turns {chat.max_turns} exceeds this service's limit of {config.tools.max_turns}", "max_turns", "invalid_value")
        mode = chat.resolved_mode
        if mode == "generate" and chat.stream:
            raise bad_request("streaming is supported in the agent mode only", "stream", "unsupported_value")
        question = inputs.agent_question(chat) if mode == "agent" else ""
        refs = inputs.media_refs(chat, config)
        video_sampling = inputs.video_sampling(chat, config)
        if any(ref.data is None for ref in refs):
            clock.add_since(mark)
            await inputs.fetch_remote(refs, state.http, config)
            mark = time.thread_time()
        image_refs = [ref for ref in refs if ref.kind == "image"]
        video_refs = [ref for ref in refs if ref.kind == "video"]
        if inputs.encoded_size(image_refs) <= _INLINE_DECODE_BYTES:
            images = inputs.decode_images(image_refs)  # cheaper than two thread hops, which cost milliseconds on a busy machine
        else:
            images = await asyncio.get_running_loop().run_in_executor(state.workers, inputs.decode_images, image_refs)
        videos: list[VideoClip] = []
        if video_refs:  # always off the event loop: decoding a video takes a while
            clock.add_since(mark)
            videos = await asyncio.get_running_loop().run_in_executor(state.workers, inputs.decode_videos, video_refs, video_sampling, config)
            mark = time.thread_time()
        sampling = state.backend.sampling(chat.temperature, chat.top_p, chat.token_limit)
        completion_id = "chatcmpl-" + uuid.uuid4().hex
        request.state.log = f"mode={mode} stream={chat.stream}"
        if mode == "generate":
            clock.add_since(mark)
            return await _generate(request, state, chat, images, videos, sampling, completion_id, clock)
        run = _request_run(state, chat, question, images, videos, video_sampling, sampling)
        clock.add_since(mark)
        # Measured off the event loop: a 2 MB question takes a while to tokenise.
        first = run.loop.first_messages(question, images, run.loop.uses_tools(run.request), videos, run.request.disabled_tools)
        overflow = await asyncio.get_running_loop().run_in_executor(state.workers, run.loop.context_overflow, first, run.policy)
        if overflow is not None:
            raise context_length_exceeded(overflow)
        if chat.stream:
            return StreamingResponse(
                _stream(request, state, chat, question, images, run, completion_id, clock),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await _complete(request, state, chat, question, images, run, completion_id, clock)

    return app


# -- request handling ---------------------------------------------------------------------------------
async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


def _parse(body: bytes) -> ChatCompletionRequest:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}", code="invalid_json") from exc
    except RecursionError as exc:  # JSON nested past the parser's recursion limit
        raise bad_request("the request body is nested too deeply to read", code="invalid_json") from exc
    if not isinstance(payload, dict):
        raise bad_request("the request body must be a JSON object", code="invalid_json")
    try:
        return ChatCompletionRequest.model_validate(payload)
    except RecursionError as exc:
        raise bad_request("the request body is nested too deeply to read", code="invalid_json") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise bad_request(f"invalid request: {param}: {first['msg']}", param, "invalid_request") from exc


def _request_run(state: ServeState, chat: ChatCompletionRequest, question: str, images: list[Image.Image], videos: list[VideoClip],
                 video_sampling: VideoSampling, sampling: SamplingParams) -> RequestRun:
    """The request's run: its switches added to the service-wide ones, its sampling and turn limit, a cancel event of its own."""
    switches = state.config.tools
    request = AgentRequest(
        question=question,
        images=images,
        videos=list(videos),
        video_sampling=video_sampling,
        sample_index=chat.sample_index,
        disabled_tools=set(chat.disable_tools) | set(switches.disable_tools),
        force_no_tool=chat.force_no_tool or switches.force_no_tool,
        sampling=sampling,
        max_turns=chat.max_turns,
    )
    return RequestRun(state.loop, state.backend.policy, request, tokenizer=state.backend.tokenizer, max_pixels=state.backend.max_pixels)


def _usage(run: RequestRun, trajectory: Trajectory) -> Usage:
    counts = trajectory.tool_calls
    tool_calls = ToolCallUsage(invalid=counts.invalid, failed=counts.failed, repeated=counts.repeated,
                               **{tool: getattr(counts, tool) for tool in TOOL_KINDS})
    prompt, completion = run.policy.prompt_tokens, run.policy.completion_tokens
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                 turns=len(trajectory.turns), tool_calls=tool_calls)


def _finish_reason(trajectory: Trajectory) -> str:
    return "length" if trajectory.stop_reason in ("max_turns", "length", "token_budget") else "stop"


def _record(request: Request, state: ServeState, run: RequestRun, trajectory: Trajectory, mode: str, clock: RequestClock) -> tuple[float, float]:
    """Metrics and log notes of a finished agent request.

    Returns the service's own overhead in seconds: wall time beyond generation and tools
    (waiting for a busy CPU included), and the CPU time it spent itself.
    """
    metrics = state.metrics
    total = time.perf_counter() - clock.started
    cpu = clock.cpu_s + run.service_cpu_s
    generation, tools = trajectory.timing.get("generation_s", 0.0), trajectory.timing.get("tools_s", 0.0)
    overhead = max(0.0, total - generation - tools)
    metrics.record_trajectory(trajectory)
    metrics.completions.labels(mode=mode, finish_reason=_finish_reason(trajectory)).inc()
    metrics.latency.labels(mode=mode).observe(total)
    metrics.generation.observe(generation)
    metrics.tools.observe(tools)
    metrics.overhead.observe(overhead)
    metrics.overhead_cpu.observe(cpu)
    calls = ",".join(f"{tool}:{getattr(trajectory.tool_calls, tool)}" for tool in TOOL_KINDS if getattr(trajectory.tool_calls, tool))
    request.state.log = (f"mode={mode} turns={len(trajectory.turns)} stop={trajectory.stop_reason} tools={calls or '-'} "
                         f"gen={generation * 1000:.0f}ms tool={tools * 1000:.0f}ms overhead={overhead * 1000:.2f}ms cpu={cpu * 1000:.2f}ms")
    return overhead, cpu


def _consume(future: asyncio.Future) -> None:
    """Retrieve the outcome of an abandoned run (it ends with RunCancelled) so asyncio does not warn about it."""
    if not future.cancelled():
        future.exception()


def _start_counted(state: ServeState, work: Callable[[], Rollout]) -> asyncio.Future:
    """Run ``work`` on a request worker, counted in ``in_flight`` until it returns.

    The count follows the work, not the client: after a disconnect the loop still finishes its
    tool call in flight, and that call still holds a worker and a sandbox session.
    """
    state.metrics.in_flight.inc()
    future = asyncio.get_running_loop().run_in_executor(state.workers, work)
    future.add_done_callback(lambda _: state.metrics.in_flight.dec())
    return future


async def _watch_disconnect(request: Request) -> None:
    """Returns when the client goes away (the body is already read, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _complete(request: Request, state: ServeState, chat: ChatCompletionRequest, question: str, images: list[Image.Image],
                    run: RequestRun, completion_id: str, clock: RequestClock) -> Response:
    def work():
        return run.run()

    future = _start_counted(state, work)
    watcher = asyncio.ensure_future(_watch_disconnect(request))
    try:
        done, _ = await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if future not in done:
            run.abort()
            future.add_done_callback(_consume)
            state.metrics.cancelled.inc()
            request.state.log = "client disconnected"
            return Response(status_code=499)  # nobody reads it; the log and metrics record the cancellation
        try:
            rollout = future.result()
        except RunCancelled:
            return Response(status_code=499)
    finally:
        watcher.cancel()
    mark = time.thread_time()
    trajectory = rollout.trajectory
    completion = ChatCompletion(
        id=completion_id,
        model=state.config.served_model_name,
        choices=[Choice(message=AssistantMessage(content=trajectory.final_answer), finish_reason=_finish_reason(trajectory))],
        usage=_usage(run, trajectory),
        trajectory=trajectory.to_dict(),
    )
    response = Response(completion.model_dump_json(), media_type="application/json")
    clock.add_since(mark)
    overhead, cpu = _record(request, state, run, trajectory, "agent", clock)
    response.headers["x-deepeyes-overhead-ms"] = f"{overhead * 1000:.3f}"
    response.headers["x-deepeyes-overhead-cpu-ms"] = f"{cpu * 1000:.3f}"
    return response


def _turn_event(turn: Turn) -> dict[str, Any]:
    """The streamed view of one turn: its reasoning, what it did, and a summary of the tool's answer."""
    text = turn.model_text
    thinking = wire.thinking(text) or ""
    observation = None
    if turn.observation is not None:
        obs = turn.observation
        summary = obs.text if len(obs.text) <= _OBSERVATION_SUMMARY_CHARS else obs.text[:_OBSERVATION_SUMMARY_CHARS] + "…"
        observation = {"status": obs.status, "image_count": obs.image_count, "latency_s": obs.latency_s, "summary": summary}
    return {
        "thinking": thinking,
        "answer": turn.action.content if turn.action.kind == "answer" else None,
        "turn": {"index": turn.index, "action": {"kind": turn.action.kind, "content": turn.action.content}, "observation": observation},
    }


def _sse(chunk: ChatCompletionChunk) -> str:
    return f"data: {chunk.model_dump_json(exclude_none=True)}\n\n"


async def _stream(request: Request, state: ServeState, chat: ChatCompletionRequest, question: str, images: list[Image.Image],
                  run: RequestRun, completion_id: str, clock: RequestClock) -> AsyncIterator[str]:
    """Server-sent events: one chunk per turn, a final chunk with finish_reason, usage and trajectory, then [DONE]."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    model = state.config.served_model_name

    def on_turn(_: Trajectory, turn: Turn, __: list[Image.Image]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, _turn_event(turn))

    def work():
        return run.run(on_turn=on_turn)

    def chunk(delta: ChunkDelta, **fields: Any) -> ChatCompletionChunk:
        finish = fields.pop("finish_reason", None)
        return ChatCompletionChunk(id=completion_id, model=model, choices=[ChunkChoice(delta=delta, finish_reason=finish)], **fields)

    future = _start_counted(state, work)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, None))
    try:
        yield _sse(chunk(ChunkDelta(role="assistant", content="")))
        while (event := await queue.get()) is not None:
            yield _sse(chunk(ChunkDelta(content=event["answer"], reasoning_content=event["thinking"] or None, deepeyes_turn=event["turn"])))
        try:
            rollout = future.result()
        except Exception as exc:  # the status line is sent: report the failure as an error event, as OpenAI does
            logger.exception("streamed request failed")
            error = server_error(f"{type(exc).__name__}: {exc}")
            state.metrics.errors.labels(status=str(error.status), code=str(error.code)).inc()
            yield f"data: {json.dumps(error.body())}\n\n"
            return
        trajectory = rollout.trajectory
        usage = _usage(run, trajectory)
        _record(request, state, run, trajectory, "agent_stream", clock)
        yield _sse(chunk(ChunkDelta(), finish_reason=_finish_reason(trajectory), trajectory=trajectory.to_dict()))
        if chat.stream_options is not None and chat.stream_options.include_usage:
            yield _sse(ChatCompletionChunk(id=completion_id, model=model, choices=[], usage=usage))
        yield "data: [DONE]\n\n"
    finally:
        if not future.done():  # the client went away mid-stream
            run.abort()
            future.add_done_callback(_consume)
            state.metrics.cancelled.inc()
            request.state.log = "client disconnected mid-stream"


def _apply_stop(text: str, stops: list[str], include: bool) -> tuple[str, bool]:
    """Cut ``text`` at the first requested stop string (kept when ``include``); True when one was found."""
    hits = [(position, stop) for stop in stops if (position := text.find(stop)) != -1]
    if not hits:
        return text, False
    position, stop = min(hits)
    return text[: position + (len(stop) if include else 0)], True


async def _generate(request: Request, state: ServeState, chat: ChatCompletionRequest, images: list[Image.Image], videos: list[VideoClip],
                    sampling: SamplingParams, completion_id: str, clock: RequestClock) -> Response:
    """One turn of the conversation as given: the service as a plain chat endpoint for a client-side agent loop."""
    mark = time.thread_time()
    policy = state.backend.policy
    messages = inputs.conversation(chat, images, videos)
    clock.add_since(mark)
    budget = state.config.max_context_tokens
    counter = tokenizer_counter(state.backend.tokenizer)
    tokens = await asyncio.get_running_loop().run_in_executor(
        state.workers, lambda: prompt_tokens(messages, counter, state.backend.max_pixels)
    )
    if tokens > budget:
        raise context_length_exceeded(ContextLengthExceeded(tokens, budget))

    def work():
        t0 = time.perf_counter()
        generation = policy.generate(messages, sampling)
        return generation, time.perf_counter() - t0

    state.metrics.in_flight.inc()
    try:
        generation, generation_s = await asyncio.get_running_loop().run_in_executor(state.workers, work)
    finally:
        state.metrics.in_flight.dec()
    mark = time.thread_time()
    text, stopped = _apply_stop(generation.text, chat.stop_strings, chat.include_stop_str_in_output)
    finish = "length" if not stopped and generation.completion_tokens >= sampling.max_new_tokens else "stop"
    completion = ChatCompletion(
        id=completion_id,
        model=state.config.served_model_name,
        choices=[Choice(message=AssistantMessage(content=text), finish_reason=finish)],
        usage=Usage(prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
                    total_tokens=generation.prompt_tokens + generation.completion_tokens, turns=1),
    )
    response = Response(completion.model_dump_json(exclude_none=True), media_type="application/json")
    clock.add_since(mark)
    total = time.perf_counter() - clock.started
    overhead = max(0.0, total - generation_s)
    metrics = state.metrics
    metrics.completions.labels(mode="generate", finish_reason=finish).inc()
    metrics.latency.labels(mode="generate").observe(total)
    metrics.generation.observe(generation_s)
    metrics.overhead.observe(overhead)
    metrics.overhead_cpu.observe(clock.cpu_s)
    metrics.turns.inc()
    request.state.log = (f"mode=generate finish={finish} gen={generation_s * 1000:.0f}ms "
                         f"overhead={overhead * 1000:.2f}ms cpu={clock.cpu_s * 1000:.2f}ms")
    response.headers["x-deepeyes-overhead-ms"] = f"{overhead * 1000:.3f}"
    response.headers["x-deepeyes-overhead-cpu-ms"] = f"{clock.cpu_s * 1000:.3f}"
    return response
