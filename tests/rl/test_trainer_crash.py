"""A killed trainer leaves no service behind, and ``--resume`` after the crash repairs what it can.

Issue 30, item 9, as the operator tried it: ``kill -9`` of the RL trainer left its reward
server (708 MB) and redis-server running and holding their ports; a torn last line in
``metrics.jsonl`` / ``trajectories.jsonl`` made ``--resume`` fail with a bare
``JSONDecodeError``; a checkpoint with overwritten adapter bytes loaded silently and failed
44 s later with "probability tensor contains inf/nan". Both engines' launch paths are killed
here once their services run (:mod:`process_watch`).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
from process_watch import Watched, start

from deepeyes.paths import REPO_ROOT
from deepeyes.rl.checkpoint import list_checkpoints, verify_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.redis]

TRAIN = REPO_ROOT / "reinforcement_learning" / "train.py"
CONFIGS = REPO_ROOT / "reinforcement_learning" / "configs"
GRACE_S = 20.0  # a sandbox server shuts its kernels down; Ray's processes follow its driver
REWARD_SERVER = "deepeyes.rewards.server"


def _assert_nothing_left(watched: Watched, how: str) -> None:
    survivors = watched.survivors(GRACE_S)
    assert not survivors, f"still running {GRACE_S:.0f} s after {how}: {survivors}"
    assert not watched.open_ports(), f"ports still open after {how}: {watched.open_ports()}"


def _local_argv(rl_sample_dir: Path, tool_config_file: Path, tiny_model_dir: Path, output: Path, *extra: str) -> list[str]:
    overrides = [
        f"model.base_model={tiny_model_dir}", "model.sft_lora_path=null",
        f"data.rl_data_path={rl_sample_dir / 'rl' / 'train.parquet'}",
        f"tool.tool_manager_config={tool_config_file}",
        f"tool.search_cache_path={rl_sample_dir / 'image_search' / 'cache.json'}",
        f"evaluation.reward_config={REPO_ROOT / 'reinforcement_learning' / 'evaluation_server' / 'reward_config.yaml'}",
        f"output.dir={output}", "data.batch_size=2", "rollout.n=2", "rollout.max_turns=2", "rollout.max_new_tokens=16",
        "training.batch_size=2", "training.gradient_accumulation_steps=1", "trainer.eval_steps=0",
        "output.save_steps=1", "output.save_total_limit=3", "algorithm.filter_groups.enable=false", *extra,
    ]  # fmt: skip
    argv = [sys.executable, str(TRAIN), "--config", str(CONFIGS / "deepeyes_rl.yaml"), "--no_progress"]
    for override in overrides:
        argv += ["--set", override]
    return argv


def _tear_last_line(path: Path, fragment: bytes) -> None:
    """What a write cut by ``kill -9`` leaves: a record's first bytes, no newline."""
    with path.open("ab") as handle:
        handle.write(fragment)


def _overwrite_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-256:] = b"\x7f" * 256  # same size: only the checksum can tell
    path.write_bytes(bytes(data))


@pytest.mark.timeout(2400)  # two runs of the tiny model with live services: ~15 min on a loaded 2-core machine
def test_killed_local_trainer_leaves_no_service_and_resumes_past_the_damage(
    tmp_path: Path, rl_sample_dir: Path, tool_config_file: Path, tiny_model_dir: Path
) -> None:
    output = tmp_path / "run"
    argv = _local_argv(rl_sample_dir, tool_config_file, tiny_model_dir, output, "trainer.total_steps=3")
    watched = start(argv, tmp_path / "train.log", cwd=tmp_path)
    try:
        watched.wait_for(lambda w: len(list_checkpoints(output)) >= 2 and w.has("redis-server", "deepeyes.sandbox.server", REWARD_SERVER),
                         900, "the step-2 checkpoint")
        watched.end(signal.SIGKILL)
        _assert_nothing_left(watched, "kill -9 of the trainer")
    finally:
        watched.cleanup()
    assert (output / "logs" / "redis" / "appendonlydir").is_dir()  # the run's Redis kept its data in the run folder

    # The crash as the operator found it: torn last lines and a damaged newest checkpoint.
    steps_logged = [json.loads(line)["step"] for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert steps_logged[:2] == [1, 2]
    _tear_last_line(output / "metrics.jsonl", b'{"step": 3, "critic/score/mean": -0.2')
    _tear_last_line(output / "trajectories.jsonl", b'{"id": "torn", "question": "How many yellow squ')
    newest = list_checkpoints(output)[-1]
    assert newest.name == "step-000002"
    _overwrite_bytes(newest / "policy" / "adapter_model.safetensors")

    resumed = start([*argv, "--resume"], tmp_path / "resume.log", cwd=tmp_path)
    try:
        assert resumed.process.wait(timeout=900) == 0, resumed.log()
    finally:
        resumed.cleanup()
    log = (tmp_path / "resume.log").read_text()
    assert "policy/adapter_model.safetensors: SHA-256 differs from the manifest" in log
    assert "step-000001, the newest intact checkpoint" in log
    metrics_lines = len(steps_logged) + 1  # the torn fragment is the line after the last whole record
    assert f"{output / 'metrics.jsonl'}:{metrics_lines}: torn last line" in log
    assert f"{output / 'trajectories.jsonl'}:" in log and "JSONDecodeError" not in log
    assert [json.loads(line)["step"] for line in (output / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    trajectories = [json.loads(line) for line in (output / "trajectories.jsonl").read_text().splitlines()]
    assert sorted({t["metadata"]["step"] for t in trajectories}) == [1, 2, 3]
    assert [c.name for c in list_checkpoints(output)] == ["step-000001", "step-000002", "step-000003"]
    assert all(verify_checkpoint(c) for c in list_checkpoints(output))  # step 2 written again, intact


def test_killed_verl_trainer_leaves_no_service(tmp_path: Path, rl_sample_dir: Path, tool_config_file: Path) -> None:
    """The verl engine's launch path: our reward server, verl's ``main_ppo`` and the Ray cluster it starts."""
    output = tmp_path / "run"
    argv = [
        sys.executable, str(TRAIN), "--config", str(CONFIGS / "deepeyes_rl_verl_cpu.yaml"),
        "--set", f"output.dir={output}", "--set", "model.sft_lora_path=null",
        "--set", f"data.rl_data_path={rl_sample_dir / 'rl' / 'train.parquet'}",
        "--set", f"tool.search_cache_path={rl_sample_dir / 'image_search' / 'cache.json'}",
        "--set", f"tool.tool_manager_config={tool_config_file}",
    ]  # fmt: skip
    watched = start(argv, tmp_path / "train.log", cwd=REPO_ROOT)
    try:
        watched.wait_for(lambda w: w.has(REWARD_SERVER, "verl.trainer.main_ppo", "gcs_server", "raylet"), 600, "Ray started by verl")
        watched.end(signal.SIGKILL)
        _assert_nothing_left(watched, "kill -9 of the trainer (verl engine)")
    finally:
        watched.cleanup()
