"""VLMEvalKit's own runner drives DeepEyes in agent mode, on TSVs in real benchmarks' layouts.

VLMEvalKit cannot live in .venv (its omegaconf>=2.4 breaks verl's hydra-core), so the test
runs evaluation/vlmeval/run_vlmeval.sh, which uses .venv-vlmeval, in a subprocess.
``bash scripts/test.sh`` creates that environment (``setup.sh --with-vlmeval``), so CI
runs this test rather than skipping it. The TSVs follow VStarBench's and HRBench's column
conventions under names of their own: VLMEvalKit re-downloads a file named like a known
benchmark whose checksum differs, and nothing downloads in tests.
"""

from __future__ import annotations

import json
import os
import subprocess

import pandas as pd
import pytest

from deepeyes.paths import REPO_ROOT

pytestmark = pytest.mark.vlmeval

VLMEVAL_PYTHON = REPO_ROOT / ".venv-vlmeval" / "bin" / "python"

#: Column conventions of the published TSVs (VLMEvalKit's VStarBench and HRBench4K/8K).
LAYOUTS = {
    "MiniVStarBench": {
        "columns": ["index", "image", "question", "A", "B", "C", "D", "answer", "category"],
        "rows": [
            {"index": 0, "question": "What is the colour of the cup?", "A": "red", "B": "blue", "C": "green", "D": "white", "answer": "A", "category": "direct_attributes"},
            {"index": 1, "question": "Is the dog on the left or right of the man?", "A": "left", "B": "right", "C": None, "D": None, "answer": "B", "category": "relative_position"},
        ],
    },
    "MiniHRBench4K": {
        "columns": ["index", "image", "question", "answer", "category", "cycle_category", "A", "B", "C", "D"],
        "rows": [
            {"index": 0, "question": "What is written on the sign?", "answer": "C", "category": "single", "cycle_category": "FSP", "A": "STOP", "B": "EXIT", "C": "OPEN", "D": "SALE"},
            {"index": 1, "question": "How many boats are in the harbour?", "answer": "A", "category": "cross", "cycle_category": "FCP", "A": "3", "B": "4", "C": "5", "D": "6"},
        ],
    },
}


def test_the_vlmeval_environment_exists() -> None:
    """Fails (rather than skipping the tests below) when the environment was not created."""
    assert VLMEVAL_PYTHON.is_file(), ".venv-vlmeval is missing: bash setup.sh --with-vlmeval (scripts/test.sh does this)"


@pytest.mark.parametrize("dataset", sorted(LAYOUTS))
@pytest.mark.redis
def test_vlmeval_runner_scores_a_benchmark_layout_with_tools(dataset, make_tsv, tiny_model_dir, tmp_path):
    layout = LAYOUTS[dataset]
    lmudata = make_tsv(dataset, layout["rows"], columns=layout["columns"]).parent
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
        ["bash", str(REPO_ROOT / "evaluation" / "vlmeval" / "run_vlmeval.sh"), "--data", dataset, "--mode", "all", "--judge", "exact_matching"],
        env=environment,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    work = tmp_path / "work" / "DeepEyes"
    predictions = [p for p in work.rglob(f"DeepEyes_{dataset}.*") if p.suffix in (".xlsx", ".tsv", ".pkl")]
    assert predictions, f"no prediction file in {work}: {completed.stderr[-2000:]}"
    scores = list(work.rglob(f"DeepEyes_{dataset}_acc.csv"))
    assert scores, f"VLMEvalKit's evaluation wrote no accuracy table: {sorted(p.name for p in work.rglob('*'))}"
    table = pd.read_csv(scores[0])
    assert "Overall" in table.columns
    assert float(table["Overall"].iloc[0]) == 0.0  # the random tiny model never answers a letter

    records = [json.loads(line) for line in trajectories.read_text().splitlines()]
    assert len(records) == len(layout["rows"])  # one agent trajectory per benchmark row
    for record, row in zip(records, layout["rows"]):
        assert record["data_source"] == dataset
        assert row["question"] in record["question"] and f"A. {row['A']}" in record["question"]
        # Agent mode with tools on: the random model never answers, so each turn gets an error
        # observation from the tool manager and the loop runs to max_turns.
        assert record["stop_reason"] == "max_turns" and len(record["turns"]) == 2
        assert record["turns"][0]["observation"]["status"] == "error"
