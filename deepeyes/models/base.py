"""The pretrained tiny base the repository carries: verify it against its manifest, install it.

A checkout without a carried base (``data/pretrained/`` absent) is valid: the command says so
and exits 0, and the quick start then starts from the random tiny model.

Why a carried checkpoint: pretraining the base (``python -m deepeyes.models.pretrain``) takes
far longer than set-up may (an hour or more on 2 CPU cores), so the repository keeps its
result under ``data/pretrained/`` with a manifest that says how it was made (checksum, exact
command, seed, steps, tokens, wall time, hardware) and a loss curve. ``setup.sh`` calls
:func:`install`, which refuses weights whose SHA-256 differs from the manifest's, so a
corrupted clone or a hand-edited file never silently becomes the quick start's base.

    python -m deepeyes.models.base                # verify and install (what setup.sh runs)
    python -m deepeyes.models.base --verify_only  # check the carried files, install nothing
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepeyes.cli import LoggingArguments, parse_cli
from deepeyes.paths import CARRIED_BASE_DIR, TINY_BASE_DIR
from deepeyes.utils.hashing import file_sha256

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: Files a loadable model folder needs besides the weights the manifest checks.
REQUIRED_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja")


class BaseModelError(RuntimeError):
    """The carried base is missing a file or does not match its manifest."""


def verify(folder: Path = CARRIED_BASE_DIR) -> dict[str, Any]:
    """The manifest of ``folder`` once every file it lists matches its SHA-256.

    Raises:
        BaseModelError: the folder, its manifest or a required file is missing, or a
            checksum differs (the message names the file and both digests).
    """
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise BaseModelError(f"{manifest_path}: no manifest; the pretrained base is not in this checkout")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise BaseModelError(f"{folder / name}: missing from the pretrained base")
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise BaseModelError(f"{path}: listed in {MANIFEST} but missing")
        actual = file_sha256(path)
        if actual != expected:
            raise BaseModelError(f"{path}: sha256 {actual} does not match the manifest's {expected}")
    return manifest


def install(source: Path = CARRIED_BASE_DIR, target: Path = TINY_BASE_DIR) -> Path:
    """Verify ``source`` and copy it to ``target`` (replacing it) unless ``target`` already
    holds the same verified weights; returns ``target``."""
    manifest = verify(source)
    if target.is_dir():
        try:
            if verify(target)["files"] == manifest["files"]:
                logger.info("%s already holds the verified base", target)
                return target
        except (BaseModelError, json.JSONDecodeError, KeyError):
            pass
        shutil.rmtree(target)
    temporary = target.with_name(target.name + ".partial")
    if temporary.exists():
        shutil.rmtree(temporary)
    shutil.copytree(source, temporary)
    temporary.rename(target)
    logger.info("installed the pretrained base at %s", target)
    return target


@dataclass(frozen=True)
class BaseArguments:
    source: Path = field(default=CARRIED_BASE_DIR, metadata={"help": "carried base folder (weights, processor, manifest.json)"})
    target: Path = field(default=TINY_BASE_DIR, metadata={"help": "where the quick start loads the base from"})
    verify_only: bool = field(default=False, metadata={"help": "check the checksums and install nothing"})


def main(argv: list[str] | None = None) -> int:
    args, logging_args = parse_cli(
        [BaseArguments, LoggingArguments],
        argv,
        prog="python -m deepeyes.models.base",
        description="Verify the carried pretrained tiny base against its manifest (SHA-256) and install it for the quick start.",
    )
    logging_args.configure()
    if not (args.source / MANIFEST).is_file():
        # Not an error: until a pretraining run good enough to carry is committed, the main job
        # starts from the random tiny model (scripts/quickstart.sh checks for the installed base).
        print(f"no pretrained base carried at {args.source}: the quick start uses the random tiny model")
        return 0
    try:
        manifest = verify(args.source) if args.verify_only else verify(install(args.source, args.target))
    except BaseModelError as exc:
        print(f"error: {exc}")
        return 1
    where = args.source if args.verify_only else args.target
    # a continued run (--init_from) counts its whole chain of runs
    steps, tokens = manifest.get("total_steps", manifest["steps"]), manifest.get("total_tokens_seen", manifest["tokens_seen"])
    print(f"pretrained base OK at {where} ({steps:,} steps, {tokens:,} tokens, seed {manifest['seed']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
