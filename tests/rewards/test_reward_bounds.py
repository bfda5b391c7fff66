"""Answer checks are bounded: a worker past its budget is killed, and no answer freezes the server."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from deepeyes import wire
from deepeyes.rewards import RewardConfig, maths, score_response
from deepeyes.rewards.pool import WorkerPool

#: Below every size limit of the pre-check, yet sympy's expansion outlasts any budget (> 20 s): only a kill stops it.
SLOW = "(x+y+1)^{300}"


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


# Issue 30, item 4: the size pre-check reads towers, factorials and exponentials from the text alone.
REFUSED = [
    "9^{9^{9}}", "9^{(9^{9})}", "9^{9\\cdot 9^{9}}", "9.0^{9^{9}}", "9^{9^{9.0}}", "9**9**9", "{9}^{{9}^{9}}",
    "e^{e^{e^{9}}}", "\\exp(\\exp(\\exp(9)))", "exp(exp(exp(9)))", "(10^{6})!", "(9^{9})!", "\\Gamma(10^{9})",
    "\\binom{10^{9}}{5 \\cdot 10^{8}}", "10^{10^{10}}", "2^{2^{2^{2^{2^{2}}}}}", "\\frac{1}{2}^{10^{9}}",
    "0.5^{10^{9}}", "1.0000001^{10^{9}}", "x^{9^{9^{9}}}", "(x+1)^{9000}", "(1+\\sqrt{2})^{5000}",
    "\\sin(10^{10^{9}})", "3.2e999999",
]  # fmt: skip
ACCEPTED = [
    "x^2+2x+1", "\\frac{\\sqrt{3}}{2}", "2^{10}", "2^{1000}", "(1, 2)", "[0, \\infty)", "\\frac{1}{2^{99}}",
    "\\frac{1}{2006!}", "10^{-5}", "e^{i\\pi}", "e^{e^{9}}", "\\pi r^2", "|x-1|+|x+1|", "3.2\\times 10^{5}",
    "\\left(\\frac{1}{2}\\right)^{-10}", "x_1^{2}", "\\{1,2\\}", "(x+y+1)^{300}",
]  # fmt: skip


@pytest.mark.parametrize("answer", REFUSED)
def test_the_size_pre_check_refuses_what_sympy_cannot_compute(answer: str) -> None:
    reason = maths.too_large(maths.prepare(answer))
    assert reason is not None and ("digits" in reason or "raises a symbol" in reason)


@pytest.mark.parametrize("answer", ACCEPTED)
def test_the_size_pre_check_leaves_ordinary_formulas_to_the_check(answer: str) -> None:
    assert maths.too_large(maths.prepare(answer)) is None


def test_a_killed_worker_is_replaced_at_once() -> None:
    """Workers are forked from a loaded template: the check after a timeout does not wait for an interpreter to import sympy."""
    pool = WorkerPool(size=1, preload=("deepeyes.rewards.maths_worker",))
    try:
        assert pool.call("deepeyes.rewards.maths_worker:equivalent", "1/2", "0.5", timeout_s=120).value is True
        assert pool.call("time:sleep", 60, timeout_s=0.5).error == "timed out after 0.5 s"
        start = time.perf_counter()
        assert pool.call("deepeyes.rewards.maths_worker:equivalent", "\\frac{1}{2}", "0.5", timeout_s=30).value is True
        assert time.perf_counter() - start < 5  # a fresh interpreter took 8-10 s to load sympy on this machine
    finally:
        pool.close()


def test_hostile_answers_through_the_real_server_keep_health_and_answer_within_the_budget(reward_server_factory) -> None:
    """The issue's input and its variants, several at once, against a real server with a 2 s budget:
    /health answers throughout, each reply comes within the budget plus a margin, and the reason is recorded."""
    server = reward_server_factory({"math_timeout_s": 2})
    answers = ["9^{9^{9}}", "9^{(9^{9})}", "e^{e^{e^{9}}}", "(10^{6})!", SLOW, SLOW]
    replies: dict[int, tuple[float, dict]] = {}

    def score(index: int) -> None:
        start = time.perf_counter()
        body = {"response": answered(answers[index]), "ground_truth": "1"}
        result = requests.post(server.url + "/score", json=body, timeout=60).json()
        replies[index] = (time.perf_counter() - start, result)

    threads = [threading.Thread(target=score, args=(i,)) for i in range(len(answers))]
    for thread in threads:
        thread.start()
    health = []
    while any(thread.is_alive() for thread in threads):
        start = time.perf_counter()
        health.append((requests.get(server.url + "/health", timeout=10).status_code, time.perf_counter() - start))
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    assert health and all(status == 200 for status, _ in health)
    assert max(latency for _, latency in health) < 2
    for index, answer in enumerate(answers):
        latency, result = replies[index]
        assert result["accuracy"] == 0.0, answer
        reason = result["details"]["accuracy_reason"]
        assert reason.startswith("math check failed: timed out") if answer == SLOW else reason.startswith("answer too large"), reason
        assert latency < 10, (answer, latency)  # two workers, two 2 s timeouts, a loaded machine
    start = time.perf_counter()
    ok = requests.post(server.url + "/score", json={"response": answered("\\frac{1}{2}"), "ground_truth": "0.5"}, timeout=60).json()
    assert ok["accuracy"] == 1.0 and time.perf_counter() - start < 5
