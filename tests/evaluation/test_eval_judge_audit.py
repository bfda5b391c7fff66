"""The judge audit against a stand-in judge on loopback that disagrees with the humans on known rows.

The shipped set (data/judge_audit/labels.jsonl) has 24 rows, 13 judged right by a person.
The stand-in answers the human verdict except on j04 ("not New York City": CORRECT), j10
("Percy Shelley" for Mary Shelley: CORRECT), j13 ("blue" for dark blue: INCORRECT) and j17
("142" for 142: INCORRECT), and replies nonsense when told to.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from deepeyes.evaluation.judge_audit import (
    DEFAULT_LABELS,
    LabelsError,
    audit,
    load_labels,
    main,
)
from deepeyes.rewards import JudgeConfig
from deepeyes.rewards.judge import build_messages
from deepeyes.utils.processes import free_port
from deepeyes.utils.stats import wilson_interval

FLIPPED = {"j04", "j10", "j13", "j17"}


@dataclass
class StandInJudge:
    url: str
    verdicts: dict[str, bool]  # the user turn the client sends → the verdict to give
    nonsense: set[str] = field(default_factory=set)  # user turns answered with no verdict
    requests: int = 0


@pytest.fixture()
def judge() -> Iterator[StandInJudge]:
    rows = load_labels(DEFAULT_LABELS)
    prompts = {row.id: build_messages(row.question, row.reference, row.answer)[-1]["content"] for row in rows}
    state = StandInJudge("", {prompts[row.id]: row.human != (row.id in FLIPPED) for row in rows})
    state.prompts = prompts  # type: ignore[attr-defined]
    app = Flask("audit_judge_standin")
    lock = threading.Lock()

    @app.post("/v1/chat/completions")
    def chat_completions():
        body = request.get_json()
        prompt = body["messages"][-1]["content"]
        with lock:
            state.requests += 1
        content = "I would rather not say" if prompt in state.nonsense else ("CORRECT" if state.verdicts[prompt] else "INCORRECT")
        return jsonify({"id": "standin", "object": "chat.completion", "model": body["model"], "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="audit-judge-standin", daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{port}/v1"
    yield state
    server.shutdown()
    thread.join(timeout=5)


def _config(url: str) -> JudgeConfig:
    return JudgeConfig(enabled=True, api_base=url, timeout_s=5.0, max_retries=0)


def test_audit_reports_agreement_kappa_and_confusion(judge):
    result = audit(load_labels(DEFAULT_LABELS), _config(judge.url))
    assert judge.requests == 24 and result["no_verdict"] == []
    judged, rules, both = (result["raters"][name] for name in ("judge", "rules", "rules+judge"))

    # Judge: 20 of 24 agree. Positives: human 13, judge 13 → p_e = (13·13 + 11·11) / 24² = 290/576; kappa = (480 − 290) / (576 − 290).
    assert (judged["n"], judged["agreement"], judged["kappa"]) == (24, pytest.approx(20 / 24), pytest.approx(190 / 286))
    assert judged["agreement_ci"] == pytest.approx(list(wilson_interval(20, 24)))
    assert judged["confusion"] == {"human_correct": {"rater_correct": 11, "rater_incorrect": 2}, "human_incorrect": {"rater_correct": 2, "rater_incorrect": 9}}
    assert judged["disagreements"] == ["j04", "j10", "j13", "j17"]

    # Rules alone: right on 7 rows, all right by the humans too; they reject 6 paraphrases → 18 of 24.
    # p_e = (13·7 + 11·17) / 576 = 278/576; kappa = (432 − 278) / (576 − 278).
    assert (rules["agreement"], rules["kappa"]) == (pytest.approx(18 / 24), pytest.approx(154 / 298))
    assert rules["disagreements"] == ["j02", "j05", "j09", "j12", "j13", "j22"]
    assert rules["confusion"]["human_incorrect"] == {"rater_correct": 0, "rater_incorrect": 11}

    # Rules then judge (what the reward does): the rules rescue j17 (numbers never reach the judge) → 21 of 24.
    # Positives 14 → p_e = (13·14 + 11·10) / 576 = 292/576; kappa = (504 − 292) / (576 − 292).
    assert (both["agreement"], both["kappa"]) == (pytest.approx(21 / 24), pytest.approx(212 / 284))
    assert both["disagreements"] == ["j04", "j10", "j13"]
    assert judge.requests == 24  # rules+judge replays the verdicts it already has


def test_rows_without_a_verdict_are_counted_not_guessed(judge):
    judge.nonsense = {judge.prompts["j04"], judge.prompts["j17"]}
    result = audit(load_labels(DEFAULT_LABELS), _config(judge.url))
    assert [row["id"] for row in result["no_verdict"]] == ["j04", "j17"]
    assert "not a verdict" in result["no_verdict"][0]["error"]
    judged = result["raters"]["judge"]
    assert (judged["n"], judged["disagreements"]) == (22, ["j10", "j13"])
    # Without the judge's word on j04 the reward keeps the rules' verdict there (wrong = the human's).
    assert result["raters"]["rules+judge"]["disagreements"] == ["j10", "j13"]


def test_cli_prints_the_audit_and_writes_json(judge, tmp_path, capsys):
    out = tmp_path / "audit.json"
    assert main(["--judge_api_base", judge.url, "--max_retries", "0", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Judge audit: 24 labelled answers" in printed
    assert "judge          24      83.3%  [64.1, 93.3]     0.664" in printed
    assert "rules          24      75.0%" in printed and "0.517" in printed
    assert "judge disagrees with the humans on: j04, j10, j13, j17" in printed
    assert json.loads(out.read_text())["raters"]["rules+judge"]["n"] == 24


def test_cli_errors(tmp_path, capsys):
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"question": "q", "reference": "r", "answer": "a", "human": "yes"}\n')
    assert main(["--labels", str(bad)]) == 2
    assert "line 1: 'human' must be true or false" in capsys.readouterr().err
    with pytest.raises(LabelsError, match="not found"):
        load_labels(tmp_path / "missing.jsonl")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    assert main(["--judge_api_base", dead, "--max_retries", "0", "--timeout_s", "2"]) == 1
    assert "no verdict on any row" in capsys.readouterr().err
