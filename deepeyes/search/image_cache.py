"""The MMSearch-R1 image-search cache: ``{index: {tool_returned_web_title, cached_images_path}}``.

Titles and image paths are parallel lists: the i-th title describes the i-th cached image.
Paths are resolved once at load time against an image root, and images that are missing
are reported (by :func:`missing_images` and the ``convert_cache`` CLI) rather than dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from deepeyes.utils.jsonl import iter_jsonl_records

TITLES_FIELD = "tool_returned_web_title"
IMAGES_FIELD = "cached_images_path"


class ImageCacheError(ValueError):
    """The cache file is missing or not in the MMSearch-R1 shape."""


@dataclass
class ImageCacheEntry:
    titles: list[str]
    image_paths: list[Path]


def resolve_image_path(path: str, image_root: Path) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else image_root / candidate


def load_image_cache(path: Path, image_root: Path | None = None) -> dict[str, ImageCacheEntry]:
    """Entries keyed by sample index (as a string), with image paths made absolute."""
    if not path.is_file():
        raise ImageCacheError(f"image-search cache not found: {path} (run the sample-data generator or set search.image.cache_json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ImageCacheError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ImageCacheError(f"{path}: expected an object mapping sample index to entry")
    root = image_root if image_root is not None else path.parent
    entries = {}
    for key, record in data.items():
        if not isinstance(record, dict):
            raise ImageCacheError(f"{path}: entry {key!r} is not an object")
        titles, images = record.get(TITLES_FIELD), record.get(IMAGES_FIELD)
        if not isinstance(titles, list) or not isinstance(images, list):
            raise ImageCacheError(f"{path}: entry {key!r} needs the lists '{TITLES_FIELD}' and '{IMAGES_FIELD}'")
        if len(titles) != len(images):
            raise ImageCacheError(f"{path}: entry {key!r} has {len(titles)} titles but {len(images)} images")
        entries[str(key)] = ImageCacheEntry([str(t) for t in titles], [resolve_image_path(str(p), root) for p in images])
    return entries


def missing_images(entries: dict[str, ImageCacheEntry]) -> dict[str, list[Path]]:
    """For each entry with missing image files, the paths that are missing."""
    report = {}
    for key, entry in entries.items():
        missing = [p for p in entry.image_paths if not p.is_file()]
        if missing:
            report[key] = missing
    return report


def load_query_images(path: Path, image_root: Path) -> dict[str, Path]:
    """``{index: query image path}`` from a ``{index, image_path}`` JSONL file."""
    if not path.is_file():
        raise ImageCacheError(f"image-search query list not found: {path} (search.image.queries_jsonl)")
    queries = {}
    for line_number, record in iter_jsonl_records(path, ImageCacheError):
        if "index" not in record or not isinstance(record.get("image_path"), str):
            raise ImageCacheError(f"{path}:{line_number}: needs 'index' and a string 'image_path'")
        queries[str(record["index"])] = resolve_image_path(record["image_path"], image_root)
    return queries
