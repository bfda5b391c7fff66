"""Checkpoints that a run can resume from exactly where it stopped.

A checkpoint holds the trainable weights (the RL LoRA adapter, or the full model without
LoRA), the optimizer, the value head (PPO), the RNG states and the step. The prompt order
is a function of the seed and the step, so nothing about the data needs saving.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

PREFIX = "step-"
STATE_FILE = "trainer_state.json"


@dataclass
class TrainerState:
    step: int  # steps completed
    config: dict[str, Any]


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return output_dir / "checkpoints" / f"{PREFIX}{step:06d}"


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints (those with a state file), oldest first."""
    root = output_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def save_checkpoint(
    output_dir: Path,
    state: TrainerState,
    policy: Any,
    optimizer: torch.optim.Optimizer,
    value_head: torch.nn.Module | None,
    keep: int,
) -> Path:
    """Write a checkpoint for ``state.step`` (state file last, so a half-written one is never resumed)."""
    directory = checkpoint_dir(output_dir, state.step)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    policy.save(directory / "policy")
    torch.save(optimizer.state_dict(), directory / "optimizer.pt")
    if value_head is not None:
        torch.save(value_head.state_dict(), directory / "value_head.pt")
    torch.save({"torch": torch.get_rng_state(), "python": random.getstate()}, directory / "rng.pt")
    (directory / STATE_FILE).write_text(json.dumps({"step": state.step, "config": state.config}, indent=2), encoding="utf-8")
    logger.info("saved checkpoint %s", directory)
    if keep > 0:
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old)
    return directory


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


def resolve_resume(output_dir: Path, resume: str | None) -> Path | None:
    """``None`` → start fresh; ``"auto"`` → the newest checkpoint under ``output_dir`` if any; else a path."""
    if resume is None:
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"--resume {resume}: not a checkpoint directory (no {STATE_FILE})")
    return path
