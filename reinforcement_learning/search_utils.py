"""Your text search: edit ``text_search`` below to plug in any search engine or private knowledge base.

This is the customisation point the original DeepEyes documentation describes. With
``text_search_api_type="private"`` (``ToolManager(text_search_api_type="private")`` or
``search.text.backend: private`` in ``tool_manager_config.yaml``) and no other setting,
every ``search`` call the model makes ends up here, with results cached as for any
backend (24 h by default). Nothing else needs changing: edit the body, keep the signature.

Return a list of results, best first, each a mapping with ``title`` (required) and
optionally ``link``, ``snippet`` and ``date``. Raise an exception to report a failure: the
model then sees an error observation and can retry; the rollout goes on.

As shipped, the function answers from the local sample corpus (BM25, the ``local``
backend), so the private route works out of the box.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _sample_corpus_backend() -> Any:
    from deepeyes.search.backends.local import LocalBM25Backend
    from deepeyes.search.config import LocalBackendConfig

    return LocalBM25Backend.from_config(LocalBackendConfig())


def text_search(query: str, api_type: str = "private") -> list[dict[str, Any]]:
    """Search for ``query``; ``api_type`` is the ``text_search_api_type`` the tool manager was given."""
    del api_type  # one engine here; branch on it if you wire several
    return _sample_corpus_backend().search(query, top_k=5)
