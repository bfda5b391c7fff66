"""The one trajectory record (DESIGN §5) written by RL, evaluation, the demo and inference.

Behaviour analysis reads trajectories from every stage, so they share one schema:
``trajectory.schema.json`` beside this file is the contract, and :func:`validate`
checks a record against it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema

SCHEMA_PATH = Path(__file__).with_name("trajectory.schema.json")
SCHEMA_VERSION = 1

ActionKind = Literal["code", "search", "image_search", "answer", "invalid", "none"]
ObservationStatus = Literal["success", "error", "timeout", "denied", "disabled", "budget_exceeded"]
StopReason = Literal["answer", "max_turns", "token_budget", "no_action", "error"]
TOOL_KINDS: tuple[str, ...] = ("code", "search", "image_search")


@dataclass
class Action:
    """What the parser made of one model turn."""

    kind: ActionKind
    content: str = ""  # code, query, answer text; empty for image_search
    reason: str | None = None  # why the turn is invalid, worded for the model


@dataclass
class Observation:
    """What a tool returned, as the model saw it (text) plus bookkeeping."""

    text: str
    image_count: int
    status: ObservationStatus
    latency_s: float
    repeated: bool = False


@dataclass
class Turn:
    index: int
    model_text: str
    action: Action
    observation: Observation | None = None
    generation_s: float = 0.0
    completion_tokens: int = 0


@dataclass
class ToolCallCounts:
    code: int = 0
    search: int = 0
    image_search: int = 0
    invalid: int = 0  # turns whose action did not parse (or named an unknown/disabled tool)
    failed: int = 0  # valid calls whose execution failed (error/timeout/denied)
    repeated: int = 0  # calls identical to an earlier call in the same trajectory

    @property
    def total(self) -> int:
        return self.code + self.search + self.image_search


@dataclass
class Trajectory:
    id: str
    question: str
    images: list[str]
    turns: list[Turn] = field(default_factory=list)
    final_answer: str | None = None
    stop_reason: StopReason = "no_action"
    tool_calls: ToolCallCounts = field(default_factory=ToolCallCounts)
    ground_truth: str | None = None
    data_source: str | None = None
    reward: dict[str, Any] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        validate(data)
        turns = [
            Turn(
                index=t["index"],
                model_text=t["model_text"],
                action=Action(**t["action"]),
                observation=Observation(**t["observation"]) if t.get("observation") else None,
                generation_s=t.get("generation_s", 0.0),
                completion_tokens=t.get("completion_tokens", 0),
            )
            for t in data["turns"]
        ]
        fields = {k: v for k, v in data.items() if k not in ("turns", "tool_calls")}
        return cls(turns=turns, tool_calls=ToolCallCounts(**data["tool_calls"]), **fields)


@cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _validator() -> jsonschema.Draft202012Validator:
    # Built once: jsonschema.validate() re-checks the schema itself on every call (~200 ms).
    return jsonschema.Draft202012Validator(schema())


def validate(record: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``record`` breaks the trajectory schema."""
    _validator().validate(record)


def write_jsonl(path: str | Path, trajectories: list[Trajectory], append: bool = True) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as handle:
        for trajectory in trajectories:
            handle.write(trajectory.to_json() + "\n")


def read_jsonl(path: str | Path) -> list[Trajectory]:
    with Path(path).open(encoding="utf-8") as handle:
        return [Trajectory.from_dict(json.loads(line)) for line in handle if line.strip()]
