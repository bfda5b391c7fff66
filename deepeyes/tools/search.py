"""The text-search tool: ``{"name": "search", "arguments": {"query": …}}`` (DESIGN §4, §8)."""

from __future__ import annotations

from deepeyes import wire
from deepeyes.tool_specs import SEARCH
from deepeyes.tools.base import (
    BaseTool,
    ToolContext,
    ToolOutput,
    ToolSession,
    error_output,
    response_renderer,
)


class SearchTool(BaseTool):
    spec = SEARCH

    def __init__(self, context: ToolContext):
        super().__init__(context)
        from deepeyes.search.text import TextSearcher

        self.searcher = TextSearcher.from_config(context.config.search, redis_client=context.redis)

    def execute(self, session: ToolSession, content: str) -> ToolOutput:
        outcome = self.searcher.search(content)
        if outcome.error is not None:
            return error_output(outcome.error_kind, outcome.error)
        return ToolOutput("success", response_renderer(wire.text_search_body(outcome.results)))
