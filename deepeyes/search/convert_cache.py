"""Convert an MMSearch-R1 image-search cache for DeepEyes: resolve image paths, report missing ones.

    python -m deepeyes.search.convert_cache --input_json cache.json --image_root images/

The output keeps the MMSearch-R1 shape with absolute image paths, so it works from any
directory. Entries whose images are missing are listed (and kept, unless
``--drop_missing`` is given, which drops only the missing title/image pairs and says so).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from deepeyes.cli import parse_cli
from deepeyes.paths import resolve_path
from deepeyes.search.image_cache import (
    IMAGES_FIELD,
    TITLES_FIELD,
    ImageCacheError,
    load_image_cache,
    missing_images,
)

DESCRIPTION = (
    "Resolve the image paths of an MMSearch-R1 image-search cache "
    "({index: {tool_returned_web_title: [...], cached_images_path: [...]}}) and report entries whose images are missing."
)


@dataclass(frozen=True)
class ConvertCacheArguments:
    input_json: str = field(metadata={"help": "the MMSearch-R1 cache JSON"})
    image_root: str | None = field(
        default=None, metadata={"help": "folder relative image paths start from (default: the input file's folder)"}
    )
    output_json: str | None = field(
        default=None, metadata={"help": "converted cache to write (default: <input>_resolved.json next to the input)"}
    )
    missing_report: str | None = field(default=None, metadata={"help": "also write the missing images as JSON {index: [paths]} here"})
    drop_missing: bool = field(
        default=False, metadata={"help": "leave missing title/image pairs out of the output (they are still reported)"}
    )
    strict: bool = field(default=False, metadata={"help": "exit with status 1 when any image is missing"})


def main(argv: Sequence[str] | None = None) -> int:
    (args,) = parse_cli([ConvertCacheArguments], argv, prog="python -m deepeyes.search.convert_cache", description=DESCRIPTION)
    input_json = resolve_path(args.input_json)
    try:
        entries = load_image_cache(input_json, resolve_path(args.image_root) if args.image_root else None)
    except ImageCacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = missing_images(entries)
    output_path = resolve_path(args.output_json) if args.output_json else input_json.with_name(input_json.stem + "_resolved.json")
    converted = {}
    for key, entry in entries.items():
        gone = set(missing.get(key, []))
        pairs = [(t, p) for t, p in zip(entry.titles, entry.image_paths, strict=True) if not (args.drop_missing and p in gone)]
        converted[key] = {TITLES_FIELD: [t for t, _ in pairs], IMAGES_FIELD: [str(p.resolve()) for _, p in pairs]}
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(json.dumps(converted, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.missing_report:
        report = {key: [str(p) for p in paths] for key, paths in missing.items()}
        resolve_path(args.missing_report).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")

    total_images = sum(len(e.image_paths) for e in entries.values())
    missing_count = sum(len(paths) for paths in missing.values())
    print(f"{len(entries)} entries, {total_images} images, {missing_count} missing in {len(missing)} entries")
    for key, paths in missing.items():
        print(f"missing in entry {key}: " + ", ".join(str(p) for p in paths))
    if missing and args.drop_missing:
        print(f"dropped {missing_count} title/image pairs whose image is missing")
    print(f"wrote {output_path}")
    return 1 if missing and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
