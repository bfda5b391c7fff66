"""Answer checks are bounded: a worker past its budget is killed, and no answer freezes the server."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from deepeyes import wire
from deepeyes.rewards import RewardConfig, score_response
from deepeyes.rewards.pool import WorkerPool

#: sympy computes this binomial (hundreds of millions of digits) in one C call: only a kill stops it.
SLOW = "\\binom{10^{9}}{5 \\cdot 10^{8}}"


def answered(answer: str) -> str:
    return wire.think("r") + wire.answer_action(answer)


def test_pool_kills_a_call_past_its_budget_and_serves_the_next() -> None:
    pool = WorkerPool(size=1)
    assert pool.call("math:sqrt", 16, timeout_s=30).value == 4.0  # the first call pays the start-up
    start = time.perf_counter()
    outcome = pool.call("time:sleep", 60, timeout_s=0.5)
    assert outcome.error == "timed out after 0.5 s"
    assert time.perf_counter() - start < 5
    assert pool.call("math:sqrt", 9, timeout_s=30).value == 3.0  # a replacement worker took over


def test_pool_reports_the_function_failure_without_raising() -> None:
    outcome = WorkerPool(size=1).call("math:sqrt", -1, timeout_s=30)
    assert (outcome.value, outcome.error) == (None, "ValueError")


def test_a_maths_check_out_of_time_scores_wrong_with_its_reason() -> None:
    result = score_response(answered(SLOW), "1", config=RewardConfig(math_timeout_s=1))
    assert (result["accuracy"], result["details"]["accuracy_method"]) == (0.0, "math")
    assert result["details"]["accuracy_reason"] == "math check failed: timed out after 1 s"
    # the next maths answer is graded as usual
    assert score_response(answered("\\frac{1}{2}"), "0.5")["accuracy"] == 1.0


def test_checks_are_bounded_off_the_main_thread() -> None:
    """math-verify's SIGALRM timeout cannot fire here; the worker's budget does."""
    results: list[dict] = []
    worker = threading.Thread(
        target=lambda: results.append(score_response(answered(SLOW), "1", config=RewardConfig(math_timeout_s=1)))
    )
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert "timed out" in results[0]["details"]["accuracy_reason"]


# Issue 25's quoted inputs, each through POST /score as the issue sent them.
COLOURS = {"A": "black", "B": "white", "C": "red", "D": "blue"}
QUOTED = [
    ("5", "-5", {}, 0.0), ("-5", "5", {}, 0.0), ("x^2 + 1", "x^2 - 1", {}, 0.0), ("a + b", "a - b", {}, 0.0),
    ("2*3", "2/3", {}, 0.0), ("3 < 2", "3 > 2", {}, 0.0),
    ("\\frac{1}{2^{98}}", "\\frac{1}{2^{99}}", {}, 0.0), ("\\frac{1}{2006!}", "\\frac{1}{2004!}", {}, 0.0),
    ("**B**", "B", {"choices": COLOURS}, 1.0), ("The correct answer is **B**", "B", {"choices": COLOURS}, 1.0),
    ("**B. white**", "B", {"choices": COLOURS}, 1.0),
    ("A", "A", {"answer_type": "text"}, 1.0), ("a", "a", {}, 1.0),
    ("\\boxed{\\text{B}}", "white", {"choices": COLOURS}, 1.0),
    ("北京。", "北京", {}, 1.0), ("（B）", "B", {}, 1.0), ("Ｂ", "B", {}, 1.0),
]


@pytest.mark.parametrize(("answer", "ground_truth", "fields", "accuracy"), QUOTED)
def test_quoted_inputs_through_the_server(reward_server, answer: str, ground_truth: str, fields: dict, accuracy: float) -> None:
    body = {"response": f"<think>r</think>\n<answer>{answer}</answer>", "ground_truth": ground_truth, **fields}
    result = requests.post(reward_server.url + "/score", json=body, timeout=60).json()
    assert result["accuracy"] == accuracy


def test_a_tower_does_not_freeze_the_server(reward_server) -> None:
    body = {"response": "<think>r</think>\n<answer>9^{9^{9}}</answer>", "ground_truth": "1"}
    start = time.perf_counter()
    result = requests.post(reward_server.url + "/score", json=body, timeout=60).json()
    assert time.perf_counter() - start < 5
    assert result["accuracy"] == 0.0
    assert "too large" in result["details"]["accuracy_reason"]
    assert requests.get(reward_server.url + "/health", timeout=5).status_code == 200
