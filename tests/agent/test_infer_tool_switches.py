"""The seed's inference switches on ``python -m deepeyes.infer``: ``--force_no_tool`` and ``--tool_call_threshold``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from deepeyes import infer
from deepeyes.policies.tool_gate import ToolCallGate
from deepeyes.tools.registry import REGISTRY


def _args(tmp_path: Path, *flags: str) -> infer.InferArguments:
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), "red").save(image)
    args, _ = infer.parse_args(["--image", str(image), "--question", "what colour?", *flags])
    return args


def test_a_local_model_gets_the_threshold_and_the_force_switch(tmp_path: Path, tiny_model_dir: Path) -> None:
    policy = infer.make_policy(_args(tmp_path, "--model_path", str(tiny_model_dir), "--tool_call_threshold", "0.7", "--force_no_tool"))
    assert (policy.config.tool_call_threshold, policy.config.force_no_tool) == (0.7, True)
    assert any(isinstance(p, ToolCallGate) for p in policy._logits_processors)  # applied while generating


def test_force_no_tool_disables_every_tool(tmp_path: Path) -> None:
    manager = infer.make_tool_manager(_args(tmp_path, "--force_no_tool"))
    assert manager is not None and manager.disabled_tools == set(REGISTRY.names())
    partial = infer.make_tool_manager(_args(tmp_path, "--disable_tools", "text_search,image_search"))
    assert partial is not None and {"search", "image_search"} <= partial.disabled_tools  # the seed's names
    assert "code" not in partial.disabled_tools


def test_a_server_cannot_take_a_threshold_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), "red").save(image)
    code = infer.main(["--image", str(image), "--question", "q", "--api_base", "http://127.0.0.1:9/v1", "--tool_call_threshold", "0.5"])
    assert code == 2
    assert "tool_call_threshold needs the model's token probabilities" in capsys.readouterr().out
    # force_no_tool alone is fine remotely: it is honoured by disabling every tool.
    assert infer.make_policy(_args(tmp_path, "--api_base", "http://127.0.0.1:9/v1", "--force_no_tool")) is not None


def test_a_threshold_outside_0_1_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _args(tmp_path, "--tool_call_threshold", "1.5")
    assert exit_info.value.code == 2


@pytest.mark.redis
def test_force_no_tool_run_makes_no_tool_call(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The whole CLI path with the switch on (the gate's effect on sampling is tested in test_tool_gate.py)."""
    out = tmp_path / "trajectory.jsonl"
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), "red").save(image)
    code = infer.main([
        "--model_path", str(tiny_model_dir), "--image", str(image), "--question", "what colour?", "--force_no_tool",
        "--max_turns", "1", "--max_new_tokens", "24", "--trajectory_out", str(out),
    ])
    assert code == 0
    trajectory = json.loads(out.read_text().splitlines()[-1])
    assert trajectory["turns"]
    assert all("<tool_call>" not in turn["model_text"] and "<code>" not in turn["model_text"] for turn in trajectory["turns"])
