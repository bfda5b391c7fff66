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

#: A registered tool's name (see :mod:`deepeyes.tools`), or ``answer`` / ``invalid`` / ``none``.
ActionKind = str
ObservationStatus = Literal["success", "error", "timeout", "denied", "disabled", "budget_exceeded"]
StopReason = Literal["answer", "max_turns", "token_budget", "no_action", "error"]
#: Statuses of a call that was refused before it ran: counted as invalid, not as a call.
REFUSED_STATUSES: tuple[str, ...] = ("disabled", "budget_exceeded")
FAILED_STATUSES: tuple[str, ...] = ("error", "timeout", "denied")


def __getattr__(name: str) -> Any:
    # TOOL_KINDS comes from the tool registry, which is loaded on first use (no import cycle).
    if name == "TOOL_KINDS":
        from deepeyes.tools.registry import tool_names

        return tool_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


class ToolCallCounts:
    """Calls per registered tool (``counts.code``, ``counts.search``, …) plus three counters.

    ``invalid``: turns whose action did not parse, or named a disabled tool, or exceeded the
    budget; ``failed``: run calls whose execution failed (error/timeout/denied);
    ``repeated``: run calls identical to an earlier one in the same trajectory. The tool
    keys come from :mod:`deepeyes.tools.registry`; a record without a tool's key counts 0.
    """

    COUNTERS: tuple[str, ...] = ("invalid", "failed", "repeated")

    def __init__(self, invalid: int = 0, failed: int = 0, repeated: int = 0, **calls: int):
        from deepeyes.tools.registry import tool_names

        names = tool_names()
        unknown = sorted(set(calls) - set(names))
        if unknown:
            raise ValueError(f"unknown tool(s) {unknown} in tool-call counts; registered: {list(names)}")
        object.__setattr__(self, "calls", {name: int(calls.get(name, 0)) for name in names})
        self.invalid, self.failed, self.repeated = invalid, failed, repeated

    def __getattr__(self, name: str) -> int:
        calls = self.__dict__.get("calls", {})
        if name in calls:
            return calls[name]
        raise AttributeError(f"{type(self).__name__} has no count {name!r}")

    def __setattr__(self, name: str, value: int) -> None:
        if name in self.__dict__.get("calls", {}):
            self.calls[name] = value
        else:
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ToolCallCounts) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"ToolCallCounts({', '.join(f'{k}={v}' for k, v in self.to_dict().items())})"

    def tools(self) -> tuple[str, ...]:
        return tuple(self.calls)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def to_dict(self) -> dict[str, int]:
        """The tool stats in the reward's and verl's shape: every tool, then the counters."""
        return {**self.calls, "invalid": self.invalid, "failed": self.failed, "repeated": self.repeated}

    def record(self, action: Action, observation: Observation | None) -> None:
        """Count one turn's action and what came back (the one rule for every route).

        A tool call counts when it ran (not refused by status); it failed on an
        error/timeout/denied status; it repeated when the observation says so. Anything else
        that is not an answer (invalid, refused) counts as invalid.
        """
        if action.kind == "answer":
            return
        if action.kind in self.calls and observation is not None and observation.status not in REFUSED_STATUSES:
            self.calls[action.kind] += 1
            self.failed += observation.status in FAILED_STATUSES
            self.repeated += observation.repeated
        else:
            self.invalid += 1


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
        record = dataclasses.asdict(dataclasses.replace(self, tool_calls=None))
        record["tool_calls"] = self.tool_calls.to_dict()
        return record

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
