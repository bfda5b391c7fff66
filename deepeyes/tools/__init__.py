"""The tools the model can call: one module per tool, listed once in :mod:`deepeyes.tools.builtin`."""

from deepeyes.tools.registry import (
    REGISTRY,
    Tool,
    ToolArgumentError,
    stat_keys,
    tool_names,
)

__all__ = ["REGISTRY", "Tool", "ToolArgumentError", "stat_keys", "tool_names"]
