"""A persisted nearest-neighbour index of image descriptors (exact search, one matrix product).

Exact search is enough here: 50k entries x 149 float32 dimensions is a 30 MB matrix and
one matrix-vector product per lookup, so an approximate-search library would add a
dependency without saving time. Rows are stored as append-only shards (``shard-NNNNN.npy`` plus a JSON list
of keys and sources), so adding images never rewrites what is already on disk; removing
stale rows compacts everything into one shard.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_META = "meta.json"
_FORMAT_VERSION = 1


class SimilarityIndex:
    """Rows of (key, source, unit vector); a key may have several rows (e.g. several images)."""

    def __init__(self, directory: Path, descriptor_name: str):
        self.directory = directory
        self.descriptor_name = descriptor_name
        #: Stored transposed (dimensions x rows): a row vector times this matrix streams memory in order.
        self._columns: np.ndarray | None = None
        self._keys = np.empty(0, dtype=object)
        self._sources: list[str] = []
        self._next_shard = 0
        # Searches from several agent threads may meet an add_image; rows and keys must change together.
        self._lock = threading.RLock()

    @classmethod
    def open(cls, directory: Path, descriptor_name: str) -> SimilarityIndex:
        """Load the index in ``directory``; start empty if it is absent or built by another descriptor."""
        index = cls(directory, descriptor_name)
        meta_path = directory / _META
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else None
        if meta is not None and meta == index._meta():
            index._load_shards()
        else:
            if meta is not None:
                logger.info(
                    "similarity index at %s was built with %s; rebuilding for %s", directory, meta.get("descriptor"), descriptor_name
                )
            index._reset_directory()
        return index

    def __len__(self) -> int:
        return len(self._sources)

    @property
    def sources(self) -> set[str]:
        return set(self._sources)

    def add(self, keys: list[str], vectors: np.ndarray, sources: list[str]) -> None:
        """Append rows and persist them as a new shard."""
        if not (len(keys) == len(sources) == len(vectors)):
            raise ValueError("keys, vectors and sources must have the same length")
        if not keys:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._lock:
            self._write_shard(self._next_shard, vectors, keys, sources)
            self._next_shard += 1
            self._append(vectors, keys, sources)

    def remove_sources(self, stale: set[str]) -> None:
        """Drop every row whose source is in ``stale`` and compact the shards into one."""
        with self._lock:
            keep = np.array([source not in stale for source in self._sources], dtype=bool)
            if keep.all():
                return
            vectors = self._columns[:, keep].T if self._columns is not None else np.zeros((0, 0), np.float32)
            keys = [str(k) for k in self._keys[keep]]
            sources = [s for s, kept in zip(self._sources, keep, strict=True) if kept]
            self._reset_directory()
            self._columns, self._keys, self._sources = None, np.empty(0, dtype=object), []
            self.add(keys, vectors, sources)

    def search(self, query_vectors: np.ndarray, top_n: int, shortlist: int = 256) -> list[tuple[str, float]]:
        """Up to ``top_n`` distinct keys with their best cosine similarity, best first.

        ``query_vectors`` holds one or more views of the query; a row scores as its best
        view. With several views, the rows are first shortlisted by their similarity to
        the views' mean (one matrix-vector product over the whole index) and only the
        ``shortlist`` best are scored against every view, which keeps a lookup over 50k
        rows at one pass over the matrix.
        """
        with self._lock:
            columns, keys = self._columns, self._keys
        if columns is None or len(keys) == 0:
            return []
        queries = np.atleast_2d(query_vectors).astype(np.float32)
        rows = np.arange(len(keys))
        if len(queries) > 1 and len(rows) > shortlist:
            centre = queries.mean(axis=0)
            coarse = (centre / max(float(np.linalg.norm(centre)), 1e-8)) @ columns
            rows = np.argpartition(-coarse, shortlist - 1)[:shortlist]
            scores = (queries @ columns[:, rows]).max(axis=0)
        else:
            scores = (queries @ columns).max(axis=0)
        # Rank a few more rows than keys wanted, since one key can own several rows.
        candidates = min(len(scores), top_n * 8)
        order = np.argpartition(-scores, candidates - 1)[:candidates] if candidates < len(scores) else np.arange(len(scores))
        order = order[np.argsort(-scores[order], kind="stable")]
        best: dict[str, float] = {}
        for position in order:
            key = keys[rows[position]]
            if key not in best:
                best[key] = float(scores[position])
                if len(best) == top_n:
                    break
        return list(best.items())

    def _meta(self) -> dict:
        return {"descriptor": self.descriptor_name, "format_version": _FORMAT_VERSION}

    def _reset_directory(self) -> None:
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        _write_atomic(self.directory / _META, json.dumps(self._meta()).encode("utf-8"))
        self._next_shard = 0

    def _load_shards(self) -> None:
        for rows_path in sorted(self.directory.glob("shard-*.json")):
            vectors_path = rows_path.with_suffix(".npy")
            if not vectors_path.is_file():
                logger.warning("similarity index shard %s has no vectors; ignoring it", rows_path.name)
                continue
            rows = json.loads(rows_path.read_text(encoding="utf-8"))
            vectors = np.load(vectors_path)
            self._append(vectors, rows["keys"], rows["sources"])
            self._next_shard = max(self._next_shard, int(rows_path.stem.split("-")[1]) + 1)

    def _append(self, vectors: np.ndarray, keys: list[str], sources: list[str]) -> None:
        columns = np.ascontiguousarray(vectors.T)
        self._columns = columns if self._columns is None else np.concatenate([self._columns, columns], axis=1)
        self._keys = np.concatenate([self._keys, np.array(keys, dtype=object)])
        self._sources.extend(sources)

    def _write_shard(self, number: int, vectors: np.ndarray, keys: list[str], sources: list[str]) -> None:
        stem = self.directory / f"shard-{number:05d}"
        vectors_tmp = stem.with_suffix(".npy.tmp")
        with vectors_tmp.open("wb") as handle:
            np.save(handle, vectors)
        os.replace(vectors_tmp, stem.with_suffix(".npy"))
        # The row list is written last: a shard only counts once it exists.
        _write_atomic(stem.with_suffix(".json"), json.dumps({"keys": keys, "sources": sources}).encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
