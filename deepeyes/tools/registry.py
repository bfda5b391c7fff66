"""The tool registry: the one list of tools the model can call (DESIGN §1, "one tool registry").

Action kinds, the per-tool call counts of a trajectory, the reward's tool statistics, the
fields handed to verl and the tool manager's dispatch are all read from here, so a new
tool is one module (a :class:`Tool` class) plus one line in :mod:`deepeyes.tools.builtin`.
The built-in tools are registered on first use, which keeps this module importable from
:mod:`deepeyes.trajectory` and :mod:`deepeyes.wire` without an import cycle.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Protocol, runtime_checkable


class ToolArgumentError(ValueError):
    """A tool call's arguments are wrong; the message is worded for the model."""


@runtime_checkable
class Tool(Protocol):
    """One tool: how its calls are named and parsed, and its per-session life cycle.

    Class attributes describe the call; an instance (built by the tool manager with its
    :class:`~deepeyes.tools.base.ToolContext`) runs it: ``open`` before a session's first
    call, ``execute`` per call, ``close`` when the trajectory ends, ``shutdown`` when the
    manager closes.
    """

    #: The action kind and the count key (``Action.kind``, ``ToolCallCounts``, tool stats).
    name: ClassVar[str]
    #: The ``"name"`` the model writes in a ``<tool_call>``; ``None`` for the ``<code>`` block.
    call_name: ClassVar[str | None]
    #: Other names accepted wherever a tool is named by a user (the seed's names, configs).
    aliases: ClassVar[tuple[str, ...]]

    @classmethod
    def parse_arguments(cls, arguments: Any) -> str:
        """The call's canonical content from the JSON ``arguments`` (``None`` when absent).

        The content is what the tool executes and what identifies a repeated call.
        Raises :class:`ToolArgumentError` with a reason for the model.
        """
        ...

    def open(self, session: Any) -> None: ...

    def execute(self, session: Any, content: str) -> Any: ...

    def close(self, session: Any) -> None: ...

    def shutdown(self) -> None: ...


class ToolRegistry:
    """Tools by name, in registration order; names and aliases must not collide."""

    def __init__(self) -> None:
        self._tools: dict[str, type[Tool]] = {}
        self._names: dict[str, str] = {}  # any accepted name → canonical name
        self._lock = threading.Lock()
        self._loaded = False

    def register(self, tool: type[Tool]) -> type[Tool]:
        with self._lock:
            return self._register(tool)

    def _register(self, tool: type[Tool]) -> type[Tool]:
        names = {tool.name, *tool.aliases, *([tool.call_name] if tool.call_name else [])}
        taken = sorted(n for n in names if n in self._names and self._names[n] != tool.name)
        if taken or tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r}: name(s) {taken or [tool.name]} already registered")
        reserved = {"answer", "invalid", "none", "failed", "repeated"}
        if names & reserved:
            raise ValueError(f"tool {tool.name!r}: {sorted(names & reserved)} are reserved names")
        self._tools[tool.name] = tool
        for name in names:
            self._names[name] = tool.name
        return tool

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            from deepeyes.tools import builtin

            for tool in builtin.BUILTIN_TOOLS:
                self._register(tool)
            self._loaded = True

    def names(self) -> tuple[str, ...]:
        """Canonical tool names (= action kinds that call a tool), in registration order."""
        self._ensure_loaded()
        return tuple(self._tools)

    def tools(self) -> tuple[type[Tool], ...]:
        self._ensure_loaded()
        return tuple(self._tools.values())

    def get(self, name: str) -> type[Tool]:
        """The tool called ``name`` or one of its aliases; ``ValueError`` naming the known ones."""
        self._ensure_loaded()
        canonical = self._names.get(name)
        if canonical is None:
            raise ValueError(f"unknown tool {name!r}; known: {self.accepted_names()}")
        return self._tools[canonical]

    def resolve(self, names: list[str] | tuple[str, ...] | set[str]) -> list[str]:
        """Canonical names for user-given names (aliases accepted), order kept, no duplicates."""
        resolved: list[str] = []
        for name in names:
            canonical = self.get(name).name
            if canonical not in resolved:
                resolved.append(canonical)
        return resolved

    def accepted_names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._names)

    def by_call_name(self, call_name: str) -> type[Tool] | None:
        """The tool a ``<tool_call>`` names (exact wire name; aliases are for users, not the model)."""
        self._ensure_loaded()
        return next((t for t in self._tools.values() if t.call_name == call_name), None)

    def call_names(self) -> list[str]:
        self._ensure_loaded()
        return [t.call_name for t in self._tools.values() if t.call_name]

    def stat_keys(self) -> tuple[str, ...]:
        """Keys of a trajectory's ``tool_calls`` and of the reward's ``tool_stats``."""
        return (*self.names(), *COUNTER_KEYS)


#: Counters kept beside the per-tool counts (see :class:`deepeyes.trajectory.ToolCallCounts`).
COUNTER_KEYS: tuple[str, ...] = ("invalid", "failed", "repeated")

REGISTRY = ToolRegistry()


def tool_names() -> tuple[str, ...]:
    """Names of the registered tools (action kinds that run a tool)."""
    return REGISTRY.names()


def stat_keys() -> tuple[str, ...]:
    return REGISTRY.stat_keys()
