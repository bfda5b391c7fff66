"""verl's custom reward function: the run's reward config on every route, and the scored trajectory logged.

verl loads this file with ``reward.custom_reward_function.path`` / ``name: compute_score``
and calls it once per rollout with the decoded response; the entries of
``reward.custom_reward_function.reward_kwargs`` arrive as keywords (verl's
``get_custom_reward_fn`` binds them). :mod:`deepeyes.rl.verl_launch` passes:

- ``server_url``: score on the reward server, which was started with the run's reward config
  (:func:`deepeyes.rl.services.write_reward_config`), or checked to score with its weights.
  The server reads verl's own fields (:func:`deepeyes.rewards.payload.parse_request`).
- ``config_path``: without a server (or ``$DEEPEYES_REWARD_SERVER_URL``), score in-process with
  :func:`deepeyes.rewards.scoring.compute_score` and that same file.
- ``trajectory_dir``: append each scored trajectory to ``trajectories.jsonl`` there, so a verl
  run logs what the local engine logs: every trajectory with its reward and ``metadata.step``.

Both routes read the same fields. When our agent loop ran the rollout, ``extra_info["trajectory"]``
(its ``extra_fields``, merged by verl) holds the trajectory it built, and that is what gets
scored; otherwise (a foreign agent loop) the decoded text is, with the tool stats, question,
answer type, choices and stop reason from ``extra_info``. So a text scores the same here, on the
reward server and in evaluation.
"""

from __future__ import annotations

import fcntl
import functools
import os
from pathlib import Path
from typing import Any

from deepeyes.rewards import scoring
from deepeyes.rewards.client import RewardClient
from deepeyes.rewards.payload import TRAJECTORY_KEY
from deepeyes.rl.data import plain
from deepeyes.trajectory import Trajectory

SERVER_URL_ENV = "DEEPEYES_REWARD_SERVER_URL"
#: ``extra_info`` keys the reward scores with; the rest is the dataset's own.
FORWARDED_KEYS: tuple[str, ...] = (TRAJECTORY_KEY, "tool_stats", "question", "answer_type", "choices", "stop_reason")
#: What :func:`deepeyes.rewards.scoring.compute_score` returns (numbers only: verl averages every key).
RETURNED_KEYS: tuple[str, ...] = ("score", "accuracy", "format", "tool_efficiency", "task_completion")
TRAJECTORIES_FILE = "trajectories.jsonl"


@functools.lru_cache(maxsize=4)
def _client(url: str) -> RewardClient:
    return RewardClient(url)


def _on_server(url: str, data_source: str, solution_str: str, ground_truth: Any, info: dict[str, Any]) -> dict[str, float]:
    result = _client(url.rstrip("/")).score(data_source=data_source, solution_str=solution_str, ground_truth=ground_truth, extra_info=info)
    return {**{key: float(result[key]) for key in RETURNED_KEYS}, "judge_fallback": float(result["details"]["judge_fallback"])}


def append_scored(directory: Path, record: dict[str, Any], scores: dict[str, float]) -> None:
    """Append the trajectory ``record`` with its ``scores`` as ``reward`` to ``trajectories.jsonl``.

    verl runs several reward workers (processes), so the line is written under an exclusive
    ``flock``: a long trajectory's line is never interleaved with another's.
    """
    trajectory = Trajectory.from_dict(record)
    trajectory.reward = dict(scores)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / TRAJECTORIES_FILE).open("a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(trajectory.to_json() + "\n")


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    server_url: str | None = None,
    config_path: str | None = None,
    trajectory_dir: str | None = None,
    **_: Any,
) -> dict[str, float]:
    """Score one rollout; returns ``score``, its components and ``judge_fallback`` (numbers only).

    ``config_path`` falls back to ``$DEEPEYES_REWARD_CONFIG`` (read by
    :func:`deepeyes.rewards.scoring.compute_score`), then to the default reward settings.
    """
    info = {key: plain(value) for key, value in (extra_info or {}).items() if key in FORWARDED_KEYS and value is not None}
    truth = plain(ground_truth)
    url = server_url or os.environ.get(SERVER_URL_ENV)
    if url:
        scores = _on_server(url, str(data_source), solution_str, truth, info)
    else:
        scores = scoring.compute_score(str(data_source), solution_str, truth, info, config_path=config_path)
    if trajectory_dir and info.get(TRAJECTORY_KEY) is not None:
        append_scored(Path(trajectory_dir), info[TRAJECTORY_KEY], scores)
    return scores
