"""The importable entry points: trajectories, verl's hook, config loading, payload errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deepeyes import wire
from deepeyes.config import ConfigError
from deepeyes.rewards import (
    PayloadError,
    RewardConfig,
    compute_score,
    load_reward_config,
    parse_request,
    score_response,
    score_trajectory,
)
from deepeyes.trajectory import Action, Observation, ToolCallCounts, Trajectory, Turn


def make_trajectory(final_answer: str | None = "4", stop_reason: str = "answer", **counts: int) -> Trajectory:
    """A two-turn trajectory: one code call, then the answer."""
    code_turn = Turn(
        index=0,
        model_text=wire.think("compute") + wire.code_action("print(2+2)"),
        action=Action(kind="code", content="print(2+2)"),
        observation=Observation(text=wire.code_observation("4", "", 0), image_count=0, status="success", latency_s=0.1),
    )
    turns = [code_turn]
    if final_answer is not None:
        turns.append(
            Turn(index=1, model_text=wire.think("done") + wire.answer_action(final_answer), action=Action("answer", final_answer))
        )
    return Trajectory(
        id="t1",
        question="What is 2+2?",
        images=[],
        turns=turns,
        final_answer=final_answer,
        stop_reason=stop_reason,  # type: ignore[arg-type]
        tool_calls=ToolCallCounts(**{"code": 1, **counts}),
        ground_truth="4",
    )


def test_trajectory_object_and_dict_score_the_same() -> None:
    trajectory = make_trajectory()
    from_object = score_trajectory(trajectory)
    from_dict = score_trajectory(trajectory.to_dict(), "4")
    assert from_object == from_dict
    assert from_object["score"] == 1.0
    assert from_object["details"]["tool_stats_source"] == "trajectory"
    assert from_object["details"]["id"] == "t1"


def test_trajectory_counts_drive_tool_efficiency() -> None:
    # Two calls, one a repeat: still one useful call, so credit minus both penalties.
    result = score_trajectory(make_trajectory(code=2, repeated=1, invalid=1), "4")
    assert result["tool_efficiency"] == pytest.approx(1.0 - 0.2 - 0.25)
    # The only call was a repeat of nothing useful: no credit, just the penalty.
    assert score_trajectory(make_trajectory(repeated=1), "4")["tool_efficiency"] == pytest.approx(-0.2)


def test_trajectory_stopped_at_turn_limit_is_incomplete() -> None:
    result = score_trajectory(make_trajectory(final_answer=None, stop_reason="max_turns"))
    assert result["task_completion"] == 0.0
    assert result["accuracy"] == 0.0
    assert result["details"]["accuracy_method"] == "no_answer"
    assert result["score"] == 0.0


def test_trajectory_ground_truth_argument_wins() -> None:
    assert score_trajectory(make_trajectory(), "5")["accuracy"] == 0.0


def test_trajectory_breaking_the_schema_is_refused() -> None:
    record = make_trajectory().to_dict()
    record["stop_reason"] = "bored"
    with pytest.raises(PayloadError, match="stop_reason"):
        score_trajectory(record)


def test_trajectory_without_any_ground_truth_is_refused() -> None:
    record = make_trajectory().to_dict()
    record["ground_truth"] = None
    with pytest.raises(PayloadError, match="ground_truth"):
        score_trajectory(record)


def test_compute_score_has_verl_signature_and_flat_numbers() -> None:
    response = (
        wire.think("c") + wire.code_action("print(4)") + wire.code_observation("4", "", 0)
        + wire.think("d") + wire.answer_action("4")
    )
    result = compute_score("geoqa", response, "4", extra_info={"index": 3, "split": "train"})
    assert result["score"] == 1.0
    assert set(result) == {"score", "accuracy", "format", "tool_efficiency", "task_completion", "judge_fallback"}
    assert all(isinstance(v, float) for v in result.values())


def test_compute_score_reads_tool_stats_and_config_path(tmp_path: Path) -> None:
    config_path = tmp_path / "reward.yaml"
    config_path.write_text(yaml.safe_dump({"weights": [0.0, 1.0, 0.0]}), encoding="utf-8")
    answer = wire.think("d") + wire.answer_action("4")
    stats = {"code": 1, "failed": 1}
    result = compute_score("x", answer, "4", {"tool_stats": stats}, config_path=str(config_path))
    assert result["score"] == pytest.approx(-0.1)


def test_reward_config_loads_from_yaml_strictly(tmp_path: Path) -> None:
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump({"reward": {"weights": [0.6, 0.2, 0.2], "penalties": {"repeated": 0.5}}}), encoding="utf-8")
    config = load_reward_config(path, section="reward")
    assert config.weights == [0.6, 0.2, 0.2]
    assert config.penalties.repeated == 0.5
    assert config.judge.enabled is False
    path.write_text(yaml.safe_dump({"weights": [0.5, 0.5]}), encoding="utf-8")
    with pytest.raises(ConfigError, match="weights"):
        load_reward_config(path)
    path.write_text(yaml.safe_dump({"penalties": {"repeat": 0.5}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="penalties.repeat"):
        load_reward_config(path)


def test_shipped_example_config_is_the_default() -> None:
    shipped = Path(__file__).resolve().parents[2] / "reinforcement_learning" / "evaluation_server" / "reward_config.yaml"
    assert load_reward_config(shipped) == RewardConfig()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "JSON object"),
        ({"response": "<answer>4</answer>"}, "ground_truth"),
        ({"ground_truth": "4"}, "needs 'trajectory'"),
        ({"response": 4, "ground_truth": "4"}, "'response' must be a string"),
        ({"response": "", "ground_truth": ""}, "must not be empty"),
        ({"response": "", "ground_truth": True}, "ground_truth"),
        ({"response": "", "ground_truth": "4", "tool_stats": {"code": -1}}, "tool_stats.code"),
        ({"response": "", "ground_truth": "4", "tool_stats": {"calls": 1}}, "unknown keys"),
        ({"response": "", "ground_truth": "4", "answer_type": "essay"}, "answer_type"),
        ({"response": "", "ground_truth": "4", "stop_reason": "tired"}, "stop_reason"),
        ({"response": "", "ground_truth": "4", "choices": ["red"]}, "choices"),
        ({"response": "", "ground_truth": "4", "colour": "red"}, "unknown keys"),
        ({"trajectory": {"id": "x"}, "ground_truth": "4"}, "trajectory schema"),
    ],
)
def test_bad_payloads_name_the_problem(payload: object, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_request(payload)


def test_verl_style_payload_takes_fields_from_extra_info() -> None:
    request = parse_request(
        {
            "data_source": "mc",
            "solution_str": "<answer>blue</answer>",
            "ground_truth": "B",
            "extra_info": {"choices": {"A": "red", "B": "blue"}, "question": "Sky colour?", "index": 0},
        }
    )
    assert request.choices == {"A": "red", "B": "blue"}
    assert request.question == "Sky colour?"
    assert score_response("<answer>blue</answer>", "B", choices=request.choices)["accuracy"] == 1.0


def test_box_accuracy_is_an_accuracy_result_scored_by_iou() -> None:
    from deepeyes.rewards.accuracy import AccuracyResult
    from deepeyes.rewards.config import GroundingConfig
    from deepeyes.rewards.grounding import box_accuracy
    from deepeyes.rewards.payload import request_from_response

    request = request_from_response(wire.answer_action("[0, 0, 50, 100]"), "[0, 0, 100, 100]", data_source="refcoco")
    binary = box_accuracy(request, GroundingConfig())
    continuous = box_accuracy(request, GroundingConfig(continuous=True))
    assert isinstance(binary, AccuracyResult) and binary.answer_type == "box"
    assert (binary.correct, binary.score) == (True, 1.0)
    assert continuous.score == pytest.approx(0.5) and continuous.iou == pytest.approx(0.5)
    assert RewardConfig(grounding=GroundingConfig(iou_threshold=0.6)).grounding.iou_threshold == 0.6
