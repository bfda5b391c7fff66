"""The reward server as a real process on loopback: API, errors, metrics, logs and load."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from deepeyes import wire
from deepeyes.rewards.client import RewardClient, RewardServerError
from deepeyes.rewards.metrics import read_exposition, total
from deepeyes.trajectory import Action, ToolCallCounts, Trajectory, Turn

REQUEST_LINE = re.compile(r"deepeyes\.rewards\.server: (GET|POST) /\S* \d{3} [\d.]+ms items=\d+$")


def answered(answer: str) -> str:
    return wire.think("r") + wire.answer_action(answer)


def with_code(answer: str) -> str:
    return wire.think("c") + wire.code_action("print(6*7)") + wire.code_observation("42", "", 0) + answered(answer)


def test_health_reports_weights(reward_server) -> None:
    body = requests.get(reward_server.url + "/health", timeout=5).json()
    assert body["status"] == "ok"
    assert body["weights"] == {"task_completion": 0.5, "tool_efficiency": 0.3, "accuracy": 0.2}
    assert body["judge_enabled"] is True


def test_score_response_and_trajectory(reward_server) -> None:
    client = RewardClient(reward_server.url)
    result = client.score(response=with_code("42"), ground_truth="42")
    assert result["score"] == 1.0
    assert result["details"]["tool_calls"]["code"] == 1
    trajectory = Trajectory(
        id="srv",
        question="6*7?",
        images=[],
        turns=[Turn(index=0, model_text=answered("41"), action=Action("answer", "41"))],
        final_answer="41",
        stop_reason="answer",
        tool_calls=ToolCallCounts(),
        ground_truth="42",
    )
    result = client.score(trajectory=trajectory)
    assert (result["score"], result["accuracy"], result["details"]["id"]) == (0.0, 0.0, "srv")


def test_score_batch_keeps_order(reward_server) -> None:
    client = RewardClient(reward_server.url)
    items = [{"response": answered(a), "ground_truth": "B"} for a in ["B", "(C)", "The answer is B"]]
    assert [r["accuracy"] for r in client.score_batch(items)] == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/score", b"not json", "must be JSON"),
        ("/score", b"[1, 2]", "JSON object"),
        ("/score", b'{"response": "<answer>1</answer>"}', "ground_truth"),
        ("/score", b'{"response": "x", "ground_truth": "1", "tool_stats": {"code": "two"}}', "tool_stats.code"),
        ("/score_batch", b'{"items": []}', "at least one item"),
        ("/score_batch", b'{"items": [{"response": "x", "ground_truth": "1"}, {"ground_truth": "1"}]}', "items[1]"),
    ],
)
def test_bad_payloads_get_400_with_json_error(reward_server, path: str, body: bytes, message: str) -> None:
    response = requests.post(reward_server.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_unknown_route_and_method_are_json_errors(reward_server) -> None:
    missing = requests.get(reward_server.url + "/nope", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"]
    response = requests.get(reward_server.url + "/score", timeout=5)
    assert response.status_code == 405
    assert "error" in response.json()


def test_client_raises_the_server_message(reward_server) -> None:
    with pytest.raises(RewardServerError, match="answer_type"):
        RewardClient(reward_server.url).score(response="", ground_truth="1", answer_type="poem")


def test_judge_failure_through_the_server_is_flagged_and_counted(reward_server, judge) -> None:
    client = RewardClient(reward_server.url)
    before = client.metrics()
    assert client.score(response=answered("NYC"), ground_truth="New York City")["accuracy"] == 1.0
    judge.behaviour.mode = "http500"
    result = client.score(response=answered("NYC"), ground_truth="New York City")
    assert result["accuracy"] == 0.0
    assert result["details"]["judge_fallback"] is True
    after = client.metrics()
    assert total(after, "deepeyes_reward_judge_calls_total") - total(before, "deepeyes_reward_judge_calls_total") == 2
    assert total(after, "deepeyes_reward_judge_fallbacks_total") - total(before, "deepeyes_reward_judge_fallbacks_total") == 1


def test_fifty_concurrent_clients_without_errors(reward_server) -> None:
    clients, rounds = 50, 4
    cases = [(with_code("42"), "42", 1.0), (answered("\\frac{1}{2}"), "0.5", 1.0), (answered("C"), "B", 0.0)]
    before = read_exposition(requests.get(reward_server.url + "/metrics", timeout=5).text)
    start = threading.Barrier(clients)

    def one_client(number: int) -> list[str]:
        client = RewardClient(reward_server.url, timeout_s=60)
        problems = []
        start.wait()
        for round_ in range(rounds):
            response, truth, expected = cases[(number + round_) % len(cases)]
            try:
                if round_ % 2:
                    score = client.score_batch([{"response": response, "ground_truth": truth}] * 2)[1]["score"]
                else:
                    score = client.score(response=response, ground_truth=truth)["score"]
                if score != pytest.approx(expected):
                    problems.append(f"client {number}: score {score} != {expected}")
            except (requests.RequestException, RewardServerError) as exc:
                problems.append(f"client {number}: {exc!r}")
        client.close()
        return problems

    with ThreadPoolExecutor(max_workers=clients) as pool:
        problems = [p for result in pool.map(one_client, range(clients)) for p in result]
    assert problems == []
    after = read_exposition(requests.get(reward_server.url + "/metrics", timeout=5).text)

    def answered_ok(samples, endpoint: str) -> float:
        return total(samples, "deepeyes_reward_requests_total", endpoint=endpoint, status="200")

    assert total(after, "deepeyes_reward_requests_total") - total(before, "deepeyes_reward_requests_total") == clients * rounds + 1
    scored = answered_ok(after, "/score") - answered_ok(before, "/score")
    batched = answered_ok(after, "/score_batch") - answered_ok(before, "/score_batch")
    assert (scored, batched) == (clients * rounds // 2, clients * rounds // 2)


def test_metrics_and_one_log_line_per_request(reward_server) -> None:
    client = RewardClient(reward_server.url)
    before = client.metrics()
    client.score(response=answered("7"), ground_truth="7")
    requests.post(reward_server.url + "/score", json={"ground_truth": "7"}, timeout=5)
    after = client.metrics()
    requests_total = "deepeyes_reward_requests_total"
    assert total(after, requests_total, endpoint="/score") - total(before, requests_total, endpoint="/score") == 2
    assert total(after, requests_total, status="400") - total(before, requests_total, status="400") == 1
    scores = total(after, "deepeyes_reward_score_count")
    assert scores - total(before, "deepeyes_reward_score_count") == 1
    assert total(after, "deepeyes_reward_score_bucket", le="+Inf") == scores
    assert total(after, "deepeyes_reward_score_bucket", le="0.0") <= total(after, "deepeyes_reward_score_bucket", le="1.0") <= scores
    assert total(after, "deepeyes_reward_request_latency_seconds_sum") > 0
    assert total(after, "deepeyes_reward_request_latency_seconds_count") == total(after, requests_total)
    # The scrape is taken inside its own request, before that request is counted and logged.
    request_lines = [line for line in reward_server.log_lines() if REQUEST_LINE.search(line)]
    assert len(request_lines) == total(after, requests_total) + 1
    assert sum(" 400 " in line for line in request_lines) == total(after, requests_total, status="400")


def test_multi_worker_gunicorn_mode(reward_server_factory) -> None:
    server = reward_server_factory({"weights": [0.0, 0.0, 1.0]}, ["--workers", "2", "--threads", "2"])
    client = RewardClient(server.url)
    results = client.score_batch([{"response": answered("7"), "ground_truth": "7"}] * 3)
    assert [r["score"] for r in results] == [1.0, 1.0, 1.0]
    # Answered by gunicorn's workers (the server.py process became the arbiter), two of them.
    (labels,) = client.metrics()["deepeyes_reward_process_info"]
    assert dict(labels)["pid"] != str(server.process.process.pid)
    assert sum("Booting worker" in line for line in server.log_lines()) == 2
    client.close()  # an open keep-alive connection would hold up the workers' graceful exit
