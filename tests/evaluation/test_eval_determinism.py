"""The same seed gives the same trajectories on the tiny model, also when sampling; --repeats reports the spread."""

from __future__ import annotations

import json
from pathlib import Path

from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.factory import build_policy
from deepeyes.evaluation.runner import evaluate

ROWS = [
    {"index": 0, "question": "What colour is the square?", "answer": "red"},
    {"index": 1, "question": "Which option is the square?", "answer": "A", "A": "red", "B": "blue"},
]


def _turns(out: Path) -> list[list[str]]:
    """Every sample's model text, turn by turn (timings and creation stamps left out)."""
    records = [json.loads(line) for line in (out / "trajectories" / "Tiny.jsonl").read_text().splitlines()]
    return [[turn["model_text"] for turn in record["turns"]] for record in sorted(records, key=lambda r: r["id"])]


def test_same_seed_same_trajectories_and_repeats_spread(make_tsv, tiny_model_dir, tmp_path):
    lmudata = make_tsv("Tiny", ROWS).parent

    def config(out: str, **overrides) -> EvalConfig:
        settings = {
            "model_path": str(tiny_model_dir), "datasets": ["Tiny"], "lmudata": str(lmudata), "output_dir": str(tmp_path / out),
            "use_tools": False, "max_new_tokens": 8, "temperature": 1.0, "seed": 3, "batch_size": 1,
            "show_progress": False, "report": False,
        }
        return EvalConfig(**{**settings, **overrides})

    policy = build_policy(config("first"))  # loaded once, shared by every run
    results = evaluate(config("first", repeats=2), policy=policy)
    evaluate(config("again"), policy=policy)

    first, again, other_seed = _turns(tmp_path / "first"), _turns(tmp_path / "again"), _turns(tmp_path / "first" / "repeats" / "seed_4")
    assert first == again  # seed 3 twice: the same sampled text
    assert first != other_seed  # seed 4: sampling really draws (else the equality above proves nothing)
    assert all(len(turns) == 1 and turns[0] for turns in first)

    repeats = results["repeats"]
    assert (repeats["k"], repeats["seeds"], repeats["folders"]) == (2, [3, 4], [".", "repeats/seed_4"])
    values = repeats["accuracy"]["values"]
    assert values[0] == results["overall"]["accuracy"]
    assert repeats["accuracy"]["mean"] == sum(values) / 2 and repeats["accuracy"]["std"] == abs(values[0] - values[1]) / 2**0.5
    assert json.loads((tmp_path / "first" / "eval_results.json").read_text())["repeats"]["k"] == 2
    assert (tmp_path / "first" / "repeats" / "seed_4" / "eval_results.json").is_file()
