"""Turn what a user typed for a model, adapter or data set into a local path.

Users of the published DeepEyesV2 artefacts type hub names (``honglyhly/DeepEyesV2_SFT``,
``Qwen/Qwen2.5-VL-7B-Instruct``) wherever a path is accepted. Rather than each stage
guessing, every stage calls :func:`resolve`: an existing local path is returned as it is;
anything shaped ``owner/name`` that is not a local path is fetched once with
``huggingface_hub.snapshot_download`` into the standard cache (so ``HF_ENDPOINT`` mirrors,
``HF_HUB_OFFLINE``, ``HF_HOME`` / ``HF_HUB_CACHE`` and tokens behave as everywhere else in
the ecosystem, with its own progress bars). Hub access is the hub client's job, not ours:
nothing here speaks HTTP.

Published data sets ship their images zipped. :func:`extract_archives` unpacks every
``*.zip`` of a resolved folder once, into a folder beside the hub cache's snapshot (the
snapshot itself is a tree of links into the blob store and is not ours to write), so a
user never runs a conversion script by hand.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from huggingface_hub import constants as hub_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

logger = logging.getLogger(__name__)

RepoType = Literal["model", "dataset"]

#: ``owner/name`` with the characters the hub allows, optionally ``@revision``.
_REPO_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<revision>[\w.\-/]+))?$")
_EXTRACTED_MARKER = ".deepeyes_extracted"


class HubResolutionError(FileNotFoundError):
    """A name is neither an existing local path nor a hub repository that could be fetched."""


def looks_like_repo_id(name: str) -> bool:
    """True for ``owner/name`` (optionally ``owner/name@revision``), the shape of a hub id."""
    return _REPO_ID.match(name) is not None


def _offline() -> bool:
    # Read at call time, not import time, so a process that sets HF_HUB_OFFLINE late is honoured.
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in {"1", "true", "yes", "on"} or hub_constants.HF_HUB_OFFLINE


def resolve(
    name_or_path: str | os.PathLike[str],
    repo_type: RepoType = "model",
    *,
    allow_patterns: list[str] | None = None,
    what: str = "path",
) -> Path:
    """Return a local path for ``name_or_path``.

    Args:
        name_or_path: a local file or folder (relative paths resolve against the working
            directory), or a hub id ``owner/name`` / ``owner/name@revision``.
        repo_type: ``"model"`` (models, adapters) or ``"dataset"`` (SFT/RL data, search cache).
        allow_patterns: only these files of the repository (glob patterns), e.g. to fetch one
            part of a large data set.
        what: the setting's name, used in error messages (``"DATA_PATH"``, ``"--model_path"``).

    Returns:
        The absolute local path: the given one, or the hub cache's snapshot folder.

    Raises:
        HubResolutionError: not a local path and not a hub id; or the repository does not
            exist, is gated, or is not cached while offline (the message says which and how
            to fix it).
    """
    text = os.fspath(name_or_path)
    local = Path(text).expanduser()
    if local.exists():
        return local.resolve()
    match = _REPO_ID.match(text)
    if match is None or text.startswith((".", "/", "~")):
        raise HubResolutionError(f"{what}={text}: no such file or directory, and not a hub name of the form owner/name")
    repo_id, revision = match.group("repo"), match.group("revision")
    offline = _offline()
    logger.info("%s=%s: resolving %s %s through the hub cache%s", what, text, repo_type, repo_id, " (offline)" if offline else "")
    try:
        folder = snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            allow_patterns=allow_patterns,
            local_files_only=offline,
        )
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise HubResolutionError(
            f"{what}={text}: no such local path, and the hub has no {repo_type} {repo_id} that this machine may read "
            f"(is the name right? gated repositories need HF_TOKEN). Hub said: {exc}"
        ) from exc
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:  # before EntryNotFoundError: a subclass of it
        raise HubResolutionError(
            f"{what}={text}: no such local path, and {repo_type} {repo_id} is not in the hub cache ({hub_constants.HF_HUB_CACHE}) and "
            + ("HF_HUB_OFFLINE is set" if offline else f"the hub ({hub_constants.ENDPOINT}) could not be reached")
            + f". Download it where there is a network (`hf download {repo_id}"
            + (" --repo-type dataset" if repo_type == "dataset" else "")
            + "`), point HF_ENDPOINT at a mirror, or pass a local path."
        ) from exc
    except (RevisionNotFoundError, EntryNotFoundError) as exc:
        raise HubResolutionError(f"{what}={text}: {exc}") from exc
    return Path(folder).resolve()


def extraction_marker(folder: Path, archive_name: str) -> Path:
    """The file that says ``archive_name`` was unpacked into ``folder``; without it, the next
    :func:`extract_archives` unpacks the archive again (how a rebuilt archive gets re-read)."""
    return folder / f"{_EXTRACTED_MARKER}-{archive_name}.done"


def extract_archives(root: Path) -> Path:
    """Unpack every ``*.zip`` under ``root`` once and return the folder they were unpacked into.

    Archives in a hub snapshot are unpacked into ``$HF_HOME/deepeyes/extracted/<repo
    folder>/<revision>`` (the hub cache itself stays as the hub client laid it out, so its
    own cache tools keep working); archives in a user's own folder are unpacked in place
    (next to the zip), as the published instructions do by hand. A marker file per archive makes a second call
    free. Member paths that would escape the target folder are refused.

    Returns:
        The folder that holds the unpacked files (``root`` itself for a user's folder).

    Raises:
        ValueError: an archive holds a member path outside its target folder.
        zipfile.BadZipFile: an archive is corrupt.
    """
    root = root.resolve()
    in_hub_cache = Path(hub_constants.HF_HUB_CACHE).resolve() in root.parents
    # A snapshot is <cache>/<repo folder>/snapshots/<revision>.
    target = Path(hub_constants.HF_HOME) / "deepeyes" / "extracted" / root.parent.parent.name / root.name if in_hub_cache else root
    for archive in sorted(root.rglob("*.zip")):
        destination = target / archive.parent.relative_to(root)
        marker = extraction_marker(destination, archive.name)
        if marker.exists():
            continue
        destination.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                if not (destination / member).resolve().is_relative_to(destination.resolve()):
                    raise ValueError(f"{archive}: member {member!r} would be written outside {destination}")
            logger.info("unpacking %s (%d files) into %s", archive.name, len(bundle.namelist()), destination)
            bundle.extractall(destination)
        marker.touch()
    return target


@dataclass(frozen=True)
class ResolveArguments:
    """``python -m deepeyes.hub``: print the local path for a hub name or path (shell scripts use it)."""

    name_or_path: str = field(metadata={"help": "a local path, or a hub id owner/name[@revision]"})
    repo_type: str = field(default="model", metadata={"help": "model or dataset", "choices": ["model", "dataset"]})
    extract: bool = field(default=False, metadata={"help": "also unpack the *.zip archives and print that folder on a second line"})
    what: str = field(default="path", metadata={"help": "the setting's name, for error messages (e.g. DATA_PATH)"})


def main(argv: list[str] | None = None) -> int:
    # HfArgumentParser: the CLI derives from the dataclass, as LLaMA-Factory's do.
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(ResolveArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        path = resolve(args.name_or_path, args.repo_type, what=args.what)  # type: ignore[arg-type]
        lines = [str(path)] + ([str(extract_archives(path))] if args.extract and path.is_dir() else [])
    except (HubResolutionError, ValueError, zipfile.BadZipFile) as exc:
        logger.error("%s", exc)
        return 2
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
