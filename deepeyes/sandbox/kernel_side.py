"""Code that runs *inside* each sandbox kernel (sent as source text, never imported there).

The template process (``template.py``) executes this file in every kernel it forks and
calls ``__deepeyes__.install(settings)`` before the kernel answers its first request.  It must only use the standard library and the packages
the kernel already has (cloudpickle, PIL), because the kernel cannot import ``deepeyes``
(the repository is outside its read allowlist).

It provides four things the server needs from inside the kernel:

* ``install``: preload modules, inline figures, the output cap (a request's output is cut
  here, as it streams, so the server never receives more than the cap), and the best-effort
  policy guards (an audit hook for process, network and file access, and an import
  allowlist for user code);
* ``attach``: give a session its ``image_1 … image_N`` (and the snapshot that holds them);
* ``snapshot``: the user namespace as per-name cloudpickle blobs, sending only names whose
  pickle changed since the last snapshot (all of them with ``full``, when the server's store
  lost the earlier ones), and listing names that cannot be pickled; after
  every successful user cell it is also written to ``snapshot_file`` (a ``post_run_cell``
  hook), which the server reads once the kernel is idle: no extra message, no formatter;
* ``restore``: load a snapshot written by the server into the user namespace.
"""

import base64
import builtins
import importlib
import json
import os
import pickle
import sys
import threading

import cloudpickle
from IPython import get_ipython

# The functions the snapshot and restore call, bound before any user code runs: user code may
# import these modules and reassign their attributes (``json.dumps = ...``), which must not
# break its own session's snapshots.
_json_dumps = json.dumps
_b64encode = base64.b64encode
_pickle_dumps = cloudpickle.dumps
_pickle_loads = cloudpickle.loads
_load_blobs = pickle.load

_WRITE_MODE_CHARS = set("wax+")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PROCESS_EVENTS = {
    "os.system": "running shell commands",
    "os.exec": "exec of another program",
    "os.posix_spawn": "spawning processes",
    "os.spawn": "spawning processes",
    "os.fork": "fork",
    "os.forkpty": "fork",
    "subprocess.Popen": "subprocesses",
    "pty.spawn": "spawning processes",
}
#: Native-code routes (ctypes, and numpy.ctypeslib, which hands out ctypes): loading a library,
#: looking up a C function, reading or wrapping raw memory. Any of them reaches ``setsid``,
#: ``fork`` or ``mount`` without an audit event of its own. CPython audits these steps, not
#: each foreign call, so ctypes' ready-made raw-memory writers are replaced as well
#: (``_RAW_MEMORY_FUNCTIONS``). ctypes itself stays importable for libraries (scipy and
#: pandas import it); a function pointer built from a bare address is not audited by CPython,
#: which is why the PID namespace, uid and rlimits, not this hook, are the boundary.
_NATIVE_EVENTS = {"ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function", "ctypes.cdata",
                  "ctypes.cdata/buffer", "ctypes.string_at", "ctypes.wstring_at", "ctypes.PyObj_FromPtr"}
#: Modules that create processes or call C without an audit event: replaced in ``sys.modules``,
#: and wherever another module holds them, by a module whose every attribute refuses; importing
#: them again is refused.
_UNAUDITED_NATIVE_MODULES = ("_posixsubprocess", "_xxsubinterpreters", "_testcapi", "_testinternalcapi")
_RAW_MEMORY_FUNCTIONS = ("memmove", "memset")
_NETWORK_EVENTS = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                   "socket.gethostbyname", "socket.gethostbyaddr"}
_PATH_WRITE_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink",
                      "os.link", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
_PATH_READ_EVENTS = {"os.listdir", "os.scandir", "glob.glob"}
#: Objects not worth snapshotting: pickling a matplotlib figure costs more than drawing it,
#: and every plotting call makes new ones. They are reported like unpicklable names.
_NOT_SNAPSHOTTED_MODULES = ("matplotlib.",)
#: Values that cannot change in place: unchanged identity means an unchanged pickle.
_IMMUTABLE_TYPES = (int, float, complex, bool, str, bytes, type(None), frozenset, range)


class SandboxPolicyError(PermissionError):
    """Raised by the guards; the message starts with ``sandbox policy:`` so callers can tell."""


class _Policy:
    """The guards' rules. Deliberately not reachable from ``__deepeyes__`` (user code sees that
    name) and with immutable collections, so switching them off takes more than an attribute."""

    def __init__(self, read_roots, write_roots, import_allowlist):
        self.read_roots = tuple(os.path.realpath(p) for p in read_roots)
        self.write_roots = tuple(os.path.realpath(p) for p in write_roots)
        self.import_allowlist = frozenset(import_allowlist)

    def _inside(self, path, roots):
        if isinstance(path, int):
            return True  # an already-open descriptor was checked when it was opened
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        real = os.path.realpath(os.fspath(path))
        return real in ("/dev/null", "/dev/urandom", "/dev/random") or any(
            real == root or real.startswith(root + os.sep) for root in roots
        )

    def check_read(self, path):
        if not self._inside(path, self.read_roots + self.write_roots):
            raise SandboxPolicyError(f"sandbox policy: reading '{path}' is not allowed (outside the session directory and the read allowlist)")

    def check_write(self, path):
        if not self._inside(path, self.write_roots):
            raise SandboxPolicyError(f"sandbox policy: writing '{path}' is not allowed; write files only inside the session directory {self.write_roots[0]}")

    def audit(self, event, args):
        if event == "open":
            path, mode, flags = args
            if path is None:
                return
            writing = (isinstance(mode, str) and bool(_WRITE_MODE_CHARS & set(mode))) or (
                mode is None and isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
            (self.check_write if writing else self.check_read)(path)
        elif event in _PROCESS_EVENTS:
            raise SandboxPolicyError(f"sandbox policy: {_PROCESS_EVENTS[event]} is not allowed ({event})")
        elif event in _NATIVE_EVENTS:
            raise SandboxPolicyError(f"sandbox policy: calling native code through ctypes is not allowed ({event})")
        elif event == "import" and args and args[0] in _UNAUDITED_NATIVE_MODULES:
            raise SandboxPolicyError(f"sandbox policy: importing '{args[0]}' is not allowed")
        elif event in _NETWORK_EVENTS:
            raise SandboxPolicyError(f"sandbox policy: network access is not allowed ({event})")
        elif event in _PATH_WRITE_EVENTS:
            for path in args[:2]:
                if isinstance(path, (str, bytes, os.PathLike)):
                    self.check_write(path)
        elif event in _PATH_READ_EVENTS and args and isinstance(args[0], (str, bytes, os.PathLike)):
            self.check_read(args[0])

    def guarded_import(self, original):
        def __import__(name, globals=None, locals=None, fromlist=(), level=0):
            if level == 0 and globals is not None and globals.get("__name__") == "__main__":
                top = name.partition(".")[0]
                if top not in self.import_allowlist:
                    raise SandboxPolicyError(
                        f"sandbox policy: importing '{top}' is not allowed; allowed modules: "
                        + ", ".join(sorted(self.import_allowlist)))
            return original(name, globals, locals, fromlist, level)
        return __import__


#: An error's execute reply repeats its traceback (IOPub's copy is the one the server reads).
_MAX_TRACEBACK_LINES = 100


class _OutputCap:
    """Caps what one execute request sends back, here in the kernel, before it is serialised.

    Installed as the kernel session's ``send``, the one door of every message (streams,
    results, displays, errors, and the execute reply, which repeats an error), so a 100 MB
    print leaves the kernel as ``cap`` characters and never reaches the server whole.
    stdout, stderr (tracebacks included, as the server files them there) and the result each
    keep their first ``cap`` characters per request; other text payloads are cut at ``cap``.
    How much was dropped rides on the request's ``idle`` status as ``output_cut`` ({field:
    characters}), which the server turns into its usual truncation note. Streams are flushed
    from ipykernel's IO thread, hence the lock.
    """

    def __init__(self, send, cap):
        self._send = send
        self.cap = cap
        self._lock = threading.Lock()
        self._requests = {}  # parent msg_id -> {"kept": {field: chars}, "dropped": {field: chars}}

    def _take(self, parent_id, field, text):
        """The part of ``text`` that fits ``field``'s remaining room for this request."""
        with self._lock:
            state = self._requests.setdefault(parent_id, {"kept": {}, "dropped": {}})
            kept = state["kept"].get(field, 0)
            part = text[: max(0, self.cap - kept)]
            state["kept"][field] = kept + len(part)
            if len(part) < len(text):
                state["dropped"][field] = state["dropped"].get(field, 0) + len(text) - len(part)
            return part

    def _finish(self, parent_id):
        with self._lock:
            state = self._requests.pop(parent_id, None)
        return state["dropped"] if state else {}

    def __call__(self, stream, msg_or_type, content=None, parent=None, ident=None, buffers=None, track=False,
                 header=None, metadata=None):
        if isinstance(msg_or_type, dict):
            msg_type, body = msg_or_type["header"]["msg_type"], msg_or_type["content"]
            parent_id = msg_or_type.get("parent_header", {}).get("msg_id")
        else:
            msg_type, body = msg_or_type, content if content is not None else {}
            parent_header = (parent or {}).get("header", parent or {})
            parent_id = parent_header.get("msg_id")
        if msg_type == "stream":
            body["text"] = self._take(parent_id, body.get("name", "stdout"), body.get("text", ""))
            if not body["text"]:
                return None
        elif msg_type in ("execute_result", "display_data"):
            data = body.get("data", {})
            for mime, value in list(data.items()):
                if isinstance(value, str) and not mime.startswith("image/"):
                    data[mime] = self._take(parent_id, "result", value) if (
                        msg_type == "execute_result" and mime == "text/plain") else value[: self.cap]
        elif msg_type == "error":
            body["evalue"] = str(body.get("evalue", ""))[: self.cap]
            kept = [self._take(parent_id, "stderr", line + "\n") for line in body.get("traceback", [])]
            body["traceback"] = [line.removesuffix("\n") for line in kept if line]
        elif msg_type == "execute_reply" and body.get("status") == "error":  # it repeats the error
            body["evalue"] = str(body.get("evalue", ""))[: self.cap]
            body["traceback"] = [line[: self.cap] for line in body.get("traceback", [])[:_MAX_TRACEBACK_LINES]]
        elif msg_type == "status" and body.get("execution_state") == "idle":
            dropped = self._finish(parent_id)
            if dropped:
                body["output_cut"] = dropped
        return self._send(stream, msg_or_type, content=content, parent=parent, ident=ident, buffers=buffers,
                          track=track, header=header, metadata=metadata)


class _JsonReply:
    """The JSON the server reads back (its repr *is* the JSON, so IPython returns it verbatim)."""

    def __init__(self, payload):
        self.payload = payload
        self.text = _json_dumps(payload)

    def __repr__(self):
        return self.text


def _sealed_module(name):
    """A stand-in for module ``name`` whose every public attribute refuses (dunder names are simply
    missing, so introspection and the import system see an empty module)."""
    sealed = type(sys)(name)

    def refuse(attribute):
        if attribute.startswith("__") and attribute.endswith("__"):
            raise AttributeError(attribute)
        return _refusing(f"{name}.{attribute}")
    sealed.__getattr__ = refuse
    return sealed


def _refusing(qualified_name):
    def refused(*args, **kwargs):
        raise SandboxPolicyError(f"sandbox policy: '{qualified_name}' is not allowed (native code without an audit event)")
    return refused


def _seal_unaudited_modules():
    """Replace the already imported modules of ``_UNAUDITED_NATIVE_MODULES`` (and the references
    other modules hold to them) by empty modules whose every attribute refuses."""
    ctypes_module = sys.modules.get("ctypes")
    if ctypes_module is not None:
        for name in _RAW_MEMORY_FUNCTIONS:
            setattr(ctypes_module, name, _refusing(f"ctypes.{name}"))
    for name in _UNAUDITED_NATIVE_MODULES:
        real = sys.modules.get(name)
        sealed = sys.modules[name] = _sealed_module(name)
        if real is None:
            continue
        for module in list(sys.modules.values()):  # e.g. subprocess._posixsubprocess
            namespace = getattr(module, "__dict__", None)
            if isinstance(namespace, dict) and namespace.get(name) is real:
                namespace[name] = sealed


class KernelSide:
    def __init__(self):
        #: name -> (id, blob) of the last snapshot sent; comparing blobs (a memcmp) is cheaper
        #: than hashing them, at the price of one pickled copy of the namespace in memory.
        self.saved = {}
        #: name -> (id, reason) of values that failed to pickle, so they are not retried each call
        #: (a failed pickle can be slow: it walks the object graph before giving up).
        self.unpicklable = {}
        self.reported_unpicklable = set()  # so each unpicklable name is announced once
        self.max_snapshot_bytes = 0
        self.snapshot_fd = None
        self.guards = False

    def install(self, settings):
        shell = get_ipython()
        for module in settings["preload_modules"]:
            importlib.import_module(module)
        if "matplotlib.pyplot" in sys.modules:
            shell.run_line_magic("matplotlib", "inline")
        shell.run_line_magic("xmode", "Plain")
        session = shell.kernel.session
        session.send = _OutputCap(session.send, settings["max_output_chars"])
        self.max_snapshot_bytes = settings["max_snapshot_bytes"]
        if settings["snapshot_file"]:  # opened now, before the guards (it is outside the write roots)
            self.snapshot_fd = os.open(settings["snapshot_file"], os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            shell.events.register("post_run_cell", self._snapshot_after_cell)
        if settings["audit_guards"]:
            policy = _Policy(settings["read_roots"], settings["write_roots"], settings["import_allowlist"])
            builtins.__import__ = policy.guarded_import(builtins.__import__)
            _seal_unaudited_modules()
            sys.addaudithook(policy.audit)
            self.guards = True

    def status(self):
        """Proof that ``install`` ran: the server asks this before handing the kernel out.

        ``pid`` is the kernel's pid as the server sees it (in its own PID namespace the kernel
        is pid 1; ``/proc`` is still the host's, whose ``self`` names the host pid).
        """
        return _JsonReply({"pid": int(os.readlink("/proc/self")), "guards": self.guards})

    def attach(self, image_paths):
        """Load the session images and return the snapshot that saves them (one round trip)."""
        from PIL import Image

        shell = get_ipython()
        for index, path in enumerate(image_paths, start=1):
            image = Image.open(path)
            image.load()
            shell.user_ns[f"image_{index}"] = image
        return _JsonReply({"images": len(image_paths), "snapshot": self.snapshot().payload})

    def _user_names(self):
        shell = get_ipython()
        hidden = shell.user_ns_hidden
        return {n: v for n, v in shell.user_ns.items() if not n.startswith("_") and n not in hidden}

    def _pickle(self, name, value):
        """The value's pickle, or None with the reason recorded in ``self.unpicklable``."""
        failed = self.unpicklable.get(name)
        if failed and failed[0] == id(value):
            return None
        if type(value).__module__.startswith(_NOT_SNAPSHOTTED_MODULES):
            self.unpicklable[name] = (id(value), f"{type(value).__name__}: plotting objects are not snapshotted")
            return None
        try:
            blob = _pickle_dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - any pickling failure means "cannot be saved"
            self.unpicklable[name] = (id(value), f"{type(value).__name__}: {type(exc).__name__}")
            return None
        if len(blob) > self.max_snapshot_bytes:
            self.unpicklable[name] = (id(value), f"{type(value).__name__}: {len(blob)} bytes is over the snapshot limit")
            return None
        return blob

    def snapshot(self, full=False):
        if full:  # every name counts as changed, every unpicklable one is listed again
            self.saved = {}
        changed, saved, unpicklable = {}, {}, {}
        for name, value in self._user_names().items():
            previous = self.saved.get(name)
            if previous and previous[0] == id(value) and (
                isinstance(value, _IMMUTABLE_TYPES) or type(value).__name__ == "module"
            ):
                saved[name] = previous
                continue
            blob = self._pickle(name, value)
            if blob is None:
                unpicklable[name] = self.unpicklable[name][1]
                continue
            self.unpicklable.pop(name, None)
            saved[name] = (id(value), blob)
            if not previous or previous[1] != blob:
                changed[name] = _b64encode(blob).decode("ascii")
        deleted = sorted(set(self.saved) - set(saved) - set(unpicklable))
        newly_unpicklable = sorted(set(unpicklable) - self.reported_unpicklable)
        unpicklable_changed = set(unpicklable) != self.reported_unpicklable
        self.saved, self.reported_unpicklable = saved, set(unpicklable)
        return _JsonReply({"changed": changed, "deleted": deleted, "unpicklable": unpicklable,
                          "newly_unpicklable": newly_unpicklable, "unpicklable_changed": unpicklable_changed})

    def _snapshot_after_cell(self, result):
        """Leave the cell's snapshot delta in the snapshot file (the server reads and empties it)."""
        if not result.success:
            return
        try:
            text = self.snapshot().text
        except Exception as exc:  # noqa: BLE001 - reported to the server instead of the user's output
            text = _json_dumps({"error": f"{type(exc).__name__}: {exc}"})
        for attempt in (text, _json_dumps({"error": "the snapshot could not be written (file size limit)"})):
            try:
                data = attempt.encode("utf-8")
                os.ftruncate(self.snapshot_fd, 0)
                if os.pwrite(self.snapshot_fd, data, 0) == len(data):
                    return
            except OSError:
                continue

    def restore(self, path):
        with open(path, "rb") as handle:
            blobs = _load_blobs(handle)  # a dict of bytes written by the server
        shell = get_ipython()
        restored, failed = [], {}
        for name, blob in blobs.items():
            try:
                value = _pickle_loads(blob)
            except Exception as exc:  # noqa: BLE001 - report every name that does not come back
                failed[name] = f"{type(exc).__name__}: {exc}"
                continue
            shell.user_ns[name] = value
            restored.append(name)
            self.saved[name] = (id(value), blob)
        return _JsonReply({"restored": sorted(restored), "failed": failed})


__deepeyes__ = KernelSide()
