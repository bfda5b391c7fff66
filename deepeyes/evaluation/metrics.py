"""Evaluation metrics from scored trajectories (shared schema), per dataset and per category.

Definitions (docs/evaluation.md repeats them for readers of the report):

* **accuracy** — mean of the reward's ``accuracy`` component (1 correct / 0 wrong), with
  ``accuracy_ci``, its 95 % interval: Wilson when every sample scored 0 or 1, else the
  percentile bootstrap over samples (``deepeyes.utils.stats``). ``mean_score_ci``: the
  bootstrap interval of the mean total reward. ``n`` is in every block.
* **circular accuracy** — with ``--circular``, the share of multiple-choice rows answered
  right under every rotation of their options (``deepeyes.evaluation.circular``), with
  ``circular_accuracy_ci`` and ``circular_n`` (rows that qualify); ``None`` / 0 otherwise.
* **task completion** — share of samples that produced an answer within ``max_turns``
  (``stop_reason`` ``answer``, or ``no_action`` with text in single-turn no-tool mode).
* **tool-call rate** per tool — share of samples that called the tool at least once;
  ``tool_calls_per_sample`` is the mean number of calls. A call is a turn the loop sent
  to the tool manager (it has an observation), so single-turn no-tool runs make none.
* **tool-call validity** — of the turns that attempted a call (a parsed tool action, or an
  unparseable turn that opened ``<code>``/``<tool_call>``), the share that parsed *and*
  executed successfully; ``tool_call_parse_rate`` is the share that parsed. ``None`` when
  no call was attempted.
* **valid-action share** — share of all turns whose action parsed (tool call or answer).
* **latency** — mean and 95th percentile (linear interpolation) of a sample's wall time.
* **mean turns** — model turns per sample.
* **errors** — samples whose rollout raised (policy or infrastructure failure); they
  count as wrong and not completed.
* **grounding** (datasets with box answers, issue 26) — over the samples whose reward
  recorded an IoU (``reward.details.iou``, written for grounding rows only): ``acc@0.5``,
  the share with IoU ≥ 0.5 (:data:`~deepeyes.rewards.config.DEFAULT_IOU_THRESHOLD`),
  with its Wilson interval ``acc@0.5_ci``, and ``mean_iou`` with its bootstrap interval
  ``mean_iou_ci``; a sample without an answer or with a malformed box counts with IoU 0.
  Overall and per category, in the dataset's ``grounding`` block.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepeyes import wire
from deepeyes.evaluation.circular import circular_block
from deepeyes.rewards.config import DEFAULT_IOU_THRESHOLD
from deepeyes.trajectory import TOOL_KINDS
from deepeyes.utils.stats import bootstrap_mean_interval, mean_interval

_COMPLETED_STOPS = ("answer", "no_action")
_CALL_OPENINGS = (wire.CODE_OPEN, wire.TOOL_CALL_OPEN)


@dataclass
class SampleOutcome:
    """What one scored trajectory contributes to the metrics."""

    category: str
    accuracy: float
    score: float
    completed: bool
    latency_s: float
    turns: int
    calls: dict[str, int]  # parsed tool calls per tool
    attempted_calls: int
    parsed_calls: int
    executed_calls: int  # parsed and returned status "success"
    parsed_turns: int
    error: bool
    #: Right under every rotation of the options (CircularEval); None: not asked or not multiple choice.
    circular: bool | None = None
    #: IoU of the answer's box with the true box (grounding rows); None: not a box answer.
    iou: float | None = None


def outcome(record: dict[str, Any], circular: bool | None = None) -> SampleOutcome:
    """Reduce one trajectory record (dict form, ``reward`` filled) to its metric inputs."""
    reward = record.get("reward") or {}
    turns = record["turns"]
    calls = {tool: 0 for tool in TOOL_KINDS}
    attempted = parsed = executed = parsed_turns = 0
    for turn in turns:
        kind = turn["action"]["kind"]
        observation = turn.get("observation")
        # Only turns the loop handed to the tool manager are calls (no-tool mode sends none).
        if observation is not None and kind in TOOL_KINDS:
            calls[kind] += 1
            attempted += 1
            parsed += 1
            executed += observation["status"] == "success"
        elif observation is not None and kind == "invalid" and any(opening in turn["model_text"] for opening in _CALL_OPENINGS):
            attempted += 1
        if kind in TOOL_KINDS or kind == "answer":
            parsed_turns += 1
    error = record["stop_reason"] == "error"
    iou = (reward.get("details") or {}).get("iou")
    return SampleOutcome(
        category=str((record.get("metadata") or {}).get("category", "all")),
        accuracy=float(reward.get("accuracy", 0.0)),
        score=float(reward.get("score", 0.0)),
        completed=not error and record["final_answer"] is not None and record["stop_reason"] in _COMPLETED_STOPS,
        latency_s=float((record.get("timing") or {}).get("total_s", 0.0)),
        turns=len(turns),
        calls=calls,
        attempted_calls=attempted,
        parsed_calls=parsed,
        executed_calls=executed,
        parsed_turns=parsed_turns,
        error=error,
        circular=circular,
        iou=None if iou is None else float(iou),
    )


def _interval(interval: tuple[float, float] | None) -> list[float] | None:
    return list(interval) if interval is not None else None


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def aggregate(outcomes: list[SampleOutcome]) -> dict[str, Any]:
    """The metric block for a group of samples (a dataset, a category, or everything)."""
    n = len(outcomes)
    if n == 0:
        return {"n": 0}
    latencies = np.array([o.latency_s for o in outcomes])
    attempted = sum(o.attempted_calls for o in outcomes)
    total_turns = sum(o.turns for o in outcomes)
    accuracies = [o.accuracy for o in outcomes]
    scores = [o.score for o in outcomes]
    return {
        "n": n,
        "accuracy": float(np.mean(accuracies)),
        "accuracy_ci": _interval(mean_interval(accuracies)),
        **circular_block([o.circular for o in outcomes if o.circular is not None]),
        "mean_score": float(np.mean(scores)),
        "mean_score_ci": _interval(bootstrap_mean_interval(scores)),
        "task_completion": sum(o.completed for o in outcomes) / n,
        "tool_call_rate": {tool: sum(o.calls[tool] > 0 for o in outcomes) / n for tool in TOOL_KINDS},
        "any_tool_call_rate": sum(any(o.calls.values()) for o in outcomes) / n,
        "tool_calls_per_sample": {tool: sum(o.calls[tool] for o in outcomes) / n for tool in TOOL_KINDS},
        "tool_calls_attempted": attempted,
        "tool_call_validity": _ratio(sum(o.executed_calls for o in outcomes), attempted),
        "tool_call_parse_rate": _ratio(sum(o.parsed_calls for o in outcomes), attempted),
        "valid_action_share": _ratio(sum(o.parsed_turns for o in outcomes), total_turns),
        "mean_turns": total_turns / n,
        "latency_mean_s": float(latencies.mean()),
        "latency_p95_s": float(np.percentile(latencies, 95)),
        "errors": sum(o.error for o in outcomes),
    }


def dataset_metrics(records: list[dict[str, Any]], circular: dict[str, bool] | None = None) -> dict[str, Any]:
    """Overall metrics of one dataset plus a block per category (sorted by name).

    ``circular``: CircularEval's verdict by trajectory id, for the rows it covers.
    """
    circular = circular or {}
    outcomes = [outcome(record, circular.get(record["id"])) for record in records]
    by_category: dict[str, list[SampleOutcome]] = defaultdict(list)
    for item in outcomes:
        by_category[item.category].append(item)
    result = {
        "overall": aggregate(outcomes),
        "categories": {name: aggregate(items) for name, items in sorted(by_category.items())},
    }
    if any(item.iou is not None for item in outcomes):
        result["grounding"] = {
            **grounding_block(outcomes),
            "categories": {name: grounding_block(items) for name, items in sorted(by_category.items()) if any(o.iou is not None for o in items)},
        }
    return result


#: The key of the thresholded IoU in a grounding block (``acc@0.5``).
ACC_KEY = f"acc@{DEFAULT_IOU_THRESHOLD:g}"


def grounding_block(outcomes: list[SampleOutcome]) -> dict[str, Any]:
    """Acc@0.5 and mean IoU, each with its 95 % interval, over the outcomes that have an IoU."""
    values = [o.iou for o in outcomes if o.iou is not None]
    hits = [float(v >= DEFAULT_IOU_THRESHOLD) for v in values]
    return {
        "n": len(values),
        ACC_KEY: float(np.mean(hits)),
        f"{ACC_KEY}_ci": _interval(mean_interval(hits)),
        "mean_iou": float(np.mean(values)),
        "mean_iou_ci": _interval(bootstrap_mean_interval(values)),
    }


def latencies(records: list[dict[str, Any]]) -> list[float]:
    """Per-sample wall times, for the report's histogram."""
    return [outcome(record).latency_s for record in records]
