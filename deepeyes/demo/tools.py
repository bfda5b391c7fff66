"""The one place the demo learns which tools exist (switches, viewer filters, counts)."""

from __future__ import annotations

from deepeyes.trajectory import TOOL_KINDS


def tool_names() -> tuple[str, ...]:
    """Tool names in registry order; ``TOOL_KINDS`` follows the tool registry once it has one."""
    return tuple(TOOL_KINDS)
