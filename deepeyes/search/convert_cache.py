"""Convert an MMSearch-R1 image-search cache for DeepEyes: resolve image paths, report missing ones.

    python -m deepeyes.search.convert_cache --input_json cache.json --image_root images/

The output keeps the MMSearch-R1 shape with absolute image paths, so it works from any
directory. Entries whose images are missing are listed (and kept, unless
``--drop_missing`` is given, which drops only the missing title/image pairs and says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deepeyes.search.image_cache import IMAGES_FIELD, TITLES_FIELD, ImageCacheError, load_image_cache, missing_images


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepeyes.search.convert_cache",
        description="Resolve the image paths of an MMSearch-R1 image-search cache "
        "({index: {tool_returned_web_title: [...], cached_images_path: [...]}}) and report entries whose images are missing.",
    )
    parser.add_argument("--input_json", type=Path, required=True, help="the MMSearch-R1 cache JSON")
    parser.add_argument(
        "--image_root", type=Path, default=None, help="folder relative image paths start from (default: the input file's folder)"
    )
    parser.add_argument(
        "--output_json", type=Path, default=None, help="converted cache to write (default: <input>_resolved.json next to the input)"
    )
    parser.add_argument("--missing_report", type=Path, default=None, help="also write the missing images as JSON {index: [paths]} here")
    parser.add_argument(
        "--drop_missing", action="store_true", help="leave missing title/image pairs out of the output (they are still reported)"
    )
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when any image is missing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        entries = load_image_cache(args.input_json, args.image_root.resolve() if args.image_root else None)
    except ImageCacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = missing_images(entries)
    output_path = args.output_json or args.input_json.with_name(args.input_json.stem + "_resolved.json")
    converted = {}
    for key, entry in entries.items():
        gone = set(missing.get(key, []))
        pairs = [(t, p) for t, p in zip(entry.titles, entry.image_paths, strict=True) if not (args.drop_missing and p in gone)]
        converted[key] = {TITLES_FIELD: [t for t, _ in pairs], IMAGES_FIELD: [str(p.resolve()) for _, p in pairs]}
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(json.dumps(converted, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.missing_report:
        report = {key: [str(p) for p in paths] for key, paths in missing.items()}
        args.missing_report.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")

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
