"""The seed's inference switches on ``python -m deepeyes.infer``: ``--force_no_tool`` (a request switch) and ``--tool_call_threshold`` (a logits gate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from deepeyes import infer
from deepeyes.model_args import build_policy
from deepeyes.policies.tool_gate import ToolCallGate


def _args(tmp_path: Path, *flags: str):
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), "red").save(image)
    args, model, tools, _ = infer.parse_args(["--image", str(image), "--question", "what colour?", *flags])
    return args, model, tools


def test_a_local_model_gets_the_threshold_as_a_logits_gate(tmp_path: Path, tiny_model_dir: Path) -> None:
    _, model, _ = _args(tmp_path, "--model_path", str(tiny_model_dir), "--tool_call_threshold", "0.7")
    policy = build_policy(model)
    assert policy.config.tool_call_threshold == 0.7
    assert any(isinstance(p, ToolCallGate) for p in policy._logits_processors)  # applied while generating


def test_force_no_tool_and_disable_tools_travel_on_the_request(tmp_path: Path) -> None:
    args, model, tools = _args(tmp_path, "--force_no_tool", "--temperature", "0.4")
    request = infer.make_request(args, model, tools, [Image.new("RGB", (8, 8))])
    assert request.force_no_tool and request.sampling is not None and request.sampling.temperature == 0.4
    args, model, tools = _args(tmp_path, "--disable_tools", "text_search,image_search")
    request = infer.make_request(args, model, tools, [Image.new("RGB", (8, 8))])
    assert request.disabled_tools == {"search", "image_search"} and not request.force_no_tool  # the seed's names


def test_a_server_cannot_take_a_threshold_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), "red").save(image)
    code = infer.main(["--image", str(image), "--question", "q", "--api_base", "http://127.0.0.1:9/v1", "--tool_call_threshold", "0.5"])
    assert code == 2
    assert "tool_call_threshold needs the model's token probabilities" in capsys.readouterr().out
    # force_no_tool alone is fine remotely: it is a switch of the request, not of the model.
    _, model, _ = _args(tmp_path, "--api_base", "http://127.0.0.1:9/v1", "--force_no_tool")
    assert build_policy(model) is not None


def test_a_threshold_outside_0_1_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _args(tmp_path, "--tool_call_threshold", "1.5")
    assert exit_info.value.code == 2


def test_force_no_tool_run_is_one_direct_turn_without_tools(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The whole CLI path with the switch on: one turn, nothing run, however many turns were allowed."""
    out = tmp_path / "trajectory.jsonl"
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), "red").save(image)
    code = infer.main([
        "--model_path", str(tiny_model_dir), "--image", str(image), "--question", "what colour?", "--force_no_tool",
        "--max_turns", "4", "--max_new_tokens", "24", "--trajectory_out", str(out),
    ])
    assert code == 0
    trajectory = json.loads(out.read_text().splitlines()[-1])
    assert len(trajectory["turns"]) == 1 and trajectory["turns"][0]["observation"] is None
    assert trajectory["stop_reason"] in ("answer", "no_action", "length")
    assert not any(trajectory["tool_calls"].values())
