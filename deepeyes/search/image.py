"""The image-search tool: MMSearch-R1 cache lookup by sample index, else by image similarity.

Lookup order: the exact sample index (how MMSearch-R1-style data is keyed) → the nearest
cache entry whose indexed image is similar enough (so a user's own copy of a picture,
resized, re-encoded or slightly cropped, still finds its entry) → "No results found."

What is indexed: by default each entry's *query image* (the sample's original picture,
from ``queries_jsonl``), because that is what the model searches with; indexing the
entry's *cached result images* as well (``index_sources: [queries, cached_images]``) also
lets a picture of one of those results find the entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from deepeyes import wire
from deepeyes.search.config import ImageSearchConfig, SearchConfig, resolve_path
from deepeyes.search.descriptors import (
    ClipEmbedder,
    ColourLayoutDescriptor,
    ImageDescriptor,
)
from deepeyes.search.image_cache import (
    ImageCacheEntry,
    load_image_cache,
    load_query_images,
)
from deepeyes.search.similarity_index import SimilarityIndex

logger = logging.getLogger(__name__)

#: Images described per batch while (re)building the index; each batch is one persisted shard.
_BUILD_BATCH = 512
USER_SOURCE = "user"


@dataclass
class ImageSearchOutcome:
    titles: list[str] = field(default_factory=list)
    #: The observation's images, one per title, in order.
    thumbnails: list[Image.Image] = field(default_factory=list)
    error: str | None = None
    matched_by: Literal["index", "similarity"] | None = None
    #: Cosine similarity of the matched entry (similarity matches only).
    score: float | None = None

    def render(self) -> str:
        """The user turn for the model: numbered ``<image> title`` lines, or the error."""
        if self.error is not None:
            return wire.error_response("image search", self.error)
        return wire.tool_response(wire.image_search_body(self.titles))


def build_descriptor(cfg: ImageSearchConfig) -> ImageDescriptor:
    if cfg.descriptor == "clip":
        if not cfg.clip_checkpoint:
            raise ValueError("search.image.descriptor is 'clip' but search.image.clip_checkpoint is not set")
        return ClipEmbedder(resolve_path(cfg.clip_checkpoint))
    return ColourLayoutDescriptor()


def source_id(origin: str, path: Path) -> str:
    """Row source: origin + file + size + mtime, so an edited or replaced file is re-described."""
    stat = path.stat()
    return f"{origin}:{path}:{stat.st_size}:{stat.st_mtime_ns}"


class ImageSearcher:
    def __init__(
        self,
        entries: dict[str, ImageCacheEntry],
        index: SimilarityIndex,
        descriptor: ImageDescriptor,
        similarity_threshold: float = 0.91,
        max_results: int = 5,
        thumbnail_size: int = 256,
    ):
        self.entries = entries
        self.index = index
        self.descriptor = descriptor
        self.similarity_threshold = similarity_threshold
        self.max_results = max_results
        self.thumbnail_size = thumbnail_size

    @classmethod
    def from_config(cls, cfg: SearchConfig | ImageSearchConfig) -> ImageSearcher:
        """Load the cache and bring the persisted similarity index up to date with it."""
        image_cfg = cfg.image if isinstance(cfg, SearchConfig) else cfg
        cache_path = resolve_path(image_cfg.cache_json)
        image_root = resolve_path(image_cfg.image_root) if image_cfg.image_root else cache_path.parent
        entries = load_image_cache(cache_path, image_root)
        descriptor = build_descriptor(image_cfg)
        index_dir = resolve_path(image_cfg.index_dir) if image_cfg.index_dir else cache_path.parent / "similarity_index"
        index = SimilarityIndex.open(index_dir, descriptor.name)
        searcher = cls(entries, index, descriptor, image_cfg.similarity_threshold, image_cfg.max_results, image_cfg.thumbnail_size)
        searcher.sync_index(_wanted_images(image_cfg, entries))
        return searcher

    def sync_index(self, wanted: list[tuple[str, str, Path]]) -> None:
        """Make the index hold exactly ``wanted`` ``(key, origin, path)`` images plus user additions.

        Only images not yet indexed are described, so restarting with an unchanged cache
        costs nothing and adding entries costs only the new ones.
        """
        rows: dict[str, tuple[str, Path]] = {}
        for key, origin, path in wanted:
            if path.is_file():
                rows[source_id(origin, path)] = (key, path)
            else:
                logger.warning("image for entry %s is missing: %s (not indexed)", key, path)
        stale = {s for s in self.index.sources if s not in rows and not s.startswith(USER_SOURCE + ":")}
        if stale:
            logger.info("removing %d stale rows from the similarity index", len(stale))
            self.index.remove_sources(stale)
        indexed = self.index.sources
        todo = [(source, key, path) for source, (key, path) in rows.items() if source not in indexed]
        if not todo:
            return
        logger.info("describing %d images for the similarity index", len(todo))
        with tqdm(total=len(todo), desc="image index", unit="img", disable=None) as progress:
            for start in range(0, len(todo), _BUILD_BATCH):
                batch = todo[start : start + _BUILD_BATCH]
                images, kept = [], []
                for source, key, path in batch:
                    image = _open_image(path)
                    if image is not None:
                        images.append(image)
                        kept.append((source, key))
                if images:
                    vectors = self.descriptor.index_vectors(images)
                    self.index.add([k for _, k in kept], vectors, [s for s, _ in kept])
                progress.update(len(batch))

    def add_image(self, key: str, image: Image.Image, name: str) -> None:
        """Index a user's own picture for an existing entry (persisted; survives re-syncs)."""
        if str(key) not in self.entries:
            raise KeyError(f"no image-search cache entry {key!r}")
        self.index.add([str(key)], self.descriptor.index_vectors([image]), [f"{USER_SOURCE}:{name}"])

    def search(self, image: Image.Image | None, sample_index: str | int | None = None) -> ImageSearchOutcome:
        """Titles and thumbnails for ``image``; never raises for a bad image or a miss."""
        if sample_index is not None and str(sample_index) in self.entries:
            return self._outcome(self.entries[str(sample_index)], "index", None)
        if not isinstance(image, Image.Image):
            return ImageSearchOutcome(error="there is no image to search with")
        try:
            image.load()
            queries = self.descriptor.query_vectors(image)
        except (OSError, ValueError) as exc:
            return ImageSearchOutcome(error=f"the image could not be read ({exc})")
        except Exception as exc:  # e.g. an embedder failure: an observation, not a crashed rollout
            logger.exception("image descriptor %s failed", self.descriptor.name)
            return ImageSearchOutcome(error=f"image search failed unexpectedly ({type(exc).__name__}: {exc})")
        best = self.index.search(queries, top_n=1)
        if not best or best[0][1] < self.similarity_threshold:
            return ImageSearchOutcome()
        key, score = best[0]
        return self._outcome(self.entries[key], "similarity", score)

    def _outcome(self, entry: ImageCacheEntry, matched_by: Literal["index", "similarity"], score: float | None) -> ImageSearchOutcome:
        titles, thumbnails = [], []
        for title, path in zip(entry.titles, entry.image_paths, strict=True):
            if len(titles) == self.max_results:
                break
            image = _open_image(path)
            if image is None:
                continue  # the observation needs one image per title
            image.thumbnail((self.thumbnail_size, self.thumbnail_size))
            titles.append(title)
            thumbnails.append(image)
        return ImageSearchOutcome(titles=titles, thumbnails=thumbnails, matched_by=matched_by, score=score)


def _wanted_images(cfg: ImageSearchConfig, entries: dict[str, ImageCacheEntry]) -> list[tuple[str, str, Path]]:
    wanted = []
    if "queries" in cfg.index_sources and cfg.queries_jsonl:
        queries = load_query_images(resolve_path(cfg.queries_jsonl), resolve_path(cfg.query_image_root))
        unknown = sorted(set(queries) - set(entries))
        if unknown:
            logger.warning("%d query images name entries absent from the cache (e.g. %s); not indexed", len(unknown), unknown[0])
        wanted += [(key, "query", path) for key, path in queries.items() if key in entries]
    if "cached_images" in cfg.index_sources:
        wanted += [(key, "cached", path) for key, entry in entries.items() for path in entry.image_paths]
    return wanted


def _open_image(path: Path) -> Image.Image | None:
    try:
        with Image.open(path) as handle:
            return handle.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        logger.warning("cannot read cached image %s (%s)", path, exc)
        return None
