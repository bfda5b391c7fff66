"""Client for one or several sandbox instances sharing one Redis.

Each session is routed to one instance by rendezvous hashing (stable as long as the instance
list is, and only the sessions of a lost instance move). When an instance cannot be reached
the call goes to the next instance in the session's order, which restores the session from
its Redis snapshot; the result's ``notes`` say so.

A session never moves away from an instance that answers: its live kernel there is the
session's truth, and Redis may hold less (see ``sessions.py``). So an HTTP 503 with code
``store_unavailable`` (Redis down) is retried on the same instance after its ``Retry-After``
for up to ``store_retry_s``, and any other error answer raises :class:`SandboxServerError`.
Only a 503 with code ``capacity`` (full: no free session slot in time) sends the request to
the next instance, without marking the first one down. Code errors never raise: they come
back in the :class:`ExecutionResult`.

With ``$DEEPEYES_SANDBOX_TOKEN`` set (or ``token=``), every request carries it as a bearer token.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any, Self
from urllib.parse import urlsplit

from PIL import Image

from deepeyes.sandbox.result import ExecutionResult

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 2.0
_HEALTH_TIMEOUT_S = 2.0
TOKEN_ENV = "DEEPEYES_SANDBOX_TOKEN"  # the server's name for it too (``deepeyes.sandbox.server``)


class SandboxUnavailableError(RuntimeError):
    """No sandbox instance answered (or could serve the request in time)."""


class SandboxServerError(RuntimeError):
    """An instance answered with an error (500, 401, …): the session is not moved away from it."""


class InstanceUnreachable(ConnectionError):
    """One instance could not be reached (refused, reset, timed out)."""


class _KeepAliveConnections:
    """Persistent HTTP connections, one per (thread, instance).

    Plain ``http.client`` instead of ``requests``: on the 2-core machine ``requests`` cost
    about 3 ms per call under load, as much as the whole server side of a warm call.
    """

    def __init__(self, token: str | None = None) -> None:
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, bool]:
        pool: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        connection = pool.get(url)
        if connection is not None:
            return connection, True
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=_CONNECT_TIMEOUT_S)
        pool[url] = connection
        with self._lock:
            self._all.append(connection)
        return connection, False

    def _drop(self, url: str) -> None:
        connection = self._local.__dict__.get("pool", {}).pop(url, None)
        if connection is not None:
            connection.close()

    def request(self, url: str, method: str, path: str, payload: dict | None, timeout: float) -> tuple[int, Any]:
        """Send one request; a stale keep-alive connection is replaced once, transparently."""
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {**self._auth, **({"Content-Type": "application/json"} if body is not None else {})}
        while True:
            connection, reused = self._connection(url)
            try:
                if connection.sock is None:
                    connection.connect()
                connection.sock.settimeout(timeout)
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop(url)
                if reused:  # the server closed an idle connection: retry on a fresh one
                    continue
                raise InstanceUnreachable(f"{url}: {type(exc).__name__}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop(url)
                raise InstanceUnreachable(f"{url}: {type(exc).__name__}: {exc}") from exc
            if response.will_close:
                self._drop(url)
            try:
                payload = json.loads(data)
            except ValueError:
                payload = {"error": data[:500].decode(errors="replace")}
            if response.status == 503 and isinstance(payload, dict) and "retry_after_s" not in payload:
                retry_after = response.getheader("Retry-After")
                if retry_after and retry_after.isdigit():
                    payload["retry_after_s"] = int(retry_after)
            return response.status, payload

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()


def _tag(session_id: str) -> str:
    """A session in logs: a short hash, not the id (see ``sessions.session_tag``)."""
    return "#" + hashlib.blake2b(session_id.encode(), digest_size=6).hexdigest()


class SandboxRequestError(ValueError):
    """The server rejected the request as malformed (HTTP 400): a bug in the caller."""


def _image_bytes(image: bytes | Image.Image) -> bytes:
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    raise TypeError(f"session images must be bytes or PIL images, got {type(image).__name__}")


class SandboxClient:
    """Thread-safe; one instance can serve many concurrent sessions (keep-alive connections)."""

    def __init__(self, ports: Sequence[int], host: str = "127.0.0.1", request_timeout_s: float = 60.0,
                 default_timeout_s: float = 30.0, retry_down_after_s: float = 5.0, store_retry_s: float = 60.0,
                 token: str | None = None):
        if not ports:
            raise ValueError("SandboxClient needs at least one port")
        self.urls = [f"http://{host}:{port}" for port in ports]
        self.request_timeout_s = request_timeout_s
        self.default_timeout_s = default_timeout_s
        self.retry_down_after_s = retry_down_after_s
        #: How long a request answered "state store unavailable" is retried on the same instance.
        self.store_retry_s = store_retry_s
        self._http = _KeepAliveConnections(token if token is not None else os.environ.get(TOKEN_ENV) or None)
        self._lock = threading.Lock()
        self._down_until: dict[str, float] = {}
        self._sticky: dict[str, str] = {}  # session -> instance that last served it

    # ----------------------------------------------------------------- routing
    def instances_for(self, session_id: str) -> list[str]:
        """Instances in the order this session tries them: its current one, then by hash, down ones last."""
        ranked = sorted(self.urls, key=lambda url: hashlib.blake2b(f"{session_id}|{url}".encode(), digest_size=8).digest(),
                        reverse=True)
        now = time.monotonic()
        with self._lock:
            sticky = self._sticky.get(session_id)
            if sticky in ranked:
                ranked.remove(sticky)
                ranked.insert(0, sticky)
            return sorted(ranked, key=lambda url: self._down_until.get(url, 0.0) > now)

    def _mark(self, url: str, up: bool) -> None:
        with self._lock:
            if up:
                self._down_until.pop(url, None)
            else:
                self._down_until[url] = time.monotonic() + self.retry_down_after_s

    def _post(self, session_id: str, path: str, payload: dict[str, Any], read_timeout: float) -> tuple[dict, list[str]]:
        """POST to the session's first reachable instance; returns the JSON and failover notes."""
        failures: list[str] = []
        for url in self.instances_for(session_id):
            try:
                status, data = self._request_answered(url, path, payload, read_timeout)
            except InstanceUnreachable as exc:
                logger.warning("sandbox %s unreachable for session %s: %s", url, _tag(session_id), exc)
                self._mark(url, up=False)
                failures.append(f"{url} ({exc.__cause__.__class__.__name__ if exc.__cause__ else 'unreachable'})")
                continue
            self._mark(url, up=True)  # it answered
            if status == 400:
                raise SandboxRequestError(f"{url}{path}: {data.get('error', data)}")
            if status == 503 and data.get("code") == "capacity":  # full right now: try the next one
                failures.append(f"{url} (HTTP 503: {str(data.get('error', data))[:200]})")
                continue
            if status == 503:
                raise SandboxUnavailableError(f"{url}{path} could not serve the request within {self.store_retry_s:g} s: "
                                              f"{data.get('error', data)}")
            if status != 200:
                raise SandboxServerError(f"{url}{path}: HTTP {status}: {str(data.get('error', data))[:500]}")
            with self._lock:
                self._sticky[session_id] = url
            notes = [f"sandbox instance {failure} failed; session continued on {url}" for failure in failures]
            return data, notes
        raise SandboxUnavailableError(f"no sandbox instance reachable for {path}: {'; '.join(failures)}")

    def _request_answered(self, url: str, path: str, payload: dict[str, Any], read_timeout: float) -> tuple[int, dict]:
        """One instance's answer, retrying there (after ``Retry-After``) while it says its state
        store is unavailable, for up to ``store_retry_s``; raises :class:`InstanceUnreachable`."""
        deadline = time.monotonic() + self.store_retry_s
        while True:
            status, data = self._http.request(url, "POST", path, payload, read_timeout)
            if not isinstance(data, dict):
                data = {"error": str(data)}
            if status != 503 or data.get("code") != "store_unavailable":
                return status, data
            wait = float(data.get("retry_after_s", 1))
            if time.monotonic() + wait > deadline:
                return status, data
            time.sleep(wait)

    # ----------------------------------------------------------------- API
    def open_session(self, session_id: str, images: Sequence[bytes | Image.Image] = ()) -> dict:
        """Start a fresh session whose kernel holds ``image_1 … image_N`` (PIL images).

        ``images``: PIL images, or PNG/JPEG/GIF/BMP/TIFF/WebP file bytes. Earlier state under
        ``session_id`` is discarded. The instance reserves one of its ``max_sessions`` slots
        (evicting its least recently used idle session, or waiting up to ``open_timeout_s``;
        HTTP 503 sends the open to the next instance) and stores the images with the session;
        no kernel is bound yet: the first :meth:`execute` binds a fresh one, which loads the
        images before the code runs, within that call's ``timeout``. Returns ``{session_id,
        images, instance, notes}``; raises :class:`SandboxRequestError` for a file that is not
        an image (one that only looks like one fails at the first :meth:`execute`) and
        :class:`SandboxUnavailableError` when no instance can take the session.
        """
        encoded = [base64.b64encode(_image_bytes(image)).decode("ascii") for image in images]
        data, notes = self._post(session_id, "/sessions/open", {"session_id": session_id, "images": encoded},
                                 self.request_timeout_s)
        data["notes"] = notes + list(data.get("notes", []))
        return data

    def execute(self, session_id: str, code: str, timeout: float | None = None) -> ExecutionResult:
        """Run ``code`` in the session; errors, timeouts and denials come back in the result."""
        payload: dict[str, Any] = {"session_id": session_id, "code": code}
        if timeout is not None:
            payload["timeout"] = timeout
        read_timeout = (timeout or self.default_timeout_s) + self.request_timeout_s
        data, notes = self._post(session_id, "/jupyter_sandbox", payload, read_timeout)
        result = ExecutionResult.from_wire(data)
        result.notes = notes + result.notes
        return result

    def close_session(self, session_id: str) -> None:
        """End the session and delete its state (kernel and Redis snapshot)."""
        try:
            self._post(session_id, "/sessions/close", {"session_id": session_id}, self.request_timeout_s)
        finally:
            with self._lock:
                self._sticky.pop(session_id, None)

    def health(self) -> dict[str, dict | None]:
        """Each instance's ``/health`` answer, or None where it is unreachable."""
        report: dict[str, dict | None] = {}
        for url in self.urls:
            try:
                status, data = self._http.request(url, "GET", "/health", None, _HEALTH_TIMEOUT_S)
            except InstanceUnreachable:
                status, data = 0, None
            report[url] = data if status == 200 else None
            self._mark(url, up=status == 200)
        return report

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
