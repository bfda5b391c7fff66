"""Resuming after a crash: checksummed, atomic checkpoints with a fall-back, and logs with a torn last line.

Issue 30, item 9: a checkpoint whose adapter bytes were overwritten loaded silently and failed
44 s later with "probability tensor contains inf/nan"; a torn last line in ``metrics.jsonl`` or
``trajectories.jsonl`` made ``--resume`` fail with a bare ``JSONDecodeError`` naming no file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from deepeyes.rl import checkpoint
from deepeyes.rl.checkpoint import MANIFEST_FILE, CheckpointError, TrainerState
from deepeyes.rl.config import RLSetupError
from deepeyes.rl.local_engine import STREAM_FILE, _truncate_trajectories
from deepeyes.rl.metrics import MetricsWriter
from deepeyes.utils.hashing import file_sha256

ADAPTER = "policy/adapter_model.safetensors"


class _Policy:
    """Writes what a LoRA policy writes: adapter weights and their config."""

    def __init__(self, fail: bool = False):
        self.fail = fail

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"lora_A": torch.randn(8, 4), "lora_B": torch.randn(4, 8)}, directory / "adapter_model.safetensors")
        if self.fail:
            raise OSError("disk full")
        (directory / "adapter_config.json").write_text(json.dumps({"r": 4}), encoding="utf-8")


def _optimizer() -> torch.optim.Optimizer:
    layer = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(layer.parameters())
    layer(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    return optimizer


def _save(output: Path, step: int, keep: int = 0, policy: _Policy | None = None) -> Path:
    return checkpoint.save_checkpoint(
        output, TrainerState(step=step, config={"seed": 1}), policy or _Policy(), _optimizer(), None, keep=keep,
        extra_files={STREAM_FILE: json.dumps({"position": 2 * step})},
    )


def _overwrite_bytes(path: Path) -> None:
    """Same size, other bytes: what a copy gone wrong or a bad disk leaves (nothing a size check sees)."""
    data = bytearray(path.read_bytes())
    data[-64:] = b"\xff" * 64
    path.write_bytes(bytes(data))


def test_a_checkpoint_lists_every_file_with_its_checksum(tmp_path: Path) -> None:
    directory = _save(tmp_path, 1)
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    assert sorted(manifest["files"]) == files
    assert {ADAPTER, "optimizer.pt", "rng.pt", checkpoint.STATE_FILE, STREAM_FILE} <= set(files)
    for name, entry in manifest["files"].items():
        assert entry == {"sha256": file_sha256(directory / name), "bytes": (directory / name).stat().st_size}
    assert checkpoint.verify_checkpoint(directory) is True
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000001"]  # no temporary folder left


def test_a_save_cut_short_leaves_no_checkpoint_and_the_next_save_clears_it(tmp_path: Path) -> None:
    first = _save(tmp_path, 1)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 2, policy=_Policy(fail=True))
    assert checkpoint.list_checkpoints(tmp_path) == [first]
    assert checkpoint.resolve_resume(tmp_path, "auto") == first
    assert any(".partial-" in p.name for p in (tmp_path / "checkpoints").iterdir())
    _save(tmp_path, 2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000001", "step-000002"]


def test_overwritten_adapter_bytes_are_found_at_resume_and_the_previous_checkpoint_is_used(tmp_path, caplog) -> None:
    first = _save(tmp_path, 1)
    second = _save(tmp_path, 2)
    _overwrite_bytes(second / ADAPTER)
    with caplog.at_level(logging.WARNING, logger="deepeyes.rl.checkpoint"):
        assert checkpoint.resolve_resume(tmp_path, "auto") == first
    text = caplog.text
    assert f"{ADAPTER}: SHA-256 differs from the manifest" in text and "step-000002" in text
    assert f"resuming from {first}, the newest intact checkpoint, instead of 1 newer damaged one(s)" in text


def test_a_named_damaged_checkpoint_is_refused_naming_the_file_and_the_intact_one(tmp_path: Path) -> None:
    first = _save(tmp_path, 1)
    second = _save(tmp_path, 2)
    (second / "optimizer.pt").unlink()
    with pytest.raises(CheckpointError, match=r"optimizer\.pt: missing") as caught:
        checkpoint.resolve_resume(tmp_path, str(second))
    assert f"the newest intact one is {first}" in str(caught.value)
    assert isinstance(caught.value, RLSetupError)  # train.py reports it as "cannot start: ..."


def test_every_checkpoint_damaged_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    only = _save(tmp_path, 1)
    with (only / ADAPTER).open("ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(CheckpointError, match=r"no intact checkpoint.*adapter_model\.safetensors: \d+ bytes, the manifest says \d+"):
        checkpoint.resolve_resume(tmp_path, "auto")


def test_a_checkpoint_from_before_manifests_resumes_with_a_warning(tmp_path, caplog) -> None:
    legacy = _save(tmp_path, 1)
    (legacy / MANIFEST_FILE).unlink()
    with caplog.at_level(logging.WARNING, logger="deepeyes.rl.checkpoint"):
        assert checkpoint.resolve_resume(tmp_path, "auto") == legacy
    assert "written by an older version" in caplog.text


def test_a_step_saved_again_replaces_the_damaged_one_and_old_ones_are_pruned(tmp_path: Path) -> None:
    for step in (1, 2):
        _save(tmp_path, step, keep=2)
    _overwrite_bytes(checkpoint.checkpoint_dir(tmp_path, 2) / ADAPTER)
    assert checkpoint.resolve_resume(tmp_path, "auto") == checkpoint.checkpoint_dir(tmp_path, 1)
    _save(tmp_path, 2, keep=2)  # the resumed run reaches step 2 again
    _save(tmp_path, 3, keep=2)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["step-000002", "step-000003"]
    assert all(checkpoint.verify_checkpoint(p) for p in checkpoint.list_checkpoints(tmp_path))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000002", "step-000003"]


# -- logs with a torn last line ----------------------------------------------------------------


def _write_torn(path: Path, lines: list[dict], torn: bytes) -> None:
    path.write_bytes("".join(json.dumps(line) + "\n" for line in lines).encode() + torn)


# Cut inside a number, inside a multi-byte character, right after the first byte.
@pytest.mark.parametrize("torn", [b'{"step": 3, "critic/score/mean": 0.2', b'{"step": 3, "note": "caf\xc3', b"{"])
def test_metrics_with_a_torn_last_line_resume_with_a_warning_naming_file_and_line(tmp_path, caplog, torn: bytes) -> None:
    writer = MetricsWriter(tmp_path)
    records = [{"step": step, "critic/score/mean": step / 10} for step in range(3)]
    _write_torn(writer.path, records, torn)
    kept_bytes = b"".join(line + b"\n" for line in writer.path.read_bytes().split(b"\n")[:2])
    with caplog.at_level(logging.WARNING, logger="deepeyes.rl.checkpoint"):
        writer.truncate_after(1)
    assert f"{writer.path}:4: torn last line" in caplog.text
    assert writer.path.read_bytes() == kept_bytes  # the kept records, byte for byte
    writer.write(2, {"critic/score/mean": 0.5})
    assert [json.loads(line)["step"] for line in writer.path.read_text().splitlines()] == [0, 1, 2]


def test_trajectories_with_a_torn_last_line_resume_with_a_warning(tmp_path, caplog) -> None:
    path = tmp_path / "trajectories.jsonl"
    rows = [{"id": f"t{i}", "metadata": {"step": step}} for i, step in enumerate((1, 1, 2, 2))]
    _write_torn(path, rows, b'{"id": "t4", "metadata": {"step": 3}, "question": "How many squa')
    with caplog.at_level(logging.WARNING, logger="deepeyes.rl.checkpoint"):
        _truncate_trajectories(path, 2)
    assert f"{path}:5: torn last line" in caplog.text
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["t0", "t1", "t2", "t3"]
    _truncate_trajectories(path, 1)
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["t0", "t1"]


def test_a_bad_line_that_no_crash_explains_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path)
    writer.path.write_text('{"step": 0}\nnot json\n{"step": 1}\n', encoding="utf-8")
    with pytest.raises(RLSetupError, match=rf"{writer.path}:2: not JSON"):
        writer.truncate_after(1)
    writer.path.write_text('{"step": 0}\n{"score": 1}\n', encoding="utf-8")
    with pytest.raises(RLSetupError, match=rf"{writer.path}:2: not a record this log holds \(KeyError"):
        writer.truncate_after(1)


def test_a_fresh_run_starts_its_logs_over_whatever_they_hold(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path)
    writer.path.write_text('garbage\n{"step": 1', encoding="utf-8")
    writer.truncate_after(-1)
    trajectories = tmp_path / "trajectories.jsonl"
    trajectories.write_text("garbage\n", encoding="utf-8")
    _truncate_trajectories(trajectories, 0)
    assert writer.path.read_text() == "" and trajectories.read_text() == ""
