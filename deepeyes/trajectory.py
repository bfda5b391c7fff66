"""The one trajectory record (DESIGN §5) written by RL, evaluation, the demo and inference.

Behaviour analysis reads trajectories from every stage, so they share one schema:
``trajectory.schema.json`` beside this file is the contract, and :func:`validate`
checks a record against it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema

from deepeyes.tool_specs import (
    FAILED_STATUSES,
    REFUSED_STATUSES,
    STAT_KEYS,
    TOOL_NAMES,
    ObservationStatus,
    ToolName,
)
from deepeyes.utils.jsonl import TORN_LINE, iter_jsonl

logger = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("trajectory.schema.json")
SCHEMA_VERSION = 1

#: A tool's name (:mod:`deepeyes.tool_specs`), ``answer``, or ``invalid`` (the turn did not parse).
ActionKind = ToolName | Literal["answer", "invalid"]
#: Why a run ended: ``answer`` (the model answered and ended its turn); ``max_turns``;
#: ``length`` (the turn that would have ended the run, an answer or a no-tool run's one turn,
#: was cut at the per-turn token limit before the model ended it, so the run did not finish);
#: ``token_budget`` (the next prompt would not fit ``max_context_tokens``, so it was never
#: sent); ``no_action`` (a no-tool run's one turn, scored as written); ``error`` (the rollout
#: failed). Only ``answer`` earns completion credit (docs/rewards.md).
StopReason = Literal["answer", "max_turns", "length", "token_budget", "no_action", "error"]
#: How the policy ended a turn: ``stop`` (the model, or a wire stop string) or ``length`` (cut
#: at ``max_new_tokens``); as :class:`deepeyes.policies.base.Generation` reports it.
FinishReason = Literal["stop", "length"]
#: The action kinds that run a tool (the name every stage reads them by).
TOOL_KINDS: tuple[ToolName, ...] = TOOL_NAMES


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
    #: The format violations the turn parser (:func:`deepeyes.wire.parse_turn`) found in
    #: ``model_text``, in order: the agent loop and the text route record them from that one
    #: parse. Empty in records written before they were recorded.
    violations: list[str] = field(default_factory=list)
    #: ``length``: the turn was cut at the token limit, so what it holds is unfinished (an
    #: answer in it does not end the run as answered). None when the policy does not say.
    finish_reason: FinishReason | None = None


@dataclass
class ToolCallCounts:
    """Calls per tool (one field per :data:`deepeyes.tool_specs.TOOL_NAMES`) plus three counters.

    ``invalid``: turns whose action did not parse, or named a disabled tool, or exceeded the
    budget; ``failed``: run calls whose execution failed (error/timeout/denied);
    ``repeated``: run calls identical to an earlier one in the same trajectory. A record
    written before a tool existed lacks its key and counts 0 for it.
    """

    code: int = 0
    search: int = 0
    image_search: int = 0
    image_zoom_in_tool: int = 0
    select_frames: int = 0
    invalid: int = 0
    failed: int = 0
    repeated: int = 0

    @classmethod
    def from_dict(cls, counts: Mapping[str, int]) -> ToolCallCounts:
        """Counts from a record's ``tool_calls``; ValueError for a key no tool spec has."""
        unknown = sorted(set(counts) - set(STAT_KEYS))
        if unknown:
            raise ValueError(f"unknown tool(s) {unknown} in tool-call counts; known keys: {list(STAT_KEYS)}")
        return cls(**{key: int(value) for key, value in counts.items()})

    def calls(self) -> dict[ToolName, int]:
        """Calls per tool, in the specs' order (the counters left out)."""
        return {name: getattr(self, name) for name in TOOL_NAMES}

    @property
    def total(self) -> int:
        return sum(self.calls().values())

    def to_dict(self) -> dict[str, int]:
        """The tool stats in the reward's and verl's shape: every tool, then the counters."""
        return dataclasses.asdict(self)

    def record(self, action: Action, observation: Observation | None) -> None:
        """Count one turn's action and what came back (the one rule for every route).

        A tool call counts when it ran (not refused by status); it failed on an
        error/timeout/denied status; it repeated when the observation says so. Anything else
        that is not an answer (invalid, refused) counts as invalid.
        """
        if action.kind == "answer":
            return
        if action.kind in TOOL_NAMES and observation is not None and observation.status not in REFUSED_STATUSES:
            setattr(self, action.kind, getattr(self, action.kind) + 1)
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
    #: The request's videos: ``{"source": path or "<in-memory>", "frames": frames the model saw}`` each.
    videos: list[dict[str, Any]] = field(default_factory=list)
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
                violations=list(t.get("violations", [])),
                finish_reason=t.get("finish_reason"),
            )
            for t in data["turns"]
        ]
        fields = {k: v for k, v in data.items() if k not in ("turns", "tool_calls")}
        return cls(turns=turns, tool_calls=ToolCallCounts.from_dict(data["tool_calls"]), **fields)


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
    """Every trajectory of a JSONL file, strictly: a line that is not one raises ValueError
    naming the file and line, except a torn last line (what a crash mid-write leaves), which
    is skipped with a warning naming the file."""
    path = Path(path)
    trajectories = []
    for number, record, problem in iter_jsonl(path):
        if problem is not None and problem.startswith(TORN_LINE):
            logger.warning("%s line %d skipped: %s", path, number, problem)
            continue
        if problem is not None:
            raise ValueError(f"{path}:{number}: {problem}")
        trajectories.append(Trajectory.from_dict(record))
    return trajectories
