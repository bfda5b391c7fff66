"""Build the sample image-search cache where the seed's documentation puts the published one.

The seed's documented call ``ToolManager(..., search_cache_path="./reinforcement_learning/search_cache")``
names a folder that exists only once a user has downloaded ``honglyhly/DeepEyesV2_Search_Cache``
into it, so on a fresh checkout the snippet stopped with "no such file or directory". Set-up
runs this module to fill that folder with a miniature of the published cache made from the
sample data, in the published layout: one ``fvqa_train_image_search_results_cache.json`` and
a ``cached_images`` folder of zip archives. The snippet then works verbatim, through the same
loading path as the real cache (:mod:`deepeyes.search.published_cache`: archives unpacked
once, image paths relative to the folder).

The published cache replaces the sample by being downloaded over it: its cache JSON has the
same name and overwrites the sample's, and this module never writes over a cache JSON it did
not write itself (a marker file records the digest of what it wrote).

    python -m deepeyes.search.sample_cache [--sample_cache_json data/sample/image_search/cache.json] [--out reinforcement_learning/search_cache]
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deepeyes.cli import parse_cli
from deepeyes.hub import extraction_marker
from deepeyes.paths import REPO_ROOT, SAMPLE_DIR, resolve_path
from deepeyes.search.image_cache import (
    IMAGES_FIELD,
    TITLES_FIELD,
    ImageCacheError,
    load_image_cache,
    missing_images,
)

#: Where the seed's documentation has the published cache unpacked.
SEED_SEARCH_CACHE_DIR = REPO_ROOT / "reinforcement_learning" / "search_cache"
#: The published cache's JSON name: downloading the published cache overwrites the sample's.
PUBLISHED_CACHE_JSON = "fvqa_train_image_search_results_cache.json"
#: The sample's images, as one archive in ``cached_images/`` (the published cache zips its images too).
SAMPLE_ARCHIVE = "sample.zip"
#: Records the digests of the source and of the cache JSON this module wrote.
MARKER = ".deepeyes_sample.stamp"
#: The similarity index the image-search tool keeps beside an unpacked cache.
INDEX_DIR = "similarity_index"

Outcome = Literal["built", "up to date", "not ours"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_marker(out: Path) -> dict[str, str] | None:
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _remove_sample(out: Path) -> None:
    """Remove what an earlier build wrote (and what loading it unpacked), nothing else."""
    images = out / "cached_images"
    for path in (out / PUBLISHED_CACHE_JSON, out / MARKER, images / SAMPLE_ARCHIVE, extraction_marker(images, SAMPLE_ARCHIVE)):
        path.unlink(missing_ok=True)
    for folder in (images / Path(SAMPLE_ARCHIVE).stem, out / INDEX_DIR):
        shutil.rmtree(folder, ignore_errors=True)


def build_sample_cache(source_json: Path, out: Path) -> Outcome:
    """Write the published-layout miniature of ``source_json`` (an MMSearch-R1 cache) into ``out``.

    Returns:
        ``"built"``; ``"up to date"`` when ``out`` already holds this build of this source;
        ``"not ours"`` when ``out`` holds a cache this function did not write (the published
        one, or a user's), which is left as it is.

    Raises:
        ImageCacheError: the source is missing, not in the MMSearch-R1 shape, names an image
            that does not exist, or two images share a file name.
    """
    entries = load_image_cache(source_json)
    missing = missing_images(entries)
    if missing:
        key, paths = next(iter(missing.items()))
        raise ImageCacheError(f"{source_json}: entry {key} names missing images ({paths[0]}); regenerate the sample data (bash setup.sh)")
    source_digest = _sha256(source_json)
    cache_json = out / PUBLISHED_CACHE_JSON
    marker = _read_marker(out)
    if marker is None:
        if out.exists() and any(out.iterdir()):
            return "not ours"
    elif not cache_json.is_file() or _sha256(cache_json) != marker.get("cache_sha256"):
        return "not ours"  # the sample's JSON was replaced (by the published one) or removed by its owner
    elif marker.get("source_sha256") == source_digest:
        return "up to date"
    _remove_sample(out)

    folder = Path(SAMPLE_ARCHIVE).stem
    members: dict[str, Path] = {}
    cache: dict[str, dict[str, list[str]]] = {}
    for key, entry in entries.items():
        names = []
        for path in entry.image_paths:
            member = f"{folder}/{path.name}"
            if members.setdefault(member, path) != path:
                raise ImageCacheError(f"{source_json}: two images are named {path.name} ({members[member]}, {path})")
            names.append(f"cached_images/{member}")
        cache[key] = {TITLES_FIELD: entry.titles, IMAGES_FIELD: names}
    (out / "cached_images").mkdir(parents=True, exist_ok=True)
    # PNG data is compressed already: stored, not deflated, so unpacking costs a copy only.
    with zipfile.ZipFile(out / "cached_images" / SAMPLE_ARCHIVE, "w", compression=zipfile.ZIP_STORED) as archive:
        for member, path in members.items():
            archive.write(path, member)
    cache_json.write_text(json.dumps(cache, ensure_ascii=False, indent=1), encoding="utf-8")
    marker_text = json.dumps({"source_sha256": source_digest, "cache_sha256": _sha256(cache_json)}, indent=1)
    (out / MARKER).write_text(marker_text, encoding="utf-8")
    return "built"


@dataclass(frozen=True)
class SampleCacheArguments:
    sample_cache_json: str = field(
        default=str(SAMPLE_DIR / "image_search" / "cache.json"),
        metadata={"help": "the sample data's image-search cache (MMSearch-R1 shape) to copy"},
    )
    out: str = field(
        default=str(SEED_SEARCH_CACHE_DIR),
        metadata={"help": "folder to write, in the published DeepEyesV2_Search_Cache layout (default: the seed's search_cache_path)"},
    )


DESCRIPTION = (
    "Write the sample image-search cache in the published DeepEyesV2_Search_Cache layout "
    f"({PUBLISHED_CACHE_JSON} + cached_images/{SAMPLE_ARCHIVE}) where the seed's documentation has the published cache, "
    "so ToolManager(search_cache_path='./reinforcement_learning/search_cache') works on a fresh checkout. "
    "A folder holding a cache this command did not write (the published one) is left as it is. Prints one line."
)


def main(argv: Sequence[str] | None = None) -> int:
    (args,) = parse_cli([SampleCacheArguments], argv, prog="python -m deepeyes.search.sample_cache", description=DESCRIPTION)
    out = resolve_path(args.out)
    try:
        outcome = build_sample_cache(resolve_path(args.sample_cache_json), out)
    except ImageCacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shown = out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out
    lines = {
        "built": f"built at {shown}",
        "up to date": "up to date",
        "not ours": f"{shown} holds another cache (the published one?): left as it is",
    }
    print(lines[outcome])
    return 0


if __name__ == "__main__":
    sys.exit(main())
