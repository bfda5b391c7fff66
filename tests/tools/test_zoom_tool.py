"""The fourth tool, DeepEyes v1's image_zoom_in_tool, end to end: loop, reward counts, evaluation metrics."""

from __future__ import annotations

import pytest
from PIL import Image

from deepeyes import wire
from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest
from deepeyes.evaluation.metrics import dataset_metrics
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.rewards import score_response, score_trajectory
from deepeyes.tool_manager import ToolManager
from deepeyes.tool_specs import spec
from deepeyes.trajectory import TOOL_KINDS, Trajectory

# Left half red, right half blue: the crop shows which half was asked for.
IMAGE = Image.new("RGB", (200, 100), (255, 0, 0))
IMAGE.paste((0, 0, 255), (100, 0, 200, 100))


def zoom(box: list, label: str | None = None) -> str:
    arguments = {"bbox_2d": box} if label is None else {"bbox_2d": box, "label": label}
    return wire.think("look closer") + wire.tool_call_action("image_zoom_in_tool", arguments)


def test_registered_and_parsed_like_deepeyes_v1() -> None:
    assert "image_zoom_in_tool" in TOOL_KINDS and spec("zoom_in").name == "image_zoom_in_tool"
    action = wire.parse_action(zoom([110.4, 0, 190, 99.6], "blue half"))
    assert action.kind == "image_zoom_in_tool"
    assert action.content == '{"bbox_2d": [110, 0, 190, 100], "label": "blue half"}'


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [({}, "needs"), ({"bbox_2d": [1, 2, 3]}, "four numbers"), ({"bbox_2d": [5, 5, 5, 9]}, "empty"), ({"bbox_2d": [0, 0, 9, 9], "zoom": 2}, "unknown")],
)
def test_bad_boxes_are_invalid_with_a_reason(arguments: dict, reason: str) -> None:
    action = wire.parse_action(wire.tool_call_action("image_zoom_in_tool", arguments))
    assert action.kind == "invalid" and reason in action.reason


def test_zoom_end_to_end(zoom_manager: ToolManager) -> None:
    turns = [zoom([100, 0, 200, 100], "right half"), zoom([100, 0, 200, 100], "right half"), zoom([900, 900, 999, 999]), wire.answer_action("blue")]
    rollout = AgentLoop(zoom_manager, AgentConfig(max_turns=6)).rollout(
        ScriptedPolicy(turns), AgentRequest("What colour is the right half?", [IMAGE], ground_truth="blue")
    )
    trajectory = rollout.trajectory
    first = trajectory.turns[0].observation
    assert first.status == "success" and first.image_count == 1 and "right half" in first.text
    crop = rollout.messages[3].images[0]
    assert crop.size == (100, 100) and crop.getpixel((50, 50)) == (0, 0, 255)
    assert trajectory.turns[1].observation.repeated
    assert trajectory.turns[2].observation.status == "budget_exceeded"  # this manager allows two calls
    counts = trajectory.tool_calls
    assert (counts.image_zoom_in_tool, counts.failed, counts.repeated, counts.invalid) == (2, 0, 1, 1)
    # Reward: counts reach the reward, on the trajectory route and the text route alike.
    reward = score_trajectory(trajectory)
    assert reward["details"]["tool_calls"]["image_zoom_in_tool"] == 2 and reward["accuracy"] == 1.0
    assert score_response(wire.render_response(trajectory), "blue")["score"] == reward["score"]
    # The record round-trips through the schema with the new count.
    assert Trajectory.from_dict(trajectory.to_dict()).tool_calls == counts
    # Evaluation metrics list the tool beside the others.
    trajectory.reward = reward
    metrics = dataset_metrics([trajectory.to_dict()])
    assert metrics["overall"]["tool_call_rate"]["image_zoom_in_tool"] == 1.0
    # Evaluation counts every call handed to the manager, the refused third one included.
    assert metrics["overall"]["tool_calls_per_sample"]["image_zoom_in_tool"] == 3.0


def test_a_box_outside_the_image_fails_and_the_model_is_told(zoom_manager: ToolManager) -> None:
    trajectory = AgentLoop(zoom_manager).run(ScriptedPolicy([zoom([900, 900, 999, 999]), wire.answer_action("red")]), [IMAGE], "q")
    observation = trajectory.turns[0].observation
    assert observation.status == "error" and "outside image 1" in observation.text
    assert (trajectory.tool_calls.image_zoom_in_tool, trajectory.tool_calls.failed) == (1, 1)
