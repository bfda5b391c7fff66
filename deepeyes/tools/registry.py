"""The tool runtimes: one per spec in :mod:`deepeyes.tool_specs`, found by the spec's name.

The tool manager starts a runtime for each enabled tool and dispatches an action to the
runtime of the action's kind. Names, aliases, argument parsing and counters are the specs'
(declared below the record and the grammar, so those never load a runtime); this module
only pairs each spec with the class that runs it, in the specs' order.
"""

from __future__ import annotations

from deepeyes import tool_specs
from deepeyes.tool_specs import STAT_KEYS, TOOL_NAMES, ToolName
from deepeyes.tools.base import BaseTool
from deepeyes.tools.code import CodeTool
from deepeyes.tools.image_search import ImageSearchTool
from deepeyes.tools.search import SearchTool
from deepeyes.tools.select_frames import SelectFramesTool
from deepeyes.tools.zoom import ImageZoomInTool


class ToolRegistry:
    """One runtime class per tool spec, in the specs' order."""

    def __init__(self, runtimes: tuple[type[BaseTool], ...]):
        by_name = {runtime.spec.name: runtime for runtime in runtimes}
        if tuple(by_name) != TOOL_NAMES:
            raise ValueError(f"one runtime per tool spec, in order {list(TOOL_NAMES)}; got {[r.spec.name for r in runtimes]}")
        self._runtimes = by_name

    def tools(self) -> tuple[type[BaseTool], ...]:
        return tuple(self._runtimes.values())

    # Names, for callers that reach them through the registry (the specs hold them).
    def names(self) -> tuple[ToolName, ...]:
        return TOOL_NAMES

    def accepted_names(self) -> list[str]:
        return tool_specs.accepted_names()


REGISTRY = ToolRegistry((CodeTool, SearchTool, ImageSearchTool, ImageZoomInTool, SelectFramesTool))


def tool_names() -> tuple[ToolName, ...]:
    """Names of the tools (action kinds that run a tool): :data:`deepeyes.tool_specs.TOOL_NAMES`."""
    return TOOL_NAMES


def stat_keys() -> tuple[str, ...]:
    """Keys of a trajectory's ``tool_calls`` and the reward's ``tool_stats``: :data:`deepeyes.tool_specs.STAT_KEYS`."""
    return STAT_KEYS
