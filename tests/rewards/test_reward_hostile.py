"""The real reward server against hostile requests: deep JSON and requests without the token (issue 30, items 11-12)."""

from __future__ import annotations

import pytest
import requests

from deepeyes.rewards.client import RewardClient, RewardServerError
from deepeyes.rewards.server import main as server_main
from deepeyes.utils.processes import free_port

TOKEN = "reward-s3cret"


@pytest.mark.parametrize("path", ["/score", "/score_batch"])
def test_json_nested_five_thousand_deep_is_a_400(reward_server, path: str) -> None:
    for body in ("[" * 5_000 + "]" * 5_000, '{"items": ' + "[" * 5_000 + "]" * 5_000 + "}",
                 '{"response": "<answer>1</answer>", "ground_truth": ' + "[" * 5_000 + '"1"' + "]" * 5_000 + "}"):
        response = requests.post(reward_server.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=60)
        assert (response.status_code, response.json()) == (400, {"error": "the request body is nested too deeply to read"})
    assert requests.get(reward_server.url + "/health", timeout=10).status_code == 200


def test_the_token_is_required_when_set(reward_server_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    server = reward_server_factory({}, env={"DEEPEYES_REWARD_TOKEN": TOKEN})
    body = {"response": "<think>r</think>\n<answer>4</answer>", "ground_truth": "4"}
    assert requests.get(server.url + "/health", timeout=10).status_code == 200  # liveness probes need no token
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = requests.post(server.url + "/score", json=body, headers=headers, timeout=60)
        assert response.status_code == 401 and "bearer token" in response.json()["error"]
    assert requests.get(server.url + "/metrics", timeout=10).status_code == 401
    ok = requests.post(server.url + "/score", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert ok.status_code == 200 and ok.json()["accuracy"] == 1.0
    # the client sends the token from the same variable, or as an argument
    monkeypatch.delenv("DEEPEYES_REWARD_TOKEN", raising=False)
    with pytest.raises(RewardServerError) as refused:
        RewardClient(server.url).score(body)
    assert refused.value.status == 401
    assert RewardClient(server.url, token=TOKEN).score(body)["accuracy"] == 1.0
    monkeypatch.setenv("DEEPEYES_REWARD_TOKEN", TOKEN)
    assert RewardClient(server.url).score(body)["accuracy"] == 1.0


def test_a_non_loopback_bind_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPEYES_REWARD_TOKEN", raising=False)
    with pytest.raises(SystemExit, match="DEEPEYES_REWARD_TOKEN"):
        server_main(["--host", "0.0.0.0", "--port", str(free_port())])
