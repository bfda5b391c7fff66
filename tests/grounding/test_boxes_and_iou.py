"""Golden tests: every accepted box answer form, every malformed one, and IoU."""

from __future__ import annotations

import math

import pytest

from deepeyes import wire
from deepeyes.rewards import score_response
from deepeyes.rewards.grounding import GroundingConfig, grade_box, iou, is_grounding_source
from deepeyes.rewards.payload import PayloadError
from deepeyes.wire.boxes import box_problem, format_box, parse_box

TRUTH = [10, 20, 110, 220]

ACCEPTED = [
    "[10, 20, 110, 220]",
    "[10.0, 20.0, 110.0, 220.0]",
    "[10,20,110,220]",
    '{"bbox_2d": [10, 20, 110, 220]}',
    '{"bbox_2d": [10, 20, 110, 220], "label": "x"}',
    '{"bbox_2d": [10.0, 20.0, 110.0, 220.0], "label": "the red cup"}',
    '[{"bbox_2d": [10, 20, 110, 220], "label": "x"}]',
    '[{"bbox_2d": [10, 20, 110, 220], "label": "x"}, {"bbox_2d": [500, 500, 600, 600], "label": "y"}]',
    "[[10, 20, 110, 220]]",
    '```json\n[{"bbox_2d": [10, 20, 110, 220], "label": "x"}]\n```',
    "```\n[10, 20, 110, 220]\n```",
    "the red cup: [10, 20, 110, 220]",
    "[10, 20, 110, 220] (the red cup)",
    '{"bbox_2d": [10, 20, 110, 220]',  # JSON cut short: its one box is still unambiguous
]


@pytest.mark.parametrize("answer", ACCEPTED)
def test_every_accepted_form_reads_the_same_box_and_scores_one(answer: str) -> None:
    parsed = parse_box(answer)
    assert parsed.error is None and parsed.box == (10.0, 20.0, 110.0, 220.0)
    response = wire.think("find it") + wire.answer_action(answer)
    for truth in (TRUTH, "[10, 20, 110, 220]", '{"bbox_2d": [10, 20, 110, 220], "label": "cup"}', [10.0, 20.0, 110.0, 220.0]):
        result = score_response(response, truth, data_source="refcoco")
        assert result["accuracy"] == 1.0 and result["details"]["iou"] == 1.0
        assert result["format"] == 1.0 and result["score"] == 2.0  # VLM-R1: accuracy + format


def test_labels_are_kept() -> None:
    assert parse_box('{"bbox_2d": [1, 2, 3, 4], "label": "cup"}').label == "cup"
    assert parse_box("the red cup: [1, 2, 3, 4]").label == "the red cup"
    assert parse_box("[1, 2, 3, 4]").label is None
    assert format_box((1.2, 2.0, 3.0, 4.6), "cup") == '{"bbox_2d": [1, 2, 3, 5], "label": "cup"}'
    assert format_box((1.2, 2.0, 3.0, 4.6)) == "[1, 2, 3, 5]"


# answer → (why the parser refuses it, or the geometric problem, or None when it parses)
MALFORMED = {
    "": "no answer",
    "cat": "no box",
    "[10, 20, 110]": "3 values",
    "[10, 20, 110, 220, 5]": "5 values",
    "[a, b, c, d]": "non-numeric",
    '{"bbox_2d": ["10", "20", "110", "220"]}': "non-numeric",
    '{"bbox_2d": [true, 20, 110, 220]}': "non-numeric",
    '{"bbox_2d": "10 20 110 220"}': "must be a list",
    '{"box": [10, 20, 110, 220]}': "no 'bbox_2d'",
    "[]": "empty list",
    "[1e999, 20, 110, 220]": "no pixel coordinates",
    "[NaN, 20, 110, 220]": "no pixel coordinates",
    "[10, 20, 2000000, 220]": "no pixel coordinates",
    "[10, 20, 110, 220] or [0, 0, 50, 50]": "2 bracketed lists",
}


@pytest.mark.parametrize(("answer", "reason"), MALFORMED.items())
def test_every_malformed_answer_has_a_defined_score_and_reason(answer: str, reason: str) -> None:
    parsed = parse_box(answer)
    assert parsed.box is None and reason in parsed.error
    result = score_response(wire.think("t") + wire.answer_action(answer) if answer else wire.think("t"), TRUTH, data_source="refcoco")
    assert result["accuracy"] == 0.0 and result["details"]["iou"] == 0.0
    assert 0.0 <= result["score"] <= 1.0


@pytest.mark.parametrize(
    ("answer", "problem"),
    [("[110, 20, 10, 220]", "inverted"), ("[10, 220, 110, 20]", "inverted"), ("[10, 20, 10, 220]", "degenerate"), ("[10, 20, 110, 20]", "degenerate")],
)
def test_inverted_and_degenerate_boxes_score_zero(answer: str, problem: str) -> None:
    result = score_response(wire.answer_action(answer), TRUTH, data_source="rec")
    assert result["accuracy"] == 0.0 and result["details"]["iou"] == 0.0
    assert problem in result["details"]["accuracy_reason"]
    assert box_problem(parse_box(answer).box) == problem


def test_out_of_image_boxes_need_a_frame_and_are_clipped_or_refused() -> None:
    frame = {"original": [200, 300], "processed": [200, 300]}
    # Partly outside: clipped to the image, then compared.
    edge = [0, 20, 110, 220]
    partly = score_response(wire.answer_action("[-40, 20, 110, 220]"), edge, data_source="rec", image_frame=frame)
    assert partly["details"]["iou"] == 1.0 and "clipped" in partly["details"]["accuracy_reason"]
    # Wholly outside: zero, with the reason.
    outside = score_response(wire.answer_action("[300, 400, 500, 600]"), TRUTH, data_source="rec", image_frame=frame)
    assert outside["accuracy"] == 0.0 and "outside" in outside["details"]["accuracy_reason"]
    # The text route without a frame compares in the frame given: no clipping.
    given = score_response(wire.answer_action("[-40, 20, 110, 220]"), edge, data_source="rec")
    assert given["details"]["iou"] == pytest.approx(110 / 150, abs=1e-6)


def test_a_malformed_box_is_a_format_fault_an_inverted_one_is_not() -> None:
    bad = score_response(wire.think("t") + wire.answer_action("[a, b, c, d]"), TRUTH, data_source="refcoco")
    assert {"turn": 0, "kind": "answer_not_a_box"} in bad["details"]["format_violations"] and bad["format"] < 1.0
    inverted = score_response(wire.think("t") + wire.answer_action("[110, 20, 10, 220]"), TRUTH, data_source="refcoco")
    assert inverted["details"]["format_violations"] == [] and inverted["score"] == 1.0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),  # touching edges share no area
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),
        ((0, 0, 10, 10), (2, 2, 8, 8), 36 / 100),
        ((0, 0, 10, 10), (0, 0, 10, 0), 0.0),  # degenerate
        ((10, 0, 0, 10), (0, 0, 10, 10), 0.0),  # inverted
        ((0.5, 0.5, 1.5, 1.5), (0.5, 0.5, 1.5, 1.5), 1.0),  # sub-pixel boxes too
    ],
)
def test_iou(a: tuple, b: tuple, expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected) and iou(b, a) == pytest.approx(expected)


def test_threshold_and_continuous_option() -> None:
    half = "[10, 20, 110, 153.34]"  # two-thirds of the true box's height: IoU 0.667
    assert grade_box(half, ["[10, 20, 110, 220]"]).score == 1.0
    assert grade_box(half, ["[10, 20, 110, 220]"], GroundingConfig(iou_threshold=0.7)).score == 0.0
    continuous = grade_box(half, ["[10, 20, 110, 220]"], GroundingConfig(continuous=True))
    assert continuous.score == pytest.approx(133.34 / 200) and continuous.correct
    below = grade_box("[10, 20, 110, 110]", ["[10, 20, 110, 220]"])  # IoU 0.45
    assert below.iou == pytest.approx(0.45) and not below.correct and below.score == 0.0
    # Several true boxes: the best overlap counts.
    assert grade_box("[0, 0, 10, 10]", ["[50, 50, 60, 60]", "[0, 0, 10, 10]"]).iou == 1.0


@pytest.mark.parametrize("truth", ["cat", "[1, 2, 3]", "[10, 0, 0, 10]", "[5, 5, 5, 9]", ["1", "2", "x", "4"]])
def test_a_ground_truth_that_is_no_box_is_a_data_error(truth) -> None:
    with pytest.raises(PayloadError, match="ground_truth"):
        score_response(wire.answer_action("[0, 0, 1, 1]"), truth, data_source="refcoco")


@pytest.mark.parametrize(
    ("name", "grounding"),
    [("refcoco", True), ("refcoco+", True), ("RefCOCO+_testA", True), ("refcocop_val", True), ("refcocog_val", True),
     ("refgta", True), ("rec", True), ("DeepEyesMini_Grounding", True), ("deepeyes_synth", False), ("perception", False),
     ("vstar-test", False), ("recall", False), (None, False)],
)
def test_data_sources_that_select_the_grounding_reward(name, grounding: bool) -> None:
    assert is_grounding_source(name) is grounding


def test_other_rows_keep_their_preset_and_the_preset_can_be_named() -> None:
    from deepeyes.rewards import RewardConfig

    plain = score_response(wire.answer_action("3"), "3", data_source="deepeyes_synth")
    assert "iou" not in plain["details"] and plain["details"]["weighted"].keys() == {"task_completion", "tool_efficiency", "accuracy"}
    named = score_response(wire.answer_action("[10, 20, 110, 220]"), TRUTH, config=RewardConfig(preset="grounding"))
    assert named["details"]["iou"] == 1.0 and named["details"]["weighted"] == {"accuracy": 1.0, "format": 1.0}


def test_huge_and_hostile_answers_never_crash() -> None:
    for answer in ["[" * 100_000, "[1, 2, 3, 4" + "]" * 100_000, "{" * 5000 + "}" * 5000, "[" + "1," * 100_000 + "1]", "\x00[1,2,3,4]"]:
        result = grade_box(answer, ["[1, 2, 3, 4]"])
        assert result.score in (0.0, 1.0) and math.isfinite(result.iou)


def test_the_grounding_reward_config_file_loads_and_bad_thresholds_are_refused() -> None:
    from deepeyes.paths import REPO_ROOT
    from deepeyes.rewards.config import load_reward_config

    config = load_reward_config(REPO_ROOT / "reinforcement_learning/evaluation_server/reward_config_grounding.yaml")
    assert config.preset == "grounding" and config.grounding == GroundingConfig(0.5, False)
    for threshold in (0.0, 1.5):
        with pytest.raises(ValueError, match="iou_threshold"):
            GroundingConfig(iou_threshold=threshold)
