"""Hand-made trajectories for the behaviour-analysis tests, built through the real schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepeyes import wire
from deepeyes.trajectory import (
    Action,
    Observation,
    ToolCallCounts,
    Trajectory,
    Turn,
    validate,
)

CROP_CODE = "from PIL import Image\nimg = Image.open('x.png')\nw, h = img.size\nimg.crop((0, 0, w // 2, h // 2)).save('c.png')"
NUMERIC_CODE = "print((12.5 + 7.5) / 2)"


def turn(index: int, kind: str, content: str = "", status: str | None = "success", repeated: bool = False, images: int = 0, tokens: int = 10) -> Turn:
    """One turn; ``status=None`` means no observation (answers, and turns the loop did not execute)."""
    if kind == "code":
        text = wire.code_action(content)
    elif kind == "search":
        text = wire.text_search_action(content)
    elif kind == "answer":
        text = wire.answer_action(content)
    else:
        text = content
    observation = None
    if status is not None and kind != "answer":
        observation = Observation(text=f"result of turn {index}", image_count=images, status=status, latency_s=0.1, repeated=repeated)
    reason = "The tool call is not valid JSON." if kind == "invalid" else None
    return Turn(index=index, model_text=wire.think(f"step {index}") + text, action=Action(kind, content, reason), observation=observation, completion_tokens=tokens)


def trajectory(
    id: str,
    category: str,
    turns: list[Turn],
    accuracy: float | None,
    stop_reason: str = "answer",
    step: int | None = None,
    required_tools: list[str] | None = None,
) -> dict[str, Any]:
    """A schema-valid record whose ``tool_calls`` counts are derived from ``turns`` as the agent loop counts them."""
    counts = ToolCallCounts()
    for t in turns:
        kind = t.action.kind
        if kind == "invalid":
            counts.invalid += 1
        elif kind in ("code", "search", "image_search") and t.observation is not None:
            setattr(counts, kind, getattr(counts, kind) + 1)
            counts.failed += t.observation.status in ("error", "timeout", "denied")
            counts.repeated += t.observation.repeated
    metadata: dict[str, Any] = {"category": category}
    if step is not None:
        metadata["step"] = step
    if required_tools is not None:
        metadata["required_tools"] = required_tools
    answer = next((t.action.content for t in turns if t.action.kind == "answer"), None)
    reward = None if accuracy is None else {"score": accuracy, "accuracy": accuracy, "format": 1.0}
    record = Trajectory(
        id=id, question=f"question {id}", images=[], turns=turns, final_answer=answer, stop_reason=stop_reason,
        tool_calls=counts, ground_truth="42", data_source="synthetic", reward=reward, metadata=metadata,
    ).to_dict()
    validate(record)
    return record


def five_trajectories() -> list[dict[str, Any]]:
    """The hand-counted set (see test_aggregate.py for the expected numbers)."""
    return [
        trajectory("t1", "chart", [turn(0, "code", CROP_CODE, images=1), turn(1, "answer", "42")], 1.0),
        trajectory(
            "t2", "chart",
            [turn(0, "code", NUMERIC_CODE, status="error"), turn(1, "code", NUMERIC_CODE, repeated=True), turn(2, "answer", "41")],
            0.0,
        ),
        trajectory("t3", "ocr", [turn(0, "search", "capital of France"), turn(1, "answer", "Paris")], 1.0),
        trajectory("t4", "ocr", [turn(0, "answer", "7")], 0.0),
        trajectory("t5", "ocr", [turn(0, "invalid", "<tool_call>{oops</tool_call>", status=None)], 0.0, stop_reason="max_turns"),
    ]


def write_jsonl(path: Path, records: list[dict[str, Any] | str]) -> Path:
    """Records as JSON lines; a ``str`` item is written verbatim (for malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture()
def jsonl(tmp_path: Path) -> Callable[..., Path]:
    def make(records: list[dict[str, Any] | str], name: str = "run.jsonl") -> Path:
        return write_jsonl(tmp_path / name, records)

    return make
