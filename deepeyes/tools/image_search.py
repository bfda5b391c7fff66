"""The image-search tool: ``{"name": "image_search"}`` searches with the original image (DESIGN §4)."""

from __future__ import annotations

from deepeyes import wire
from deepeyes.tool_specs import IMAGE_SEARCH
from deepeyes.tools.base import (
    BaseTool,
    ToolContext,
    ToolOutput,
    ToolSession,
    error_output,
    response_renderer,
)
from deepeyes.tools.budget import Clip


class ImageSearchTool(BaseTool):
    spec = IMAGE_SEARCH

    def __init__(self, context: ToolContext):
        super().__init__(context)
        from deepeyes.search.image import ImageSearcher

        self.searcher = ImageSearcher.from_config(context.config.search)

    def execute(self, session: ToolSession, content: str) -> ToolOutput:
        if not session.images:
            return error_output("image_search", "this question has no image to search with")
        outcome = self.searcher.search(session.images[0], sample_index=session.sample_index)
        if outcome.error is not None:
            return error_output("image search", outcome.error)
        thumbnails = list(outcome.thumbnails)
        titles = list(outcome.titles[: len(thumbnails)]) if thumbnails else list(outcome.titles)
        if not thumbnails:
            return ToolOutput("success", response_renderer(wire.image_search_body(titles)))

        def render(kept: list[int], notes: list[str], clip: Clip) -> str:
            body = wire.image_search_body([clip(titles[i]) for i in kept])
            return wire.tool_response("\n".join([body, *(wire.note(n) for n in notes)]))

        return ToolOutput("success", render, thumbnails)
