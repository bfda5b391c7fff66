"""The format check: held-in prompts are the conversations up to the first reply, replies are
judged by the shared action parser, and the untrained tiny model scores (about) zero."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepeyes.data.to_llamafactory import load_samples
from deepeyes.evaluation.format_check import check, held_in_prompts, main
from deepeyes.policies.scripted import ScriptedPolicy


@pytest.fixture()
def samples(seed_file: Path, tmp_path: Path):
    loaded, problems = load_samples([seed_file], None, tmp_path / "embedded")
    assert problems == []
    return loaded


def test_held_in_prompts_stop_before_the_first_assistant_turn(samples) -> None:
    prompts = held_in_prompts(samples, 2)
    assert [sample_id for sample_id, _ in prompts] == ["count-1", "search-1"]  # spread over 3 samples: 0 and 1
    _, messages = prompts[0]
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[1].content == "<image>\nHow many red squares are there?"
    assert len(messages[1].images) == 1 and messages[1].images[0].getpixel((0, 0)) == (200, 0, 0)


def test_share_counts_replies_the_parser_accepts(samples) -> None:
    replies = {
        "How many red squares are there?": ["<think>\ncount\n</think>\n<code>\n```python\nprint(3)\n```\n</code>"],
        "Who designed this tower?": ['<tool_call>\n{"name": "search", "arguments": {}}\n</tool_call>'],  # no query: invalid
        "What colour is the background?": ["<answer>blue</answer>"],
    }
    result = check(ScriptedPolicy(replies), held_in_prompts(samples, 10), batch_size=2)
    assert (result.prompts, result.valid) == (3, 2)
    assert result.by_kind == {"answer": 1, "code": 1, "invalid": 1}
    assert result.valid_share == pytest.approx(2 / 3)
    assert result.failures[0]["id"] == "search-1" and "query" in result.failures[0]["reason"]


def test_untrained_tiny_model_produces_no_valid_action(seed_file: Path, tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "format.json"
    code = main(["--model", str(tiny_model_dir), "--data", str(seed_file), "--num_prompts", "3", "--max_new_tokens", "24", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["prompts"] == 3
    assert result["valid_share"] == 0.0
    assert "valid actions: 0/3" in capsys.readouterr().out


def test_cli_rejects_missing_data(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    assert main(["--model", str(tiny_model_dir), "--data", str(tmp_path / "none.jsonl")]) == 2
    assert "input not found" in capsys.readouterr().err
