"""VLMEvalKit's own runner drives DeepEyes in agent mode (runs in .venv-vlmeval).

VLMEvalKit cannot live in .venv (its omegaconf>=2.4 breaks verl's hydra-core), so this
test runs evaluation/vlmeval/run_vlmeval.sh, which uses .venv-vlmeval, in a subprocess. It
skips only when that environment has not been created (bash evaluation/vlmeval/setup_env.sh).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from deepeyes.paths import REPO_ROOT

VLMEVAL_PYTHON = REPO_ROOT / ".venv-vlmeval" / "bin" / "python"

pytestmark = pytest.mark.skipif(
    not VLMEVAL_PYTHON.is_file(), reason=".venv-vlmeval is absent (opt-in: bash evaluation/vlmeval/setup_env.sh)"
)


def test_vlmeval_runner_uses_the_deepeyes_agent(make_tsv, tiny_model_dir, tmp_path):
    rows = [
        {"index": 0, "question": "How many red squares are there?", "answer": "1", "category": "count"},
        {"index": 1, "question": "Which colour is the square?", "answer": "A", "category": "colour", "A": "red", "B": "blue"},
        {"index": 2, "question": "Is there a circle?", "answer": "no", "category": "shape"},
    ]
    lmudata = make_tsv("DeepEyesVLMTest", rows).parent
    trajectories = tmp_path / "trajectories.jsonl"
    environment = {
        **os.environ,
        "LMUDATA": str(lmudata),
        "WORK_DIR": str(tmp_path / "work"),
        "MODEL_PATH": str(tiny_model_dir),
        "USE_TOOLS": "true",
        "MAX_TURNS": "2",
        "MAX_NEW_TOKENS": "8",
        "TRAJECTORY_FILE": str(trajectories),
    }
    completed = subprocess.run(
        ["bash", str(REPO_ROOT / "evaluation" / "vlmeval" / "run_vlmeval.sh"), "--data", "DeepEyesVLMTest", "--mode", "infer", "--limit", "2"],
        env=environment,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    predictions = list((tmp_path / "work" / "DeepEyes").glob("DeepEyes_DeepEyesVLMTest.*"))
    assert predictions, f"no prediction file in {tmp_path / 'work'}: {completed.stderr[-2000:]}"

    records = [json.loads(line) for line in trajectories.read_text().splitlines()]
    assert len(records) == 2  # --limit 2: one agent trajectory per predicted row
    for record in records:
        assert record["data_source"] == "DeepEyesVLMTest"
        # Agent mode: the random tiny model never answers, so the loop goes on to max_turns,
        # each unparseable turn answered by the tool manager with an error observation.
        assert record["stop_reason"] == "max_turns" and len(record["turns"]) == 2
        assert record["turns"][0]["observation"]["status"] == "error"
    assert "Which colour is the square?" in records[1]["question"] and "A. red" in records[1]["question"]
