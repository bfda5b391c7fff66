"""Offline text search: BM25 (the ``bm25s`` library) over a JSONL corpus.

The index is built once and saved next to the corpus together with the corpus' SHA-256,
so later starts load it in a fraction of the build time and a changed corpus is noticed
and re-indexed instead of silently serving stale documents.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from deepeyes.search.backends.base import BackendError, make_result
from deepeyes.search.config import LocalBackendConfig, resolve_path
from deepeyes.utils.hashing import file_sha256
from deepeyes.utils.jsonl import iter_jsonl_records

logger = logging.getLogger(__name__)

_META_NAME = "deepeyes_index_meta.json"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\w\w+")


class CorpusError(ValueError):
    """The corpus file is missing or a line is not a valid document."""


@dataclass(frozen=True)
class Document:
    title: str
    link: str
    text: str
    date: str | None


def load_corpus(path: Path) -> list[Document]:
    """Read ``{title, link, text, date?}`` lines, naming the line of any malformed record."""
    if not path.is_file():
        raise CorpusError(f"text-search corpus not found: {path} (run the sample-data generator or set search.text.local.corpus_path)")
    documents = []
    for line_number, record in iter_jsonl_records(path, CorpusError):
        missing = [key for key in ("title", "link", "text") if not isinstance(record.get(key), str)]
        if missing:
            raise CorpusError(f"{path}:{line_number}: missing string field(s) {missing}")
        documents.append(Document(record["title"], record["link"], record["text"], record.get("date")))
    if not documents:
        raise CorpusError(f"{path}: the corpus is empty")
    return documents


class LocalBM25Backend:
    """BM25 ranking over the corpus; results carry a snippet cut around the query terms."""

    def __init__(self, documents: list[Document], retriever: bm25s.BM25, stopwords: str | None, snippet_chars: int, identity: str):
        self.documents = documents
        self.retriever = retriever
        self.stopwords = stopwords
        self.snippet_chars = snippet_chars
        self.identity = identity

    @classmethod
    def from_config(cls, cfg: LocalBackendConfig) -> LocalBM25Backend:
        corpus_path = resolve_path(cfg.corpus_path)
        documents = load_corpus(corpus_path)
        index_dir = resolve_path(cfg.index_dir) if cfg.index_dir else corpus_path.with_name(corpus_path.name + ".bm25s")
        stopwords = None if cfg.stopwords == "none" else cfg.stopwords
        wanted = {
            "corpus_sha256": file_sha256(corpus_path),
            "documents": len(documents),
            "k1": cfg.k1,
            "b": cfg.b,
            "stopwords": cfg.stopwords,
            "bm25s_version": bm25s.__version__,
        }
        retriever = _load_index(index_dir, wanted)
        if retriever is None:
            retriever = _build_index(documents, cfg, stopwords, index_dir, wanted)
        identity = f"local:{wanted['corpus_sha256'][:16]}"
        return cls(documents, retriever, stopwords, cfg.snippet_chars, identity)

    def search(self, query: str, top_k: int) -> list[dict[str, Any]]:
        tokens = bm25s.tokenize(query, stopwords=self.stopwords, return_ids=False, show_progress=False)[0]
        known = [token for token in tokens if token in self.retriever.vocab_dict]
        if not known:
            return []
        k = min(top_k, len(self.documents))
        try:
            indices, scores = self.retriever.retrieve([known], k=k, show_progress=False, n_threads=0)
        except Exception as exc:  # bm25s raises plain ValueError/IndexError on internal problems
            raise BackendError(f"local BM25 search failed: {exc}") from exc
        terms = {token.lower() for token in known}
        results = []
        for index, score in zip(indices[0], scores[0], strict=True):
            if score <= 0:
                continue
            document = self.documents[int(index)]
            snippet = best_snippet(document.text, terms, self.snippet_chars)
            results.append(make_result(document.title, document.link, snippet, document.date))
        return results


def best_snippet(text: str, terms: set[str], max_chars: int) -> str:
    """The run of sentences starting at the one that mentions most query terms, cut to ``max_chars``."""
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    if not sentences:
        return ""
    hits = [len(terms.intersection(_WORD.findall(sentence.lower()))) for sentence in sentences]
    start = int(np.argmax(hits))
    snippet = sentences[start]
    for sentence in sentences[start + 1 :]:
        if len(snippet) + 1 + len(sentence) > max_chars:
            break
        snippet = f"{snippet} {sentence}"
    if len(snippet) > max_chars:
        snippet = snippet[: max_chars - 1].rsplit(" ", 1)[0] + "…"
    return snippet


def _load_index(index_dir: Path, wanted: dict[str, Any]) -> bm25s.BM25 | None:
    meta_path = index_dir / _META_NAME
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        meta = None
    if meta != wanted:
        logger.info("BM25 index at %s is stale (corpus or settings changed); rebuilding", index_dir)
        return None
    try:
        return bm25s.BM25.load(str(index_dir), show_progress=False, verbosity=0)
    except Exception as exc:  # a half-written or foreign folder: rebuild rather than fail
        logger.warning("could not load BM25 index at %s (%s); rebuilding", index_dir, exc)
        return None


def _build_index(
    documents: list[Document], cfg: LocalBackendConfig, stopwords: str | None, index_dir: Path, meta: dict[str, Any]
) -> bm25s.BM25:
    started = time.perf_counter()
    texts = [f"{d.title}\n{d.text}" for d in documents]
    tokens = bm25s.tokenize(texts, stopwords=stopwords, show_progress=False)
    retriever = bm25s.BM25(k1=cfg.k1, b=cfg.b)
    retriever.index(tokens, show_progress=False)
    # Write into a sibling temp folder and swap it in, so a crash never leaves a
    # half-written index that the metadata claims is complete.
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=index_dir.name + ".", dir=index_dir.parent))
    try:
        retriever.save(str(staging), show_progress=False)
        (staging / _META_NAME).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if index_dir.exists():
            shutil.rmtree(index_dir)
        staging.rename(index_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("built BM25 index over %d documents in %.1f s (%s)", len(documents), time.perf_counter() - started, index_dir)
    return retriever
