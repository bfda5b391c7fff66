"""Issue 25 items 7 and 8 on the scoring routes: a turn cut at the token limit is scored as cut
(one rule on every route), and no malformed tool call crashes a scorer, verl's hook or the server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from deepeyes import wire
from deepeyes.rewards import scoring
from deepeyes.rewards.service import create_app
from deepeyes.rl import verl_reward
from deepeyes.trajectory import Action, Trajectory, Turn

CUT = "<think>r</think>\n<answer>1234"  # cut at max_new_tokens inside the answer


def zoom(box: str) -> str:
    return f'<think>r</think>\n<tool_call>\n{{"name": "image_zoom_in_tool", "arguments": {{"bbox_2d": {box}}}}}\n</tool_call>'


MALFORMED = {
    "nan": zoom("[NaN, 0, 10, 10]"),
    "overflow": zoom("[1e309, 0, 10, 10]"),
    "deep": zoom("[" * 50_000 + "]" * 50_000),
}


@pytest.fixture(scope="module")
def server() -> Iterator[FlaskClient]:
    yield create_app().test_client()


@pytest.fixture(autouse=True)
def _in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(scoring.CONFIG_ENV, raising=False)
    monkeypatch.delenv(verl_reward.SERVER_URL_ENV, raising=False)


def cut_trajectory() -> Trajectory:
    """What the agent loop records for CUT (tests/agent/test_agent_robustness.py checks it does)."""
    turn = Turn(0, CUT, Action("answer", "1234"), violations=["unbalanced_answer"], finish_reason="length")
    return Trajectory(id="cut", question="q", images=[], turns=[turn], final_answer="1234", stop_reason="length", ground_truth="1234")


def test_a_length_cut_answer_earns_no_completion_on_any_route(server: FlaskClient) -> None:
    text = scoring.score_response(CUT, "1234", stop_reason="length")
    trajectory = scoring.score_trajectory(cut_trajectory())
    hook = scoring.compute_score("x", CUT, "1234", {"stop_reason": "length"})  # raised PayloadError before
    verl = verl_reward.compute_score("x", CUT, "1234", {"stop_reason": "length"})
    posted = server.post("/score", json={"response": CUT, "ground_truth": "1234", "stop_reason": "length"})
    assert posted.status_code == 200
    # seed preset: no completion credit (it was 0.5 on the trajectory route: 0.75 in all), the
    # answer still read for accuracy, one unbalanced_answer.
    for result in (text, trajectory, hook, verl, posted.get_json()):
        assert (result["score"], result["task_completion"], result["accuracy"], result["format"]) == (0.5, 0.0, 1.0, 0.5)
    assert text["details"]["stop_reason"] == trajectory["details"]["stop_reason"] == "length"


def test_the_text_route_records_the_cut_on_the_last_turn() -> None:
    trajectory = wire.trajectory_from_response(CUT, stop_reason="length")
    assert (trajectory.stop_reason, trajectory.final_answer, trajectory.turns[-1].finish_reason) == ("length", "1234", "length")
    finished = wire.trajectory_from_response(CUT)
    assert (finished.stop_reason, finished.turns[-1].finish_reason) == ("answer", None)


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_calls_score_as_invalid_calls_on_every_route(kind: str, server: FlaskClient) -> None:
    response = MALFORMED[kind]
    text = scoring.score_response(response, "1234")
    assert text["details"]["tool_calls"]["invalid"] == 1 and text["details"]["format_violations"] == []
    hook = scoring.compute_score("x", response, "1234", {})
    verl = verl_reward.compute_score("x", response, "1234", {})
    posted = server.post("/score", json={"response": response, "ground_truth": "1234"})  # answered 500 before
    assert posted.status_code == 200
    assert text["score"] == hook["score"] == verl["score"] == posted.get_json()["score"] == -0.075  # 0.3 · (−0.25 per invalid call)


@pytest.mark.parametrize("path", ["/score", "/score_batch"])
def test_a_body_nested_past_the_recursion_limit_is_a_400(path: str, server: FlaskClient) -> None:
    body = '{"items": ' + "[" * 50_000 + "]" * 50_000 + "}"
    posted = server.post(path, data=body, content_type="application/json")
    assert (posted.status_code, posted.get_json()) == (400, {"error": "the request body is nested too deeply to read"})


@pytest.mark.parametrize("truth", ["garbage", [110, 220, 10, 20], "[1, 2, 3]"], ids=["text", "inverted", "three-numbers"])
def test_a_grounding_row_whose_truth_is_no_box_is_a_400_on_both_routes(server: FlaskClient, truth: object) -> None:
    """The truth is read by the grounding preset at scoring time, not by the payload parser;
    the client's mistake is still a 400 naming the ground truth, never a 500."""
    item = {"response": "<answer>[10, 20, 110, 220]</answer>", "ground_truth": truth, "data_source": "refcoco"}
    single = server.post("/score", json=item)
    assert single.status_code == 400 and "ground_truth" in single.get_json()["error"]
    batch = server.post("/score_batch", json={"items": [{**item, "ground_truth": [10, 20, 110, 220]}, item]})
    assert batch.status_code == 400 and "ground_truth" in batch.get_json()["error"]
    fine = server.post("/score", json={**item, "ground_truth": [10, 20, 110, 220]})
    assert fine.status_code == 200 and fine.get_json()["accuracy"] == 1.0
