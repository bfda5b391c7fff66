"""HTTP front of one sandbox instance.

``python -m deepeyes.sandbox.server --port 8888 --redis_host 127.0.0.1 --redis_port 6379``

Endpoints (JSON in, JSON out; any malformed request gets HTTP 400 with ``{"error": …}``):

* ``POST /jupyter_sandbox`` ``{session_id, code, timeout?}`` →
  ``{status, execution_time, output: {stdout, stderr, result, images}, notes}`` (DeepEyesV2's shape);
* ``POST /sessions/open`` ``{session_id, images?: [base64 PNG/JPEG/GIF/BMP/TIFF/WebP]}`` →
  ``{session_id, images, instance, notes}`` (the session's kernel is bound, and loads the
  images, at its first call; see ``sessions.py``);
* ``POST /sessions/close`` ``{session_id}`` → ``{session_id, closed}``;
* ``GET /health`` → ``{status: "ok", instance, ready, sessions, unbound, peak_sessions, max_sessions,
  warm_kernels, pool_size, store, unsaved, store_losses, full_resaves}``.

Errors: 400 (malformed request), 401 (missing or wrong bearer token), 503 with a
``Retry-After`` header and ``code`` ``capacity`` (no slot in time) or ``store_unavailable``
(Redis unreachable and the request needs it: an open, or a session not live here), 500
(a bug). A session live here keeps running while Redis is down (see ``sessions.py``).

Authentication: with ``DEEPEYES_SANDBOX_TOKEN`` set in the server's environment every request
but ``/health`` must carry ``Authorization: Bearer <token>`` (the client reads the same
variable). It is required when binding an address other than loopback, unless
``--allow_unauthenticated`` says otherwise. Logs name sessions by a hash, never by their id.

HTTP is aiohttp's server (C parser, one event loop, HTTP/1.1 keep-alive, TCP_NODELAY, listen
backlog 4096): accepting and parsing a burst of connections costs no thread per connection.
The session work blocks (Redis, kernel round trips, waits for a slot), so each request runs
:meth:`SandboxApi.handle` on a worker of a thread pool. The threaded ``http.server`` used
before spent about 50 ms of a 64-connection burst's median open in accepting connections and
starting their threads on the 2-core machine (aiohttp: about 15 ms, same handler). A burst of
hundreds of clients is accepted and each gets an answer; a session that cannot get a slot or
kernel in time gets HTTP 503 (open) or a ``timeout`` result (call).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
from aiohttp import web
from redis.backoff import NoBackoff
from redis.retry import Retry

from deepeyes.cli import LoggingArguments, parse_cli
from deepeyes.config import ConfigError, load_config
from deepeyes.paths import resolve_path
from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.pool import KernelFactory, KernelPool
from deepeyes.sandbox.sessions import (
    CapacityError,
    SessionInputError,
    SessionManager,
    StoreUnavailable,
    session_tag,
)
from deepeyes.sandbox.store import AsyncOpenStore, SessionStore

logger = logging.getLogger("deepeyes.sandbox.server")

_SESSION_ID = re.compile(r"^[\w.:@/+=-]{1,256}$")
#: Leading bytes of the image files an open accepts (WebP is checked apart: RIFF....WEBP).
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
#: Requests blocking at once (each on a worker thread, created as needed and reused): more
#: than an instance's clients ever keep in flight, so a request never queues behind executes.
_REQUEST_WORKERS = 1024
_LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
_KEEPALIVE_TIMEOUT_S = 300.0  # idle keep-alive connections are closed after this
_SHUTDOWN_GRACE_S = 2.0  # in-flight requests get this long on SIGTERM before the kernels are killed
#: Redis runs one command at a time, so a few dozen connections keep it busy; workers beyond
#: them wait (at most _REDIS_WAIT_S) instead of failing, as redis-py's default pool of 100
#: does ("Too many connections") once more workers than that talk to Redis at once.
_REDIS_CONNECTIONS = 64
_REDIS_WAIT_S = 30.0
#: Opens up to this body size (no or small images) may be answered on the event loop.
_NOWAIT_BODY_BYTES = 2**20
#: The event loop's own (asynchronous) Redis connection gives up after this long (a loopback
#: Redis answers in well under a millisecond).
_NOWAIT_REDIS_TIMEOUT_S = 5.0
#: Connecting to Redis gives up after this long; a command after _REDIS_COMMAND_TIMEOUT_S (a
#: full snapshot of a large namespace is the longest). No retries: a failure is reported at
#: once (HTTP 503, or a snapshot retried by the store watcher), never waited out per request.
_REDIS_CONNECT_TIMEOUT_S = 1.0
_REDIS_COMMAND_TIMEOUT_S = 20.0
#: What a 503 asks the client to wait before trying again (seconds).
RETRY_AFTER_S = 1
#: The environment variable holding the bearer token (server and client).
TOKEN_ENV = "DEEPEYES_SANDBOX_TOKEN"
_OPEN_PATHS = {"/health"}  # answered without the token (liveness probes)


class BadRequest(ValueError):
    """A request the server refuses with HTTP 400."""


def _field(body: Any, name: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if name not in body or body[name] is None:
        if required:
            raise BadRequest(f"missing field '{name}'")
        return None
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BadRequest(f"field '{name}' must be {expected}, got {type(value).__name__}")
    return value


def _session_id(body: Any) -> str:
    session_id = _field(body, "session_id", str)
    if not _SESSION_ID.match(session_id):
        raise BadRequest("field 'session_id' must be 1-256 characters of letters, digits and ._:@/+=-")
    return session_id


def _timeout(body: Any, config: SandboxConfig) -> float:
    timeout = _field(body, "timeout", (int, float), required=False)
    if timeout is None:
        return config.default_timeout_s
    if not 0 < timeout <= config.max_timeout_s:
        raise BadRequest(f"field 'timeout' must be in (0, {config.max_timeout_s:g}] seconds, got {timeout}")
    return float(timeout)


def _is_image_file(data: bytes) -> bool:
    """Whether ``data`` starts like a file of one of :data:`_IMAGE_SIGNATURES`' formats (nothing is decoded here)."""
    return data.startswith(_IMAGE_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _images(body: Any) -> list[bytes]:
    """The open's images: base64 strings of image files, checked by their leading bytes only.

    The images are decoded in the session's kernel at its first call (the server never
    decodes user data), so a file that starts right but is corrupt fails there.
    """
    encoded = _field(body, "images", list, required=False) or []
    images = []
    for index, item in enumerate(encoded, start=1):
        if not isinstance(item, str):
            raise BadRequest(f"images[{index}] must be a base64 string")
        try:
            image = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"images[{index}] is not valid base64: {exc}") from exc
        if not _is_image_file(image):
            raise BadRequest(f"images[{index}] is not a PNG, JPEG, GIF, BMP, TIFF or WebP file")
        images.append(image)
    return images


def _json_body(method: str, body: bytes | None) -> Any:
    if method != "POST":
        return None
    try:
        return json.loads(body or b"")
    except ValueError:
        raise BadRequest("the request body must be JSON") from None


class SandboxApi:
    """Routing and validation, separate from the HTTP plumbing: ``handle`` maps a request to a JSON reply."""

    def __init__(self, manager: SessionManager, config: SandboxConfig, ready: threading.Event,
                 token: str | None = None):
        self.manager = manager
        self.config = config
        self.ready = ready
        self.token = token
        #: Redis access of :meth:`handle_nowait`, on the event loop's own asynchronous
        #: connection (set by the server once its loop runs).
        self.nowait_store: AsyncOpenStore | None = None
        self.routes: dict[tuple[str, str], Callable[[Any, RequestLog], dict]] = {
            ("POST", "/jupyter_sandbox"): self.execute,
            ("POST", "/sessions/open"): self.open_session,
            ("POST", "/sessions/close"): self.close_session,
            ("GET", "/health"): self.health,
        }

    def handle(self, method: str, path: str, body: bytes | None, log: RequestLog) -> tuple[int, dict]:
        """The reply to any request; may block (run it on a worker thread)."""
        route = self.routes.get((method, path.split("?", 1)[0]))
        if route is None:
            known = any(p == path.split("?", 1)[0] for _, p in self.routes)
            return (405, {"error": f"{method} not allowed on {path}"}) if known else (404, {"error": f"no route {path}"})
        return self._reply(method, path, lambda: route(_json_body(method, body), log))

    def authorized(self, path: str, authorization: str | None) -> bool:
        """Whether a request may be served: always without a token, else with ``Bearer <token>``."""
        if self.token is None or path.split("?", 1)[0] in _OPEN_PATHS:
            return True
        scheme, _, given = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    async def handle_nowait(self, method: str, path: str, body: bytes | None, log: RequestLog) -> tuple[int, dict] | None:
        """The reply to a request that can be answered without waiting, else None (then call :meth:`handle`).

        Only a session open qualifies, when its body is small and the session manager can
        admit it at once (see ``SessionManager.open_nowait``): a burst of opens is then
        served on the event loop, with no hand-off to a worker thread and back. Its Redis
        command is awaited, never blocking the loop.
        """
        if (method, path) != ("POST", "/sessions/open") or len(body or b"") > _NOWAIT_BODY_BYTES \
                or self.nowait_store is None:
            return None
        try:
            data = _json_body(method, body)
            log.session_id = session_id = _session_id(data)
            images = _images(data)
        except BadRequest as exc:
            return 400, {"error": str(exc)}
        try:
            payload = await asyncio.wait_for(self.manager.open_nowait(session_id, images, self.nowait_store),
                                             _NOWAIT_REDIS_TIMEOUT_S)
        except TimeoutError as exc:  # Redis did not answer in time: later opens take the worker path
            self.manager.store_failed(exc)
            return self._error(method, path, exc)
        except Exception as exc:  # noqa: BLE001 - mapped like every other reply
            return self._error(method, path, exc)
        return None if payload is None else (200, payload)

    def _reply(self, method: str, path: str, answer: Callable[[], dict | None]) -> tuple[int, dict | None]:
        """``answer()`` as HTTP status and JSON payload, errors mapped to 400/503/500."""
        try:
            return 200, answer()
        except Exception as exc:  # noqa: BLE001 - mapped in one place
            return self._error(method, path, exc)

    def _error(self, method: str, path: str, exc: Exception) -> tuple[int, dict]:
        """An exception as HTTP status and JSON payload; a 503 carries ``retry_after_s`` (sent as ``Retry-After``)."""
        if isinstance(exc, (BadRequest, SessionInputError)):
            return 400, {"error": str(exc)}
        if isinstance(exc, CapacityError):
            return 503, {"error": f"sandbox instance {self.manager.instance} is full: {exc}", "code": "capacity",
                         "retry_after_s": RETRY_AFTER_S}
        if isinstance(exc, (StoreUnavailable, redis.RedisError, asyncio.TimeoutError)):
            return 503, {"error": f"sandbox instance {self.manager.instance} cannot reach its state store: {exc}",
                         "code": "store_unavailable", "retry_after_s": RETRY_AFTER_S}
        logger.error("unhandled error on %s %s", method, path, exc_info=exc)
        return 500, {"error": f"internal sandbox error: {type(exc).__name__}: {exc}"}

    def execute(self, data: Any, log: RequestLog) -> dict:
        log.session_id = session_id = _session_id(data)
        code = _field(data, "code", str)
        timeout = _timeout(data, self.config)
        result = self.manager.execute(session_id, code, timeout)
        log.outcome = f"status={result.status} "
        return result.to_wire()

    def open_session(self, data: Any, log: RequestLog) -> dict:
        log.session_id = session_id = _session_id(data)
        return self.manager.open(session_id, _images(data), time.monotonic() + self.config.open_timeout_s)

    def close_session(self, data: Any, log: RequestLog) -> dict:
        log.session_id = session_id = _session_id(data)
        closed, notes = self.manager.close(session_id)
        return {"session_id": session_id, "closed": closed, "notes": notes}

    def health(self, _data: Any, _log: RequestLog) -> dict:
        return {"status": "ok", "instance": self.manager.instance, "ready": self.ready.is_set(), **self.manager.stats()}


@dataclass
class RequestLog:
    """What the one log line of a request says besides method, path, code and duration."""

    session_id: str = "-"
    outcome: str = ""


async def _read_body(request: web.Request, max_body: int) -> tuple[bytes | None, str]:
    """The request body, or an error; a declared oversized body is not read (``max_body`` in bytes)."""
    if request.method != "POST":
        return None, ""
    too_large = f"request body is larger than {max_body / 2**20:g} MB"
    if request.content_length is not None and request.content_length > max_body:
        return None, too_large
    try:
        return await request.read(), ""  # the application's client_max_size bounds chunked bodies too
    except web.HTTPRequestEntityTooLarge:
        return None, too_large


def make_app(api: SandboxApi, max_body: int, workers: ThreadPoolExecutor) -> web.Application:
    """The aiohttp application: every method and path goes through ``api.handle`` on ``workers``,
    unless ``api.handle_nowait`` answers it on the event loop.

    Replies are JSON (errors too, including 404/405); each request logs one line.
    """

    async def serve_request(request: web.Request) -> web.Response:
        started = time.perf_counter()
        log = RequestLog()
        if not api.authorized(request.path, request.headers.get("Authorization")):
            status, payload, error = 401, {"error": "missing or wrong bearer token (Authorization: Bearer …)"}, "auth"
        else:
            body, error = await _read_body(request, max_body)
            if error:
                status, payload = 400, {"error": error}
            else:
                reply = await api.handle_nowait(request.method, request.path, body, log)
                status, payload = reply or await asyncio.get_running_loop().run_in_executor(
                    workers, api.handle, request.method, request.path, body, log)
        headers = {"Retry-After": str(payload["retry_after_s"])} if status == 503 and "retry_after_s" in payload else None
        response = web.json_response(payload, status=status, headers=headers)
        if error and request.content_length is not None and request.content_length > 16 * max_body:
            response.force_close()  # not worth draining; the client sees the connection close
        tag = session_tag(log.session_id) if log.session_id != "-" else "-"
        logger.info("%s %s %d session=%s %s%.1f ms", request.method, request.path, status, tag, log.outcome,
                    (time.perf_counter() - started) * 1000)
        return response

    app = web.Application(client_max_size=max_body)
    app.router.add_route("*", "/{path:.*}", serve_request)
    return app


@dataclass(frozen=True)
class SandboxServerArguments:
    """The flags of ``python -m deepeyes.sandbox.server``; a setting left unset comes from ``--config``
    (or :class:`SandboxConfig`'s default)."""

    port: int = field(metadata={"help": "TCP port to listen on"})
    host: str | None = field(default=None, metadata={"help": "address to bind (unset: the config's host, 127.0.0.1)"})
    redis_host: str | None = field(default=None, metadata={"help": "Redis host holding session snapshots (unset: the config's)"})
    redis_port: int | None = field(default=None, metadata={"help": "Redis port (required here or in --config)"})
    pool_size: int | None = field(
        default=None, metadata={"help": "forked kernels kept ready (size it to the burst of first calls: an open takes no kernel)"}
    )
    max_sessions: int | None = field(
        default=None,
        metadata={
            "help": "hard bound on live sessions (each holds a slot from its open, and at most one kernel); "
            "beyond it idle sessions are evicted or callers wait"
        },
    )
    config: str | None = field(default=None, metadata={"help": "YAML file with the sandbox settings (e.g. tool_manager_config.yaml)"})
    config_section: str = field(default="sandbox", metadata={"help": "top-level key of --config holding the settings"})
    work_dir: str | None = field(default=None, metadata={"help": "directory for kernel and session files (unset: a fresh temp dir)"})
    allow_unauthenticated: bool = field(
        default=False,
        metadata={"help": f"serve a non-loopback address without a bearer token (${TOKEN_ENV} unset); not recommended"},
    )
    exit_with_parent: bool = field(
        default=False,
        metadata={
            "help": "shut down when the starting process dies (used by SandboxCluster, so a crashed CLI or test run "
            "leaves no server behind)"
        },
    )


DESCRIPTION = (
    "Stateful Python code sandbox (Jupyter kernels, Redis-backed sessions) over HTTP. "
    "Several instances may share one Redis; clients route sessions between them."
)


def build_config(args: SandboxServerArguments) -> SandboxConfig:
    """``--config`` (or the defaults) with the flags that were given laid over it, checked as the file is."""
    config = load_config(resolve_path(args.config), SandboxConfig, section=args.config_section) if args.config else SandboxConfig()
    overrides = {"host": args.host, "redis_host": args.redis_host, "redis_port": args.redis_port,
                 "pool_size": args.pool_size, "max_sessions": args.max_sessions,
                 "work_dir": resolve_path(args.work_dir) if args.work_dir else None}
    for name, value in overrides.items():
        if value is not None:
            setattr(config, name, value)
    try:
        config.__post_init__()  # the overrides must pass the same checks as the file
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if config.redis_port is None:
        raise ConfigError("the sandbox server needs a Redis: pass --redis_port (or set sandbox.redis_port)")
    return config


def _watch_parent(stop: Callable[[], None]) -> None:
    """Call ``stop`` once this process is re-parented (its starter died, even by SIGKILL)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        logger.warning("parent process %d is gone: shutting down", parent)
        stop()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def make_redis_client(config: SandboxConfig) -> redis.Redis:
    """The instance's Redis client: at most ``_REDIS_CONNECTIONS`` connections, shared by all
    request workers; a worker finding none free waits up to ``_REDIS_WAIT_S`` (then
    ``redis.ConnectionError``). No retries, short connect timeout: an unreachable Redis is
    reported in about a millisecond (refused) or ``_REDIS_CONNECT_TIMEOUT_S`` (silent)."""
    return redis.Redis(connection_pool=redis.BlockingConnectionPool(
        host=config.redis_host, port=config.redis_port, max_connections=_REDIS_CONNECTIONS, timeout=_REDIS_WAIT_S,
        socket_connect_timeout=_REDIS_CONNECT_TIMEOUT_S, socket_timeout=_REDIS_COMMAND_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0)))


def make_nowait_redis_client(config: SandboxConfig) -> redis.asyncio.Redis:
    """The event loop's own Redis connection, for opens answered on the loop: asynchronous, so
    the loop serves other requests (``/health`` included) while it waits, whatever Redis does.

    One connection of its own means the loop never waits for the workers' pool; an open is one
    command to a loopback Redis (~0.1 ms), which costs the loop less than handing the open to a
    worker thread and back (~0.4 ms of CPU per open in a burst, ``benchmarks/sandbox_bench.py``).
    """
    return redis.asyncio.Redis(host=config.redis_host, port=config.redis_port, single_connection_client=True,
                               socket_timeout=_NOWAIT_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_CONNECT_TIMEOUT_S,
                               retry=Retry(NoBackoff(), 0))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_token(host: str, allow_unauthenticated: bool) -> str | None:
    """The bearer token from ``$DEEPEYES_SANDBOX_TOKEN`` (None: no authentication).

    Raises :class:`ConfigError` for a non-loopback ``host`` without one, unless ``allow_unauthenticated``.
    """
    token = os.environ.get(TOKEN_ENV) or None
    if token is None and not _is_loopback(host) and not allow_unauthenticated:
        raise ConfigError(f"binding {host} (not loopback) needs a bearer token: set ${TOKEN_ENV} for the server and its "
                          "clients, or pass --allow_unauthenticated")
    return token


def _warm_workers(workers: ThreadPoolExecutor, redis_client: redis.Redis, count: int) -> None:
    """Start ``count`` request workers and up to ``_REDIS_CONNECTIONS`` Redis connections before serving.

    Both are otherwise made on demand by the first burst of requests, which then waits for
    thread starts and Redis connection handshakes (each a scheduling round on a busy machine).
    """
    count = min(count, _REQUEST_WORKERS)
    everyone = threading.Barrier(count, timeout=30)  # all started at once: each task gets its own thread

    def hold(connect: bool) -> None:
        connection = redis_client.connection_pool.get_connection() if connect else None
        try:
            with contextlib.suppress(threading.BrokenBarrierError):
                everyone.wait()
        finally:
            if connection is not None:
                redis_client.connection_pool.release(connection)

    for future in [workers.submit(hold, index < _REDIS_CONNECTIONS) for index in range(count)]:
        future.result()


async def _run_http(app: web.Application, api: SandboxApi, config: SandboxConfig, port: int,
                    exit_with_parent: bool) -> None:
    """Serve ``app`` until SIGTERM/SIGINT (or the parent's death with ``exit_with_parent``)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        logger.info("signal %d: shutting down", signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    if exit_with_parent:
        _watch_parent(lambda: loop.call_soon_threadsafe(stop.set))
    nowait_redis = make_nowait_redis_client(config)
    api.nowait_store = AsyncOpenStore(nowait_redis, api.manager.store)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, keepalive_timeout=_KEEPALIVE_TIMEOUT_S,
                           shutdown_timeout=_SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, port, backlog=_LISTEN_BACKLOG).start()
        await stop.wait()
    finally:
        await runner.cleanup()
        api.nowait_store = None
        with contextlib.suppress(redis.RedisError, OSError):
            await nowait_redis.aclose()


def serve(config: SandboxConfig, port: int, exit_with_parent: bool = False, token: str | None = None) -> None:
    """Run one instance until SIGTERM/SIGINT; kernels are killed and the instance's work folder
    removed on the way out, whether or not Redis still answers."""
    instance = f"{config.host}:{port}"
    if config.work_dir is None:
        work_dir = Path(tempfile.mkdtemp(prefix=f"deepeyes-sandbox-{port}-"))
    else:  # instances may share one configured directory; each removes its own folder in it
        work_dir = config.work_dir / f"instance-{port}"
        config.work_dir.mkdir(parents=True, exist_ok=True)
        config.work_dir.chmod(0o711)
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        work_dir.chmod(0o711)  # kernels (other uids) must traverse it to reach their own directory
        _serve_in(config, port, instance, work_dir, exit_with_parent, token)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        logger.info("sandbox %s stopped", instance)


def _serve_in(config: SandboxConfig, port: int, instance: str, work_dir: Path, exit_with_parent: bool,
              token: str | None) -> None:
    redis_client = make_redis_client(config)
    redis_client.ping()
    store = SessionStore(redis_client, config.state_ttl_s, pending_images_ttl_s=config.session_ttl_s)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(redis_client.close)
        pool = KernelPool(KernelFactory(config, work_dir), config.pool_size).start()
        cleanup.callback(pool.close)
        manager = SessionManager(config, store, pool, instance).start()
        cleanup.callback(manager.shutdown)
        api = SandboxApi(manager, config, pool.filled_once, token)
        workers = ThreadPoolExecutor(max_workers=_REQUEST_WORKERS, thread_name_prefix="request")
        cleanup.callback(workers.shutdown, wait=False, cancel_futures=True)
        _warm_workers(workers, redis_client, 2 * config.max_sessions)
        app = make_app(api, int(config.max_request_mb * 2**20), workers)
        logger.info("sandbox %s serving (redis %s:%s, pool %d, work dir %s, %s)", instance, config.redis_host,
                    config.redis_port, config.pool_size, work_dir, "bearer token required" if token else "no token")
        asyncio.run(_run_http(app, api, config, port, exit_with_parent))


def main(argv: Sequence[str] | None = None) -> None:
    args, logging_args = parse_cli([SandboxServerArguments, LoggingArguments], argv, prog="python -m deepeyes.sandbox.server",
                                   description=DESCRIPTION)
    logging_args.configure()
    try:
        config = build_config(args)
        token = auth_token(config.host, args.allow_unauthenticated)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from exc
    serve(config, args.port, exit_with_parent=args.exit_with_parent, token=token)


if __name__ == "__main__":
    main()
