"""Turn what callers send (a trajectory, or a response text plus tool stats) into one shape.

The server, the library functions and verl's hook accept different inputs but must score
them identically, so each input is normalised here into a :class:`ScoreRequest`, and every
malformed input fails with a :class:`PayloadError` that names the offending field (the
server answers it with HTTP 400).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import jsonschema

from deepeyes.rewards.matching import ANSWER_TYPES
from deepeyes.tools.registry import stat_keys
from deepeyes.trajectory import StopReason, Trajectory, validate
from deepeyes.wire import trajectory_from_response

_STOP_REASONS: tuple[str, ...] = typing.get_args(StopReason)
_REQUEST_KEYS = frozenset(
    {"trajectory", "response", "solution_str", "ground_truth", "tool_stats", "question", "answer_type",
     "choices", "stop_reason", "data_source", "extra_info", "id", "image_frame"}
)
#: Keys of verl's ``extra_info`` that carry scoring inputs; any others are the dataset's own.
_EXTRA_INFO_KEYS = ("tool_stats", "question", "answer_type", "choices", "stop_reason", "image_frame")
#: verl's ``extra_info`` key under which an agent loop hands over the trajectory it built.
TRAJECTORY_KEY = "trajectory"


def reward_extra_fields(trajectory: Trajectory) -> dict[str, Any]:
    """What an agent loop hands verl's reward hook through ``extra_fields`` (merged into ``extra_info``).

    The trajectory itself (so the hook scores it on the trajectory route, see
    :func:`parse_request` and :func:`deepeyes.rewards.scoring.compute_score`), plus its tool
    stats (keys from the tool registry) and stop reason for hooks that only read those.
    """
    return {
        TRAJECTORY_KEY: trajectory.to_dict(),
        "tool_stats": trajectory.tool_calls.to_dict(),
        "stop_reason": trajectory.stop_reason,
    }


class PayloadError(ValueError):
    """A score request is malformed; the message names the field."""


@dataclass
class ScoreRequest:
    ground_truths: list[str]
    turn_texts: list[str]
    answer: str | None
    answered: bool  # an answer was produced and the run stopped because of it
    stop_reason: str | None
    tool_calls: dict[str, int]
    tool_stats_source: str  # trajectory | given | derived
    question: str | None = None
    answer_type: str = "auto"
    choices: dict[str, str] | None = None
    id: str | None = None
    #: The row's data set name; the ``deepeyes_v2`` preset routes by it as the released recipe
    #: does, and a grounding data set selects the IoU reward (:mod:`deepeyes.rewards.grounding`).
    data_source: str | None = None
    #: Grounding rows: ``{"original": [w, h], "processed": [w, h]}`` of the image, so a box the
    #: model wrote in the processed frame compares in original pixels; None: the frame given.
    image_frame: dict[str, Any] | None = None


def _ground_truths(value: Any) -> list[str]:
    if hasattr(value, "tolist"):  # numpy arrays / scalars, as verl stores them
        value = value.tolist()
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PayloadError("'ground_truth' must not be an empty list")
    truths = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise PayloadError(f"'ground_truth' must be a string, a number or a list of them, got {item!r}")
        text = str(item).strip()
        if not text:
            raise PayloadError("'ground_truth' must not be empty")
        truths.append(text)
    return truths


def _optional_str(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"'{key}' must be a string, got {type(value).__name__}")
    return value


def _answer_type(value: Any) -> str:
    if value is None:
        return "auto"
    if value not in ANSWER_TYPES:
        raise PayloadError(f"'answer_type' must be one of {list(ANSWER_TYPES)}, got {value!r}")
    return str(value)


def _choices(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise PayloadError("'choices' must map option letters to option texts, e.g. {\"A\": \"red\"}")
    return value


def _tool_stats(value: Any) -> dict[str, int]:
    keys = stat_keys()
    if not isinstance(value, dict):
        raise PayloadError(f"'tool_stats' must be a mapping with keys {list(keys)}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise PayloadError(f"'tool_stats' has unknown keys {unknown} (known: {list(keys)})")
    stats = {}
    for key in keys:
        count = value.get(key, 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise PayloadError(f"'tool_stats.{key}' must be a non-negative integer, got {count!r}")
        stats[key] = count
    return stats


def _optional_source(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"'data_source' must be a string, got {type(value).__name__}")
    return value


def request_from_trajectory(
    trajectory: dict[str, Any] | Trajectory,
    ground_truth: Any = None,
    *,
    answer_type: str | None = None,
    choices: dict[str, str] | None = None,
    data_source: str | None = None,
) -> ScoreRequest:
    """A request for a trajectory record (validated against the shared schema); ``data_source``
    defaults to the trajectory's own."""
    record = trajectory.to_dict() if isinstance(trajectory, Trajectory) else trajectory
    if not isinstance(record, dict):
        raise PayloadError("'trajectory' must be a JSON object")
    try:
        validate(record)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "<root>"
        raise PayloadError(f"'trajectory' breaks the trajectory schema at {where}: {exc.message}") from exc
    truth = ground_truth if ground_truth is not None else record.get("ground_truth")
    if truth is None:
        raise PayloadError("'ground_truth' is missing (neither in the request nor in the trajectory)")
    metadata = record.get("metadata") or {}
    final_answer = record["final_answer"]
    return ScoreRequest(
        ground_truths=_ground_truths(truth),
        turn_texts=[turn["model_text"] for turn in record["turns"]] or [""],
        answer=final_answer,
        answered=final_answer is not None and record["stop_reason"] == "answer",
        stop_reason=record["stop_reason"],
        tool_calls={key: record["tool_calls"].get(key, 0) for key in stat_keys()},
        tool_stats_source="trajectory",
        question=record["question"],
        answer_type=_answer_type(answer_type if answer_type is not None else metadata.get("answer_type")),
        choices=_choices(choices if choices is not None else metadata.get("choices")),
        id=record["id"],
        data_source=_optional_source(data_source if data_source is not None else record.get("data_source")),
        image_frame=metadata.get("image_frame"),
    )


def request_from_response(
    response: str,
    ground_truth: Any,
    *,
    tool_stats: dict[str, int] | None = None,
    question: str | None = None,
    answer_type: str | None = None,
    choices: dict[str, str] | None = None,
    stop_reason: str | None = None,
    request_id: str | None = None,
    data_source: str | None = None,
    image_frame: dict[str, Any] | None = None,
) -> ScoreRequest:
    """A request for a full response text, read into a trajectory by the wire parser.

    The text is read with :func:`deepeyes.wire.trajectory_from_response` (the grammar
    policy of :mod:`deepeyes.wire.parse`), so it scores as the trajectory the agent loop
    would have recorded. ``tool_stats``, when given, replace the counts read from the text.
    """
    if not isinstance(response, str):
        raise PayloadError(f"'response' must be a string, got {type(response).__name__}")
    if stop_reason is not None and stop_reason not in _STOP_REASONS:
        raise PayloadError(f"'stop_reason' must be one of {list(_STOP_REASONS)}, got {stop_reason!r}")
    if question is not None and not isinstance(question, str):
        raise PayloadError("'question' must be a string")
    trajectory = trajectory_from_response(response, question or "", stop_reason)  # type: ignore[arg-type]
    answer = trajectory.final_answer
    return ScoreRequest(
        ground_truths=_ground_truths(ground_truth),
        turn_texts=[turn.model_text for turn in trajectory.turns],
        answer=answer,
        answered=answer is not None and trajectory.stop_reason == "answer",
        stop_reason=stop_reason,
        tool_calls=_tool_stats(tool_stats) if tool_stats is not None else trajectory.tool_calls.to_dict(),
        tool_stats_source="given" if tool_stats is not None else "derived",
        question=question,
        answer_type=_answer_type(answer_type),
        choices=_choices(choices),
        id=request_id,
        data_source=_optional_source(data_source),
        image_frame=image_frame,
    )


def parse_request(payload: Any) -> ScoreRequest:
    """A request from a JSON payload of ``/score`` (trajectory form, response form or verl form)."""
    if not isinstance(payload, dict):
        raise PayloadError("the request body must be a JSON object")
    unknown = sorted(set(payload) - _REQUEST_KEYS)
    if unknown:
        raise PayloadError(f"unknown keys {unknown} (known: {sorted(_REQUEST_KEYS)})")
    if "ground_truth" not in payload and "trajectory" not in payload:
        raise PayloadError("'ground_truth' is required")
    if "trajectory" in payload:
        return request_from_trajectory(
            payload["trajectory"],
            payload.get("ground_truth"),
            answer_type=payload.get("answer_type"),
            choices=payload.get("choices"),
            data_source=payload.get("data_source"),
        )
    extra_info = payload.get("extra_info") or {}
    if not isinstance(extra_info, dict):
        raise PayloadError("'extra_info' must be a JSON object")
    if extra_info.get(TRAJECTORY_KEY) is not None:  # verl form, from our agent loop: the trajectory wins
        return request_from_trajectory(
            extra_info[TRAJECTORY_KEY],
            payload.get("ground_truth"),
            answer_type=payload.get("answer_type", extra_info.get("answer_type")),
            choices=payload.get("choices", extra_info.get("choices")),
            data_source=payload.get("data_source"),
        )
    fields = {key: payload.get(key, extra_info.get(key)) for key in _EXTRA_INFO_KEYS}
    response = payload.get("response", payload.get("solution_str"))
    if response is None:
        raise PayloadError("the request needs 'trajectory', 'response' or (verl's) 'solution_str'")
    request_id = _optional_str(payload, "id")
    return request_from_response(
        response, payload["ground_truth"], request_id=request_id, data_source=payload.get("data_source"), **fields
    )
