"""Checkpoints that a run can resume from exactly where it stopped, and only if they are intact.

A checkpoint holds the trainable weights (the RL LoRA adapter, or the full model without
LoRA), the optimizer, the value head (PPO), the RNG states, the step and what the engine adds
(the prompt stream's position). The prompt order is a function of the seed and the step, so
nothing about the data needs saving.

A crash must not leave a checkpoint that resumes into garbage. Each one is written into a
temporary folder beside its final place, every file is hashed and flushed to disk, a manifest
(:data:`MANIFEST_FILE`: the SHA-256 and size of every file) is written last, and only then is the
folder renamed into place (one ``rename(2)``: a reader sees all of it or none of it). Resuming
checks the manifest before loading anything: a file whose bytes changed (an adapter overwritten
by a copy gone wrong, a disk error) is found at once, naming the file, instead of as
``probability tensor contains inf/nan`` when the policy first samples. ``--resume`` without a path
then falls back to the newest intact checkpoint and says so. Checkpoints written before manifests
existed are still accepted, with a warning that they cannot be checked.

The run's logs are append-only JSONL files that a crash may cut mid-line; :func:`truncate_log`
is how a resumed run keeps the records up to its checkpoint, dropping a torn last line with a
warning that names the file and line.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepeyes.rl.config import RLSetupError
from deepeyes.utils.hashing import file_sha256
from deepeyes.utils.jsonl import TORN_LINE, iter_jsonl

logger = logging.getLogger(__name__)

PREFIX = "step-"
STATE_FILE = "trainer_state.json"
#: Written last: ``{"files": {relative path: {"sha256", "bytes"}}}`` for every other file.
MANIFEST_FILE = "manifest.json"
#: Folders being written (``.step-000003.partial-<pid>``); a crash leaves one behind, removed on the next save.
PARTIAL_MARK = ".partial-"


class CheckpointError(RLSetupError):
    """A checkpoint that must not be resumed: files missing, changed or unreadable (the message names them)."""


@dataclass
class TrainerState:
    step: int  # steps completed
    config: dict[str, Any]


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return output_dir / "checkpoints" / f"{PREFIX}{step:06d}"


def _step_of(path: Path) -> int | None:
    try:
        return int(path.name[len(PREFIX) :])
    except ValueError:
        return None


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Finished checkpoints (those with a state file, in place), oldest first; not yet verified."""
    root = output_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and _step_of(p) is not None and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: _step_of(p) or 0)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(directory: Path) -> dict[str, Any]:
    """Hash every file under ``directory`` (flushing each to disk), then write :data:`MANIFEST_FILE`."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST_FILE):
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
        files[path.relative_to(directory).as_posix()] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    manifest = {"format": 1, "files": files}
    target = directory / MANIFEST_FILE
    with target.open("w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    return manifest


def verify_checkpoint(directory: Path) -> bool:
    """Check ``directory`` against its manifest.

    Returns:
        True when every listed file has its recorded size and SHA-256; False for a checkpoint
        written before manifests existed (nothing to check against; the caller warns).

    Raises:
        CheckpointError: no state file, an unreadable manifest, or a listed file missing,
            resized or with other bytes (the message names each).
    """
    if not (directory / STATE_FILE).is_file():
        raise CheckpointError(f"{directory}: not a checkpoint directory (no {STATE_FILE})")
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        return False
    try:
        files = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    problems = []
    for name, entry in sorted(files.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        size = path.stat().st_size
        if size != entry.get("bytes"):
            problems.append(f"{name}: {size} bytes, the manifest says {entry.get('bytes')}")
        elif file_sha256(path) != entry.get("sha256"):
            problems.append(f"{name}: SHA-256 differs from the manifest (its bytes were changed)")
    if problems:
        raise CheckpointError(f"{directory} is damaged: " + "; ".join(problems))
    return True


def _write_state(directory: Path, state: TrainerState) -> None:
    (directory / STATE_FILE).write_text(json.dumps({"step": state.step, "config": state.config}, indent=2), encoding="utf-8")


def _remove_partials(root: Path) -> None:
    for leftover in root.glob(f".{PREFIX}*{PARTIAL_MARK}*"):
        shutil.rmtree(leftover, ignore_errors=True)


def save_checkpoint(
    output_dir: Path,
    state: TrainerState,
    policy: Any,
    optimizer: torch.optim.Optimizer,
    value_head: torch.nn.Module | None,
    keep: int,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write the checkpoint of ``state.step`` atomically, with a manifest, and keep the newest ``keep``.

    ``policy.save(folder)`` writes the weights; ``extra_files`` (name → text) are written beside the
    state (the local engine's prompt-stream position). The folder is built under a temporary
    name and renamed into place once its manifest is on disk; a checkpoint of the same step is
    replaced only then. Returns the checkpoint's folder.
    """
    final = checkpoint_dir(output_dir, state.step)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    _remove_partials(root)
    partial = root / f".{final.name}{PARTIAL_MARK}{os.getpid()}"
    partial.mkdir()
    policy.save(partial / "policy")
    torch.save(optimizer.state_dict(), partial / "optimizer.pt")
    if value_head is not None:
        torch.save(value_head.state_dict(), partial / "value_head.pt")
    torch.save({"torch": torch.get_rng_state(), "python": random.getstate()}, partial / "rng.pt")
    for name, text in (extra_files or {}).items():
        (partial / name).write_text(text, encoding="utf-8")
    _write_state(partial, state)
    write_manifest(partial)
    if final.exists():  # the same step saved again (a run resumed from an older checkpoint)
        replaced = root / f".{final.name}{PARTIAL_MARK}replaced-{os.getpid()}"
        final.rename(replaced)
        partial.rename(final)
        shutil.rmtree(replaced, ignore_errors=True)
    else:
        partial.rename(final)
    _fsync_directory(root)
    logger.info("saved checkpoint %s", final)
    if keep > 0:
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old)
    return final


def read_state(directory: Path) -> TrainerState:
    data = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    return TrainerState(step=int(data["step"]), config=data.get("config", {}))


def restore_training_state(directory: Path, optimizer: torch.optim.Optimizer, value_head: torch.nn.Module | None) -> TrainerState:
    """Load optimizer, value head and RNG states from ``directory`` (weights are loaded with the policy)."""
    optimizer.load_state_dict(torch.load(directory / "optimizer.pt", weights_only=False))
    if value_head is not None:
        value_head.load_state_dict(torch.load(directory / "value_head.pt"))
    rng = torch.load(directory / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    return read_state(directory)


def _checked(directory: Path) -> Path:
    """``directory`` if its manifest holds (a legacy checkpoint passes, with a warning); else CheckpointError."""
    if not verify_checkpoint(directory):
        logger.warning("%s has no %s (written by an older version): resuming from it unchecked", directory, MANIFEST_FILE)
    return directory


def resolve_resume(output_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint to resume from, verified against its manifest.

    ``None`` → start fresh; ``"auto"`` → the newest *intact* checkpoint under ``output_dir`` (None
    when there is none): each damaged newer one is named in a warning and skipped. A path →
    that checkpoint, which must be intact.

    Raises:
        FileNotFoundError: the path is not a checkpoint directory.
        CheckpointError: the named checkpoint is damaged, or (``auto``) every checkpoint is.
    """
    if resume is None:
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        damaged: list[str] = []
        for directory in reversed(found):
            try:
                chosen = _checked(directory)
            except CheckpointError as exc:
                damaged.append(str(exc))
                logger.warning("not resuming from %s: %s", directory.name, exc)
                continue
            if damaged:
                logger.warning(
                    "resuming from %s, the newest intact checkpoint, instead of %d newer damaged one(s)", chosen, len(damaged)
                )
            return chosen
        if damaged:
            raise CheckpointError(f"no intact checkpoint under {output_dir / 'checkpoints'}: " + " | ".join(damaged))
        return None
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"--resume {resume}: not a checkpoint directory (no {STATE_FILE})")
    try:
        return _checked(path)
    except CheckpointError as exc:
        intact = [c for c in list_checkpoints(path.parent.parent) if c != path and _intact(c)]
        hint = f"; the newest intact one is {intact[-1]}" if intact else ""
        raise CheckpointError(f"--resume {resume}: {exc}{hint}") from exc


def _intact(directory: Path) -> bool:
    try:
        verify_checkpoint(directory)
    except CheckpointError:
        return False
    return True


def truncate_log(path: Path, keep: Callable[[Any], bool]) -> int:
    """Rewrite the JSONL log ``path`` with only the records ``keep`` accepts; returns how many were kept.

    A torn last line (a write cut by a crash, :data:`deepeyes.utils.jsonl.TORN_LINE`) is dropped
    with a warning naming the file and line. Any other line that is not JSON cannot come from a
    crash of this writer, so it is not guessed at.

    Raises:
        RLSetupError: a bad line before the last one, or a record ``keep`` cannot read (names ``path:line``).
    """
    if not path.is_file():
        return 0
    raw_lines = path.read_bytes().split(b"\n")  # line n is raw_lines[n - 1], as iter_jsonl counts them
    kept: list[bytes] = []
    for line_number, record, problem in iter_jsonl(path):
        if problem is not None:
            if problem.startswith(TORN_LINE):
                logger.warning("%s:%d: %s; dropped (the run that wrote it stopped mid-write)", path, line_number, problem)
                continue
            raise RLSetupError(f"{path}:{line_number}: {problem}; fix or delete that line, then resume again")
        try:
            wanted = keep(record)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RLSetupError(f"{path}:{line_number}: not a record this log holds ({type(exc).__name__}: {exc})") from exc
        if wanted:
            kept.append(raw_lines[line_number - 1] + b"\n")
    temporary = path.with_name(f".{path.name}.rewrite-{os.getpid()}")
    temporary.write_bytes(b"".join(kept))
    temporary.replace(path)
    return len(kept)
