"""The registered tools, in the order they are listed to users and counted (one line each)."""

from __future__ import annotations

from deepeyes.tools.code import CodeTool
from deepeyes.tools.image_search import ImageSearchTool
from deepeyes.tools.search import SearchTool
from deepeyes.tools.zoom import ImageZoomInTool

BUILTIN_TOOLS = (CodeTool, SearchTool, ImageSearchTool, ImageZoomInTool)
