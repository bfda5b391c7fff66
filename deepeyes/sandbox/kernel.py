"""One sandboxed Jupyter kernel: its process, its ZMQ client, and one execute round trip.

We launch ``ipykernel`` ourselves (instead of ``KernelManager``) because the launch command
is a chain of isolation tools (see :mod:`deepeyes.sandbox.isolation`) and the kernel must use
ZMQ ``ipc`` sockets to be reachable from outside its empty network namespace.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from deepeyes.sandbox.config import SandboxSecurityConfig
from deepeyes.sandbox.isolation import isolation_prefix
from deepeyes.sandbox.result import CappedText, strip_ansi

logger = logging.getLogger(__name__)

KERNEL_SIDE_SOURCE = (Path(__file__).with_name("kernel_side.py")).read_text(encoding="utf-8")
#: Loads ``kernel_side.py`` as its own module (so its imports are library imports, not user
#: imports) and binds its entry point as a hidden name of the user namespace.
_BOOTSTRAP = f"""
def _deepeyes_bootstrap():
    import sys, types
    module = types.ModuleType("_deepeyes_kernel")
    sys.modules[module.__name__] = module
    exec(compile({KERNEL_SIDE_SOURCE!r}, "<deepeyes-sandbox>", "exec"), module.__dict__)
    shell = get_ipython()
    shell.user_ns["__deepeyes__"] = module.__deepeyes__
    shell.user_ns_hidden["__deepeyes__"] = module.__deepeyes__
_deepeyes_bootstrap()
del _deepeyes_bootstrap
"""
_POLL_S = 0.2  # how often a waiting execute checks that the kernel process is still alive
_START_TIMEOUT_S = 120.0


class KernelDied(RuntimeError):
    """The kernel process exited (killed, out of memory, CPU limit, ``os._exit``).

    ``started`` says whether the code had begun running; if not, it is safe to run it again
    on a replacement kernel.
    """

    def __init__(self, message: str, started: bool = True):
        super().__init__(message)
        self.started = started


class KernelHung(RuntimeError):
    """The kernel did not come back from an interrupt within the grace period."""


class KernelCallError(RuntimeError):
    """A ``__deepeyes__`` helper raised inside the kernel."""


@dataclass
class KernelOutput:
    """Everything one execute request produced, before it becomes an ``ExecutionResult``."""

    stdout: CappedText
    stderr: CappedText
    result: str = ""
    images: list[str] = field(default_factory=list)  # base64 PNG as sent by the kernel
    error_name: str = ""
    error_value: str = ""
    timed_out: bool = False
    user_expressions: dict[str, Any] = field(default_factory=dict)


@dataclass
class KernelLayout:
    """A kernel's private directory: connection file and sockets, home, session files."""

    root: Path

    @property
    def connection_file(self) -> Path:
        return self.root / "connection.json"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        """TMPDIR of the kernel (library scratch files stay out of the session directory)."""
        return self.root / "home" / "tmp"

    @property
    def workdir(self) -> Path:
        """The session directory: the kernel's cwd and the only place it may write."""
        return self.root / "work"

    @property
    def snapshot_file(self) -> Path:
        """Where the kernel leaves the snapshot delta of its last successful user cell."""
        return self.root / "home" / "snapshot.json"

    @property
    def inputs(self) -> Path:
        """Files the server hands to the kernel (session images, snapshots to restore)."""
        return self.root / "inputs"


class SandboxKernel:
    """A started kernel; not thread-safe (the session that owns it serialises calls)."""

    def __init__(self, layout: KernelLayout, uid: int | None, security: SandboxSecurityConfig,
                 isolated: bool, install_settings: dict[str, Any], env: dict[str, str]):
        self.layout = layout
        self.uid = uid
        self.name = layout.root.name
        self._security = security
        self._isolated = isolated
        self._install_settings = install_settings
        self._env = env
        self.process: subprocess.Popen | None = None
        self.client: BlockingKernelClient | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> SandboxKernel:
        layout = self.layout
        for directory in (layout.root, layout.home, layout.tmp, layout.workdir, layout.inputs):
            directory.mkdir(parents=True, exist_ok=True)
        _, info = write_connection_file(
            str(layout.connection_file), ip=str(layout.root / "zmq"), transport="ipc",
            key=secrets.token_hex(16).encode(),
        )
        if self.uid is not None:
            for path in (layout.root, layout.home, layout.tmp, layout.workdir, layout.connection_file):
                os.chown(path, self.uid, self.uid)
        os.chmod(layout.root, 0o700)
        os.chmod(layout.inputs, 0o755)
        argv = [*isolation_prefix(self._security, self._isolated, self.uid or 0, layout.root / "mounts"),
                sys.executable, "-m", "ipykernel_launcher", "-f", str(layout.connection_file),
                "--HistoryManager.enabled=False", "--IPKernelApp.quiet=True"]
        with open(layout.root / "kernel.log", "ab") as log:
            self.process = subprocess.Popen(argv, env=self._env, cwd=layout.workdir, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        client = BlockingKernelClient()
        client.load_connection_info(info)
        client.start_channels()
        self.client = client
        self._wait_ready()
        bootstrap = self.execute(_BOOTSTRAP, timeout=60, silent=True, store_history=False)
        if bootstrap.error_name:
            raise KernelCallError(f"kernel bootstrap failed: {bootstrap.stderr.value()}")
        self.call(f"__deepeyes__.install({self._install_settings!r})", timeout=_START_TIMEOUT_S)
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.alive():
                raise KernelDied(f"kernel {self.name} exited during start-up; see {self.layout.root / 'kernel.log'}")
            try:
                self.client.wait_for_ready(timeout=1)  # type: ignore[union-attr]
                return
            except RuntimeError:
                continue
        raise TimeoutError(f"kernel {self.name} did not start within {_START_TIMEOUT_S:.0f} s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def interrupt(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)

    def shutdown(self) -> None:
        """Kill the kernel (it never holds state worth a graceful exit) and remove its files."""
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.layout.root, ignore_errors=True)

    # ----------------------------------------------------------------- execution
    def execute(self, code: str, timeout: float, *, silent: bool = False, store_history: bool = True,
                user_expressions: dict[str, str] | None = None, interrupt_grace_s: float = 3.0,
                max_output_chars: int = 20000) -> KernelOutput:
        """Run ``code`` and collect its output; interrupt it after ``timeout`` seconds.

        Raises :class:`KernelDied` if the process exits and :class:`KernelHung` if it does not
        answer an interrupt within ``interrupt_grace_s``; in both cases the kernel is unusable.
        """
        client = self.client
        if client is None or not self.alive():
            raise KernelDied(f"kernel {self.name} is not running", started=False)
        out = KernelOutput(stdout=CappedText(max_output_chars), stderr=CappedText(max_output_chars))
        msg_id = client.execute(code, silent=silent, store_history=store_history,
                                user_expressions=user_expressions or {}, allow_stdin=False, stop_on_error=False)
        deadline = time.monotonic() + timeout
        started = False
        while True:
            now = time.monotonic()
            if now >= deadline:
                if out.timed_out:
                    raise KernelHung(f"kernel {self.name} did not return within {interrupt_grace_s:.0f} s of an interrupt")
                out.timed_out = True
                self.interrupt()
                deadline = now + interrupt_grace_s
            try:
                msg = client.get_iopub_msg(timeout=min(_POLL_S, max(deadline - now, 0.001)))
            except queue.Empty:
                if not self.alive():
                    raise KernelDied(f"kernel {self.name} died (exit code {self.process.returncode})",  # type: ignore[union-attr]
                                     started=started) from None
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            started = True
            if self._absorb(msg, out):
                break
        out.user_expressions = self._reply(msg_id, deadline=time.monotonic() + max(interrupt_grace_s, 5.0))
        return out

    def _absorb(self, msg: dict[str, Any], out: KernelOutput) -> bool:
        """Fold one IOPub message into ``out``; True once the kernel is idle again."""
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            (out.stdout if content.get("name") == "stdout" else out.stderr).add(content.get("text", ""))
        elif kind in ("display_data", "execute_result"):
            data = content.get("data", {})
            if "image/png" in data:
                out.images.append(data["image/png"])
            elif kind == "execute_result":
                out.result = data.get("text/plain", "")
        elif kind == "error":
            out.error_name, out.error_value = content.get("ename", ""), content.get("evalue", "")
            lines = (strip_ansi(line).rstrip("\n") for line in content.get("traceback", []))
            out.stderr.add("\n".join(line for line in lines if line) + "\n")
        elif kind == "status":
            return content.get("execution_state") == "idle"
        return False

    def _reply(self, msg_id: str, deadline: float) -> dict[str, Any]:
        """The execute_reply's ``user_expressions`` (sent just before the idle status)."""
        while time.monotonic() < deadline:
            try:
                reply = self.client.get_shell_msg(timeout=_POLL_S)  # type: ignore[union-attr]
            except queue.Empty:
                if not self.alive():
                    raise KernelDied(f"kernel {self.name} died") from None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"].get("user_expressions", {}) or {}
        raise KernelHung(f"kernel {self.name} sent no execute reply")

    def take_snapshot(self) -> dict[str, Any] | None:
        """The delta the last successful user cell left behind (None after a failed cell)."""
        try:
            text = self.layout.snapshot_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        self.layout.snapshot_file.unlink(missing_ok=True)
        try:
            delta = json.loads(text)
        except ValueError as exc:
            raise KernelCallError(f"unreadable snapshot from kernel {self.name}: {exc}") from exc
        if "error" in delta:
            raise KernelCallError(f"snapshot failed in the kernel: {delta['error']}")
        return delta

    def call(self, expression: str, timeout: float = 60.0) -> dict[str, Any]:
        """Evaluate a ``__deepeyes__`` helper and parse the JSON it returns."""
        out = self.execute("", timeout=timeout, silent=True, store_history=False,
                           user_expressions={"value": expression})
        return _parse_expression(out.user_expressions.get("value"), expression)


def _parse_expression(value: dict[str, Any] | None, expression: str) -> dict[str, Any]:
    """Decode a user-expression result whose repr is JSON (see ``kernel_side._JsonReply``)."""
    if not value or value.get("status") != "ok":
        detail = f"{value.get('ename')}: {value.get('evalue')}" if value else "no reply"
        raise KernelCallError(f"{expression.partition('(')[0]} failed in the kernel: {detail}")
    return json.loads(value["data"]["text/plain"])
