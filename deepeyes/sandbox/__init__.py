"""Stateful Python code sandbox: Jupyter kernels behind HTTP, sessions snapshotted to Redis.

Use :class:`~deepeyes.sandbox.client.SandboxClient` to talk to running instances and
:class:`~deepeyes.sandbox.launch.SandboxCluster` to start some; see ``docs/sandbox.md``.
"""

from deepeyes.sandbox.config import SandboxConfig, SandboxSecurityConfig
from deepeyes.sandbox.result import ExecutionResult

__all__ = ["ExecutionResult", "SandboxConfig", "SandboxSecurityConfig"]
