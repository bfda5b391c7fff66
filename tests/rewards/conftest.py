"""Fixtures for the reward tests: a stand-in judge server and a real reward-server process."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from deepeyes.paths import REPO_ROOT
from deepeyes.utils.processes import ManagedProcess, free_port, port_is_open, wait_until

SERVER_SCRIPT = REPO_ROOT / "reinforcement_learning" / "evaluation_server" / "server.py"

#: What the stand-in judge knows: reference answer → answers it accepts as meaning the same.
SYNONYMS = {
    "new york city": {"nyc", "new york", "the big apple"},
    "golden retriever": {"a golden retriever dog", "retriever (golden)"},
}


@dataclass
class JudgeBehaviour:
    """How the stand-in answers; tests change it and the ``judge`` fixture resets it."""

    mode: str = "verdict"  # verdict | garbage | http500 | not_completion | not_json
    #: How the verdict word is dressed, e.g. "**{verdict}**" or "<think>…</think>\n{verdict}".
    template: str = "{verdict}"
    delay_s: float = 0.0
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    authorization: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.mode, self.template, self.delay_s = "verdict", "{verdict}", 0.0
            self.requests = self.in_flight = self.max_in_flight = 0
            self.authorization.clear()


def _verdict(prompt: str) -> str:
    reference = re.search(r"Reference answer: (.*)", prompt).group(1).strip().lower()
    candidate = re.search(r"Candidate answer: <<<(.*)>>>", prompt, re.DOTALL).group(1).strip().lower()
    same = candidate == reference or candidate in SYNONYMS.get(reference, set())
    return "CORRECT" if same else "INCORRECT"


def _judge_app(behaviour: JudgeBehaviour) -> Flask:
    """An OpenAI-compatible ``/v1/chat/completions`` that grades by the ``SYNONYMS`` table."""
    app = Flask("judge_standin")

    @app.post("/v1/chat/completions")
    def chat_completions():
        with behaviour.lock:
            behaviour.requests += 1
            behaviour.in_flight += 1
            behaviour.max_in_flight = max(behaviour.max_in_flight, behaviour.in_flight)
            behaviour.authorization.append(request.headers.get("Authorization", ""))
        try:
            time.sleep(behaviour.delay_s)
            if behaviour.mode == "http500":
                return jsonify({"error": "overloaded"}), 500
            if behaviour.mode == "not_completion":
                return jsonify({"object": "list", "data": []})
            if behaviour.mode == "not_json":
                return "<html>proxy page</html>", 200, {"Content-Type": "application/json"}
            body = request.get_json()
            verdict = _verdict(body["messages"][-1]["content"])
            content = "I think so" if behaviour.mode == "garbage" else behaviour.template.format(verdict=verdict)
            return jsonify(
                {
                    "id": "standin",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                }
            )
        finally:
            with behaviour.lock:
                behaviour.in_flight -= 1

    return app


@dataclass
class JudgeServer:
    url: str  # the api_base, ending in /v1
    behaviour: JudgeBehaviour


@pytest.fixture(scope="session")
def judge_server() -> Iterator[JudgeServer]:
    behaviour = JudgeBehaviour()
    port = free_port()
    server = make_server("127.0.0.1", port, _judge_app(behaviour), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="judge-standin", daemon=True)
    thread.start()
    yield JudgeServer(f"http://127.0.0.1:{port}/v1", behaviour)
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture()
def judge(judge_server: JudgeServer) -> Iterator[JudgeServer]:
    """The stand-in judge, answering verdicts promptly (state reset for each test)."""
    judge_server.behaviour.reset()
    yield judge_server
    # A request the client gave up on (timeout tests) must not leak into the next test's counts.
    wait_until(lambda: judge_server.behaviour.in_flight == 0, 10, "stand-in judge to go idle")


@dataclass
class RewardServer:
    url: str
    process: ManagedProcess
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()


def start_reward_server(tmp_dir: Path, config: dict, extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> RewardServer:
    """``server.py`` as a real subprocess on a free loopback port, ready to serve."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    config_path = tmp_dir / "reward.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log_path = tmp_dir / "server.log"
    argv = [sys.executable, str(SERVER_SCRIPT), "--port", str(port), "--config", str(config_path), *(extra_args or [])]
    process = ManagedProcess(argv, name=f"reward-server:{port}", log_path=log_path, env={"PYTHONPATH": str(REPO_ROOT), **(env or {})})
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not port_is_open("127.0.0.1", port):
            return False
        try:
            return requests.get(url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(ready, 180, process.name, process.process)  # warm-up imports sympy: a minute on a loaded 2-core machine
    except Exception:
        process.stop()
        raise
    return RewardServer(url, process, log_path)


@pytest.fixture()
def reward_server_factory(tmp_path: Path) -> Iterator[Callable[..., RewardServer]]:
    """Start extra reward servers (``factory(config_dict, extra_args, env)``); all stopped after the test."""
    started: list[RewardServer] = []

    def factory(config: dict, extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> RewardServer:
        server = start_reward_server(tmp_path / f"server-{len(started)}", config, extra_args, env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.process.stop()


@pytest.fixture(scope="module")
def reward_server(tmp_path_factory: pytest.TempPathFactory, judge_server: JudgeServer) -> Iterator[RewardServer]:
    """One threaded reward server per module, its judge pointed at the stand-in."""
    config = {"judge": {"enabled": True, "api_base": judge_server.url, "timeout_s": 2.0, "max_retries": 0}}
    server = start_reward_server(tmp_path_factory.mktemp("reward-server"), config)
    yield server
    server.process.stop()
