"""The text-search tool: ``{"name": "search", "arguments": {"query": …}}`` (DESIGN §4, §8)."""

from __future__ import annotations

from typing import Any

from deepeyes import wire
from deepeyes.tools.base import (
    BaseTool,
    ToolContext,
    ToolOutput,
    ToolSession,
    response_renderer,
)
from deepeyes.tools.registry import ToolArgumentError

#: Longer queries are refused: they are a runaway generation, not a question.
MAX_QUERY_CHARS = 512


class SearchTool(BaseTool):
    name = "search"
    call_name = "search"
    aliases = ("text_search",)

    @classmethod
    def parse_arguments(cls, arguments: Any) -> str:
        query = arguments.get("query") if isinstance(arguments, dict) else None
        if not isinstance(query, str) or not query.strip():
            raise ToolArgumentError('search needs {"arguments": {"query": "<non-empty text>"}}.')
        if len(query) > MAX_QUERY_CHARS:
            raise ToolArgumentError(f"The search query is longer than {MAX_QUERY_CHARS} characters.")
        return query.strip()

    def __init__(self, context: ToolContext):
        super().__init__(context)
        from deepeyes.search.text import TextSearcher

        self.searcher = TextSearcher.from_config(context.config.search, redis_client=context.redis)

    def execute(self, session: ToolSession, content: str) -> ToolOutput:
        outcome = self.searcher.search(content)
        if outcome.error is not None:
            return ToolOutput("error", lambda _kept, _notes: outcome.render())
        return ToolOutput("success", response_renderer(wire.text_search_body(outcome.results)))
