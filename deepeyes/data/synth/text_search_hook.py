"""Where text-search observations come from: the project's own search tool.

SFT trajectories must show exactly what the model will get back at RL/eval time, so the
generator does not rank documents itself: it runs :class:`deepeyes.search.text.TextSearcher`
with the local BM25 backend (default settings, no result cache) over the corpus it has
just written. This is the single switch-over point for text-search observations.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Self

from deepeyes.data.synth.sample import Observation, SynthError
from deepeyes.search.backends.local import LocalBM25Backend
from deepeyes.search.config import LocalBackendConfig
from deepeyes.search.text import TextSearcher


class CorpusSearch:
    """Text-search observations over one corpus file (thread-safe, index kept in a temp dir)."""

    def __init__(self, corpus_path: Path, top_k: int = 5) -> None:
        # The index goes to a throw-away folder so the generated data folder holds only data.
        self._index_dir = tempfile.TemporaryDirectory(prefix="deepeyes-synth-bm25-")
        config = LocalBackendConfig(corpus_path=str(Path(corpus_path).resolve()), index_dir=self._index_dir.name)
        self._searcher = TextSearcher(backend=LocalBM25Backend.from_config(config), cache=None, top_k=top_k)
        self._lock = threading.Lock()

    def search(self, query: str) -> Observation:
        with self._lock:
            outcome = self._searcher.search(query)
        if outcome.error is not None:
            raise SynthError(f"text search for {query!r} failed: {outcome.error}")
        return Observation(text=outcome.render(), results=outcome.results)

    def close(self) -> None:
        self._index_dir.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
