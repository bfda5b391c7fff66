"""The agent loop over real tools: error observations, budgets, repeats, concurrency, schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from deepeyes import wire
from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest
from deepeyes.paths import REPO_ROOT
from deepeyes.policies.hf import HFPolicy
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.tool_manager import ToolManager
from deepeyes.trajectory import read_jsonl, validate

RED = Image.new("RGB", (40, 30), (255, 0, 0))


def answer(text: str = "done") -> str:
    return wire.think("answer now") + wire.answer_action(text)


def code(source: str) -> str:
    return wire.think("compute") + wire.code_action(source)


@pytest.mark.parametrize(
    ("bad_turn", "message"),
    [
        ("<think>hmm</think> I think it is red.", "No action found"),
        ('<think>s</think><tool_call>\n{"name": "search", "arguments": {"query": "x"\n</tool_call>', "not valid JSON"),
        ('<tool_call>\n{"name": "calculator", "arguments": {"expr": "1+1"}}\n</tool_call>', "Unknown tool 'calculator'"),
        ('<tool_call>\n{"name": "image_search", "arguments": {"q": "x"}}\n</tool_call>', "takes no arguments"),
        ("<code>\n```python\nprint(1)\n```\n", "not closed"),
    ],
)
def test_malformed_turn_gets_error_observation_and_loop_continues(tool_manager: ToolManager, bad_turn: str, message: str) -> None:
    trajectory = AgentLoop(tool_manager).run(ScriptedPolicy([bad_turn, answer("red")]), [RED], "What colour?")
    first = trajectory.turns[0]
    assert first.action.kind == "invalid"
    assert first.observation is not None and first.observation.status == "error"
    assert message in first.observation.text and first.observation.text.startswith(wire.TOOL_RESPONSE_OPEN)
    assert (trajectory.final_answer, trajectory.stop_reason) == ("red", "answer")
    assert trajectory.tool_calls.invalid == 1 and trajectory.tool_calls.total == 0
    validate(trajectory.to_dict())


def test_code_error_comes_back_in_the_code_observation_shape(tool_manager: ToolManager) -> None:
    policy = ScriptedPolicy([code("print(undefined_name)"), code("print(image_1.size)"), answer("40x30")])
    trajectory = AgentLoop(tool_manager).run(policy, [RED], "size?")
    failed, ok = trajectory.turns[0].observation, trajectory.turns[1].observation
    assert failed.status == "error" and "NameError" in failed.text and failed.text.startswith("Code execution result:")
    assert ok.status == "success" and "(40, 30)" in ok.text
    assert trajectory.tool_calls.code == 2 and trajectory.tool_calls.failed == 1


def test_figures_come_back_as_observation_images(tool_manager: ToolManager) -> None:
    show = "import matplotlib.pyplot as plt\nplt.imshow(image_1)\nplt.show()\ndisplay(image_1.resize((80, 60)))"
    rollout = AgentLoop(tool_manager).rollout(ScriptedPolicy([code(show), answer()]), AgentRequest("look", [RED]))
    observation = rollout.trajectory.turns[0].observation
    assert observation.image_count == 2 and observation.text.endswith("Images:\n<image><image>")
    tool_turn = rollout.messages[3]
    assert tool_turn.role == "user" and len(tool_turn.images) == 2
    assert tool_turn.images[1].size == (80, 60)


def test_repeated_calls_are_flagged_and_budget_is_enforced(tool_manager: ToolManager) -> None:
    tool_manager.config.tools.max_calls_per_session, saved = 3, tool_manager.config.tools.max_calls_per_session
    try:
        turns = [code("x = 1"), code("x = 1"), code("y = 2"), code("z = 3"), answer()]
        trajectory = AgentLoop(tool_manager).run(ScriptedPolicy(turns), [RED], "q")
    finally:
        tool_manager.config.tools.max_calls_per_session = saved
    statuses = [t.observation.status for t in trajectory.turns[:4]]
    assert statuses == ["success", "success", "success", "budget_exceeded"]
    assert [t.observation.repeated for t in trajectory.turns[:3]] == [False, True, False]
    assert trajectory.tool_calls.repeated == 1 and trajectory.tool_calls.code == 3 and trajectory.tool_calls.invalid == 1


def test_disabled_tool_is_refused_with_a_readable_observation(tool_manager: ToolManager) -> None:
    tool_manager.disable_tools(["code"])
    try:
        trajectory = AgentLoop(tool_manager).run(ScriptedPolicy([code("print(1)"), answer()]), [RED], "q")
    finally:
        tool_manager.enable_tools(["code"])
    observation = trajectory.turns[0].observation
    assert observation.status == "disabled" and "not available" in observation.text
    with pytest.raises(ValueError, match="unknown tool"):
        tool_manager.disable_tools(["browser"])


def test_max_turns_stops_the_loop(tool_manager: ToolManager) -> None:
    loop = AgentLoop(tool_manager, AgentConfig(max_turns=3))
    trajectory = loop.run(ScriptedPolicy(lambda messages: code(f"print({len(messages)})")), [RED], "q")
    assert trajectory.stop_reason == "max_turns" and len(trajectory.turns) == 3 and trajectory.final_answer is None


def test_no_tool_mode_is_single_turn_and_calls_nothing(tool_manager: ToolManager) -> None:
    loop = AgentLoop(None, AgentConfig(use_tools=False))
    trajectory = loop.run(ScriptedPolicy([code("print(1)"), answer()]), [RED], "q")
    assert len(trajectory.turns) == 1 and trajectory.turns[0].observation is None
    assert trajectory.tool_calls.total == 0 and trajectory.stop_reason == "no_action"


def test_sixteen_concurrent_trajectories_do_not_cross_talk(tool_manager: ToolManager) -> None:
    def script(i: int) -> list[str]:
        return [code(f"secret = {i} * 7"), code("print(secret, image_1.getpixel((0, 0)))"), answer(str(i))]

    colours = [(i * 10, 255 - i * 10, i) for i in range(16)]
    policy = ScriptedPolicy({f"q{i}": script(i) for i in range(16)})
    requests = [AgentRequest(f"q{i}", [Image.new("RGB", (30, 30), colours[i])], id=f"t{i}") for i in range(16)]
    rollouts = AgentLoop(tool_manager, AgentConfig(concurrency=16)).run_batch(policy, requests)
    for i, rollout in enumerate(rollouts):
        trajectory = rollout.trajectory
        assert trajectory.id == f"t{i}" and trajectory.final_answer == str(i)
        assert f"{i * 7} {colours[i]}" in trajectory.turns[1].observation.text


def test_tiny_model_produces_a_schema_valid_trajectory(tool_manager: ToolManager, tiny_model_dir: Path) -> None:
    policy = HFPolicy(tiny_model_dir, max_new_tokens=24)
    trajectory = AgentLoop(tool_manager, AgentConfig(max_turns=3)).run(policy, [RED], "How many red circles?")
    assert 1 <= len(trajectory.turns) <= 3
    validate(json.loads(trajectory.to_json()))


@pytest.mark.redis
def test_infer_cli_end_to_end_writes_a_valid_trajectory(tmp_path: Path, tiny_model_dir: Path) -> None:
    image = tmp_path / "red.png"
    RED.save(image)
    out = tmp_path / "t.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "deepeyes.infer", "--model_path", str(tiny_model_dir), "--image", str(image),
         "--question", "What colour is this?", "--max_turns", "2", "--max_new_tokens", "16", "--trajectory_out", str(out)],
        check=False,
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "turn 1" in result.stdout and "final answer:" in result.stdout
    (trajectory,) = read_jsonl(out)
    assert trajectory.images == [str(image)] and 1 <= len(trajectory.turns) <= 2


def test_infer_cli_rejects_an_undecodable_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (a fresh interpreter cost a minute of a loaded 2-core machine); the end-to-end test above runs ``-m deepeyes.infer``."""
    from deepeyes.infer import main

    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    assert main(["--image", str(bad), "--question", "q"]) == 2
    assert "cannot decode" in capsys.readouterr().out
