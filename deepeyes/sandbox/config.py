"""Settings of the code sandbox (the ``sandbox:`` section of ``tool_manager_config.yaml``).

Every limit the sandbox enforces lives here so that one YAML section says what model-written
code may do; the server, the kernel pool and the client read it and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

#: Modules model-written code may import (top-level names; submodules follow their parent).
DEFAULT_IMPORT_ALLOWLIST: tuple[str, ...] = (
    "numpy", "PIL", "matplotlib", "cv2", "pandas", "scipy", "sympy", "skimage",
    "math", "cmath", "re", "json", "collections", "itertools", "functools", "operator",
    "statistics", "random", "decimal", "fractions", "datetime", "time", "string", "textwrap",
    "heapq", "bisect", "copy", "dataclasses", "enum", "typing", "io", "base64", "hashlib",
    "struct", "array", "pprint", "unicodedata", "os", "pathlib", "glob", "csv", "warnings",
    "numbers", "abc", "contextlib", "calendar", "colorsys", "zlib", "mpmath", "IPython",
)


@dataclass
class SandboxSecurityConfig:
    """What a kernel may do; see ``docs/sandbox.md`` for which guard is OS-enforced."""

    #: ``auto``: network namespace + unprivileged uid + rlimits when the machine allows it
    #: (root and a working ``unshare``), else rlimits only; ``required``: refuse to start
    #: without them; ``off``: rlimits only (for machines without namespaces).
    os_isolation: Literal["auto", "required", "off"] = "auto"
    #: In-kernel audit hooks (subprocess, fork/exec, sockets, files, imports): best-effort.
    audit_guards: bool = True
    memory_limit_mb: int = 4096  # RLIMIT_AS per kernel
    cpu_time_limit_s: int = 600  # RLIMIT_CPU per kernel (cumulative; a new kernel resets it)
    #: First uid of the range kernels run as (each kernel gets its own uid when isolated).
    kernel_uid_base: int = 200000
    #: Size of that range. A uid is leased for one kernel's lifetime through a lock file in
    #: ``uid_lock_dir``, so no two kernels on this host share one, whichever instance made them.
    kernel_uid_count: int = 65536
    #: Where the uid leases live (one lock file per uid; every instance of the host must use the same).
    uid_lock_dir: str = "/run/deepeyes-sandbox/uids"
    #: Bytes a session may write, in MB: its home and session directory are one private tmpfs
    #: of this size (with OS isolation; it counts as memory of the host, not of the kernel's
    #: ``memory_limit_mb``), and no file may grow past it (``RLIMIT_FSIZE``, also without).
    disk_quota_mb: int = 512
    import_allowlist: list[str] = field(default_factory=lambda: list(DEFAULT_IMPORT_ALLOWLIST))
    #: Extra path prefixes kernels may read (Python's own install, fonts and the session
    #: directory are always readable).
    read_allowlist: list[str] = field(default_factory=lambda: ["/usr/share", "/usr/lib", "/etc/fonts"])


@dataclass
class SandboxConfig:
    host: str = "127.0.0.1"
    ports: list[int] = field(default_factory=list)  # empty: start instances on free ports
    redis_host: str = "127.0.0.1"
    redis_port: int | None = None  # None: start a redis-server on a free port
    #: Forked kernels kept ready per instance (each costs memory like a session, see
    #: docs/sandbox.md); a burst of new sessions' first calls larger than this waits for
    #: forks (~0.2 s CPU each).
    pool_size: int = 2
    default_timeout_s: float = 30.0
    max_timeout_s: float = 600.0  # requests asking for more get HTTP 400
    #: Grace after an interrupt before the kernel is declared hung and replaced.
    interrupt_grace_s: float = 3.0
    session_ttl_s: float = 900.0  # idle sessions are snapshotted and their kernel freed
    #: Hard bound on live sessions (kernels) per instance: beyond it the least recently used
    #: idle session is snapshotted and evicted, or the caller waits for one to become idle.
    max_sessions: int = 32
    #: How long a session open may wait for a slot before HTTP 503, and a kernel replacement
    #: for a ready kernel; a call waits at most its own timeout instead.
    open_timeout_s: float = 30.0
    state_ttl_s: float = 86400.0  # how long a session's snapshot stays in Redis
    snapshot_after_call: bool = True  # needed to survive a lost kernel or instance
    max_snapshot_mb: float = 256.0  # names whose pickle is larger are reported, not stored
    max_output_chars: int = 20000  # stdout / stderr / result, each
    max_images: int = 10  # per call
    max_image_mb: float = 5.0  # per image; larger figures are dropped with a note
    max_request_mb: float = 64.0  # HTTP body limit (images travel in open-session requests)
    #: Imported when a pool kernel starts, so the first call of a session does not pay for it.
    preload_modules: list[str] = field(default_factory=lambda: ["numpy", "PIL.Image", "matplotlib.pyplot"])
    request_timeout_s: float = 60.0  # client side, added to the call's own timeout
    work_dir: Path | None = None  # session and kernel directories; None: a temp dir
    security: SandboxSecurityConfig = field(default_factory=SandboxSecurityConfig)

    def __post_init__(self) -> None:
        if self.pool_size < 1 or self.max_sessions < 1:
            raise ValueError("pool_size and max_sessions must be >= 1")
        if self.open_timeout_s <= 0:
            raise ValueError("open_timeout_s must be > 0")
        if not 0 < self.default_timeout_s <= self.max_timeout_s:
            raise ValueError("default_timeout_s must be in (0, max_timeout_s]")
