"""The template process: heavy imports done once, every sandbox kernel a fresh fork of it.

Starting a kernel from scratch (interpreter, ipykernel, numpy, PIL, matplotlib) costs seconds
of CPU; a fork of a process that already imported them costs a few milliseconds plus
ipykernel's own set-up (about 0.2 s of CPU), and the forked kernels share the imported code
with the template copy-on-write, so a kernel costs a fraction of a cold one's memory.

Isolation by construction: the template never runs user code, never starts threads, sockets
or a ZMQ context, so each fork starts from the same pristine state: no variables, module
state, monkey-patches, environment, files or handles of any earlier session can exist in it.

Run by path (``python template.py --fd N``), never imported: kernels must not carry
``deepeyes`` modules. It speaks JSON lines over the inherited Unix socket ``N``:

* on start-up it sends ``{"ready": true, "pid": …}``;
* each request ``{"connection_file", "workdir", "home", "log", "uid", "private_ns", "keep_paths",
  "quota_bytes", "start_nice", "rlimits", "env", "install"}`` forks one kernel and is answered ``{"pid": …}`` with a pidfd of the kernel
  attached (``SCM_RIGHTS``), so the server can signal and watch it without pid-reuse races;
  a failed fork is answered ``{"error": …}``.

When isolated (``private_ns``), the fork goes into a new PID namespace (``unshare(CLONE_NEWPID)``
just before it, ``setns`` back to the template's own right after), where the kernel is
process 1: when it exits, the kernel kills every process left in the namespace, whatever
session or process group they made for themselves.

The child, before any user code can run: starts its own session (process group), points its
stdio at the kernel log, closes every inherited descriptor, enters a network namespace and a
mount namespace of its own with empty private ``/tmp``, ``/var/tmp`` and ``/dev/shm`` (when
isolated: no earlier kernel's files, even where the audit hook was bypassed) and its home on
a tmpfs of ``quota_bytes`` holding its session directory (a session cannot fill the disk),
sets its rlimits, drops root for its kernel uid with ``no_new_privs``,
asks to be killed with the template, replaces its environment, then starts ipykernel and
installs ``kernel_side.py`` (preloads, inline figures, policy guards).
The template exits when its parent (the server) is gone; its kernels die with it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib
import json
import os
import resource
import select
import signal
import socket
import sys
import threading
import traceback
import types

_CLONE_NEWNET = 0x40000000
_CLONE_NEWNS = 0x00020000
_CLONE_NEWPID = 0x20000000
#: World-writable directories, replaced per kernel by an empty tmpfs (the kernel's memory limit
#: does not cover tmpfs pages, hence the size cap).
_PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")
_PRIVATE_TMP_OPTIONS = b"mode=1777,size=64m"
_MS_BIND, _MS_REC = 4096, 16384
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_RLIMITS = {"as": resource.RLIMIT_AS, "cpu": resource.RLIMIT_CPU, "core": resource.RLIMIT_CORE,
            "nproc": resource.RLIMIT_NPROC, "fsize": resource.RLIMIT_FSIZE}
_LIBC = ctypes.CDLL(None, use_errno=True)
#: What ipykernel and kernel_side.py import while a kernel starts: imported once here instead
#: of in every kernel (found by diffing ``sys.modules`` before and after a kernel's start-up).
_KERNEL_MODULES = (
    "cloudpickle", "PIL.Image", "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell",
    "ipykernel.debugger", "matplotlib_inline.backend_inline", "IPython.core.completerlib", "IPython.core.debugger",
    "IPython.extensions.storemagic", "tornado.gen", "tornado.locks", "tornado.queues", "tornado.platform.asyncio",
    "pdb", "pydoc", "code", "faulthandler", "mimetypes", "http.server", "xmlrpc.server", "email.parser",
)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _private_tmp(keep_paths: list[str]) -> None:
    """Cover the world-writable directories with empty tmpfs, binding back the kernel's own
    directories that live below them (its session directory, the font cache)."""
    kept = [(path, os.open(path, os.O_PATH)) for path in keep_paths]
    for root in _PRIVATE_TMP:
        if not os.path.isdir(root) or os.path.islink(root):
            continue
        _check(_LIBC.mount(b"tmpfs", root.encode(), b"tmpfs", 0, _PRIVATE_TMP_OPTIONS), f"mount tmpfs on {root}")
        for path, fd in kept:
            if path.startswith(root + "/"):
                os.makedirs(path, mode=0o755, exist_ok=True)
                _check(_LIBC.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, _MS_BIND | _MS_REC, None),
                       f"bind {path}")
    for _, fd in kept:
        os.close(fd)


def _private_home(home: str, workdir: str, uid: int | None, quota_bytes: int) -> None:
    """Put the kernel's home on a tmpfs of ``quota_bytes`` and its session directory inside it
    (bound onto ``workdir``): everything the kernel may write shares that one quota."""
    options = f"mode=0700,size={quota_bytes}" + (f",uid={uid},gid={uid}" if uid is not None else "")
    _check(_LIBC.mount(b"tmpfs", home.encode(), b"tmpfs", 0, options.encode()), f"mount tmpfs on {home}")
    session = os.path.join(home, "session")
    for path in (session, os.path.join(home, "tmp")):
        os.mkdir(path, 0o700)
        if uid is not None:
            os.chown(path, uid, uid)
    _check(_LIBC.mount(session.encode(), workdir.encode(), None, _MS_BIND, None), f"bind {session} on {workdir}")


def _cpu_time_exhausted(signum: int, _frame: object) -> None:
    os._exit(128 + signum)


def _host_ppid() -> int:
    """The parent's pid as the host sees it (``/proc`` is the host's; in its own PID namespace
    the kernel is pid 1 and ``os.getppid()`` is 0)."""
    with open("/proc/self/stat", "rb") as stat:
        return int(stat.read().rsplit(b")", 1)[1].split()[1])


def _become_kernel(request: dict, template_pid: int, kernel_side: str) -> None:
    """In the forked child: confine this process, then run ipykernel until it exits."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    if request["private_ns"]:
        _check(_LIBC.unshare(_CLONE_NEWNET | _CLONE_NEWNS), "unshare(CLONE_NEWNET | CLONE_NEWNS)")
        _private_tmp(request["keep_paths"])
        _private_home(request["home"], request["workdir"], request["uid"], request["quota_bytes"])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past RLIMIT_FSIZE a write fails (EFBIG) instead of killing
    os.chdir(request["workdir"])
    os.setpriority(os.PRIO_PROCESS, 0, request["start_nice"])  # the server resets it once the kernel is ready
    for name, (soft, hard) in request["rlimits"].items():
        resource.setrlimit(_RLIMITS[name], (soft, hard))
    # As process 1 of its PID namespace the kernel ignores signals it has no handler for, the
    # soft CPU limit's SIGXCPU included (the hard limit's SIGKILL still applies).
    signal.signal(signal.SIGXCPU, _cpu_time_exhausted)
    uid = request["uid"]
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        _check(_LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    # Set after the uid change, which clears it; then make sure the template did not already exit.
    _check(_LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if _host_ppid() != template_pid:
        os._exit(1)
    # The confinement is done: no user code may find the template's libc handle (its looked-up
    # functions, e.g. unshare and mount, would be callable without an audit event).
    globals().pop("_LIBC", None)
    os.environ.clear()
    os.environ.update(request["env"])
    if "tempfile" in sys.modules:
        sys.modules["tempfile"].tempdir = None  # re-read TMPDIR from the new environment

    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["-f", request["connection_file"], "--HistoryManager.enabled=False", "--IPKernelApp.quiet=True"])
    module = types.ModuleType("_deepeyes_kernel")
    sys.modules[module.__name__] = module
    exec(compile(kernel_side, "<deepeyes-sandbox>", "exec"), module.__dict__)  # noqa: S102 - our own source
    app.shell.user_ns["__deepeyes__"] = module.__deepeyes__
    app.shell.user_ns_hidden["__deepeyes__"] = module.__deepeyes__
    module.__deepeyes__.install(request["install"])
    app.start()


def _fork(request: dict, channel: socket.socket, kernel_side: str, own_pid_ns: int) -> None:
    template_pid = os.getpid()
    new_pid_ns = request["private_ns"]
    try:
        if new_pid_ns:  # the next child (only) is process 1 of a namespace of its own
            _check(_LIBC.unshare(_CLONE_NEWPID), "unshare(CLONE_NEWPID)")
        try:
            pid = os.fork()
        finally:
            if new_pid_ns and os.getpid() == template_pid:
                _check(_LIBC.setns(own_pid_ns, _CLONE_NEWPID), "setns(CLONE_NEWPID)")
    except OSError as exc:
        channel.sendall(json.dumps({"error": f"fork failed: {exc}"}).encode() + b"\n")
        return
    if pid == 0:
        status = 1
        try:
            channel.close()
            _become_kernel(request, template_pid, kernel_side)
            status = 0
        except BaseException:  # noqa: BLE001 - reported in the kernel log; the server sees the exit
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(status)
    pidfd = os.pidfd_open(pid)  # before any reaping, so it cannot name a recycled pid
    try:
        socket.send_fds(channel, [json.dumps({"pid": pid}).encode() + b"\n"], [pidfd])
    finally:
        os.close(pidfd)


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description="Sandbox kernel template process (started by the sandbox server).")
    parser.add_argument("--fd", type=int, required=True, help="inherited Unix socket to the server")
    parser.add_argument("--preload", default="[]", help="JSON list of modules to import once")
    parser.add_argument("--kernel_side", required=True, help="path of kernel_side.py")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us
    channel = socket.socket(fileno=args.fd)
    with open(args.kernel_side, encoding="utf-8") as handle:
        kernel_side = handle.read()
    for name in json.loads(args.preload):
        importlib.import_module(name)
    for name in _KERNEL_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # Objects of the template never change: keep the collector from touching (and so copying)
    # their pages in every kernel. This alone saves ~13 MB and ~40 ms of CPU per kernel.
    gc.freeze()
    if threading.active_count() != 1:
        raise RuntimeError(f"the template must be single-threaded to fork safely: {threading.enumerate()}")
    # Reap exited kernels at once (SIGCHLD wakes the loop), so none lingers as a zombie.
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    parent = os.getppid()
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    channel.sendall(json.dumps({"ready": True, "pid": os.getpid()}).encode() + b"\n")
    buffer = b""
    while os.getppid() == parent:
        _reap()
        readable, _, _ = select.select([channel, wake_read], [], [], 1.0)
        if wake_read in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 4096)
        if channel not in readable:
            continue
        data = channel.recv(1 << 16)
        if not data:
            break
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            _fork(json.loads(line), channel, kernel_side, own_pid_ns)
    os._exit(0)  # the kernels' PR_SET_PDEATHSIG takes them down with us


if __name__ == "__main__":
    main()
