"""verl's reward hook scores with the run's reward config on every route: in-process and on the
reward server, for the trajectory our agent loop built and for a foreign loop's text."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.rewards import scoring
from deepeyes.rl import verl_reward
from deepeyes.rl.config import EvaluationConfig, RLConfig
from deepeyes.rl.services import reward_server, write_reward_config

#: A lighter format penalty and no credit for answering without tools: both change the score of
#: a direct answer with trailing words (the seed's weights make that 0.75 by default).
REWARD_SETTINGS = {"format_violation_penalty": 0.2, "direct_answer_credit": 0.0}
TEXT = "<think>Seven.</think><answer>7</answer> and some trailing words"
SOURCE = "deepeyes_synth"


def _trajectory(text: str) -> dict:
    """The record our agent loop builds for a one-turn answer (no tools needed)."""
    loop = AgentLoop(None, AgentConfig(use_tools=False))
    return loop.rollout(ScriptedPolicy([text]), AgentRequest(question="How many?", images=[], ground_truth="7")).trajectory.to_dict()


def test_every_route_scores_with_the_run_reward_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(scoring.CONFIG_ENV, raising=False)
    monkeypatch.delenv(verl_reward.SERVER_URL_ENV, raising=False)
    settings = tmp_path / "reward.yaml"
    settings.write_text(yaml.safe_dump(REWARD_SETTINGS), encoding="utf-8")
    config = RLConfig(evaluation=EvaluationConfig(reward_config=str(settings)))
    config_path = str(write_reward_config(config, tmp_path / "verl" / "reward_config.yaml"))  # what the launch passes verl
    routes = {"text": {"question": "How many?", "stop_reason": "answer"}, "trajectory": {"trajectory": _trajectory(TEXT)}}
    with reward_server(config, tmp_path / "logs") as url:
        for route, extra_info in routes.items():
            expected = scoring.compute_score(SOURCE, TEXT, "7", extra_info, config_path=config_path)
            assert expected != scoring.compute_score(SOURCE, TEXT, "7", extra_info), route  # the settings matter here
            in_process = verl_reward.compute_score(SOURCE, TEXT, "7", extra_info, config_path=config_path)
            on_server = verl_reward.compute_score(SOURCE, TEXT, "7", extra_info, server_url=url)
            assert in_process == on_server == expected, route


def test_the_hook_logs_each_scored_trajectory_and_nothing_for_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from deepeyes.trajectory import read_jsonl

    monkeypatch.delenv(verl_reward.SERVER_URL_ENV, raising=False)
    record = _trajectory(TEXT)
    record["metadata"]["step"] = 2
    scores = verl_reward.compute_score(SOURCE, TEXT, "7", {"trajectory": record}, trajectory_dir=str(tmp_path))
    verl_reward.compute_score(SOURCE, TEXT, "7", {"question": "How many?"}, trajectory_dir=str(tmp_path))
    (logged,) = read_jsonl(tmp_path / verl_reward.TRAJECTORIES_FILE)
    assert logged.reward == scores and logged.metadata["step"] == 2 and logged.final_answer == "7"
