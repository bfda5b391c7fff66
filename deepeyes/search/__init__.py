"""Search tools for the agent: text search (local BM25, web APIs, a private function) with a
result cache, and image search over an MMSearch-R1-style cache with a similarity index.

See ``docs/search.md``; the tool manager builds both from the ``search:`` section of
``tool_manager_config.yaml`` (:class:`deepeyes.search.config.SearchConfig`).
"""

from deepeyes.search.config import SearchConfig
from deepeyes.search.image import ImageSearcher, ImageSearchOutcome
from deepeyes.search.text import TextSearcher, TextSearchOutcome

__all__ = ["ImageSearchOutcome", "ImageSearcher", "SearchConfig", "TextSearchOutcome", "TextSearcher"]
