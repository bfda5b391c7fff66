"""Streaming aggregation of one run's trajectories into the numbers the report shows.

Every trajectory is reduced once (:func:`digest`) and added to counters: per category,
per RL step, per complexity bucket, per decision path. Nothing keeps the trajectories
themselves, so memory grows with the number of categories, steps and distinct paths, not
with the number of trajectories. :meth:`RunAggregator.summary` turns the counters into
the JSON block of one run in ``behavior_summary.json``.

Definitions (docs/behavior_analysis.md repeats them):

* tools are the keys of a trajectory's ``tool_calls`` counts other than ``invalid``,
  ``failed`` and ``repeated`` — whatever tools the writing stage had;
* *tool-use rate* of a tool: share of trajectories that called it at least once;
  *calls per trajectory*: mean number of calls;
* *failure rate*: ``failed`` / all tool calls; *repeat rate*: ``repeated`` / all tool calls;
  *invalid rate*: ``invalid`` turns / all turns;
* *video rate*: share of trajectories whose request carried a video (the record's ``videos``);
  frame-tool use (``select_frames``) is a tool like the others, counted per category from
  ``tool_calls`` without naming it here;
* *category*: ``metadata.category`` (evaluation), else ``metadata.task`` (RL data), else
  ``data_source``, else ``unknown``;
* *accuracy*: the reward's ``accuracy`` component; absent when no trajectory was scored;
* *tool choice*: a trajectory whose metadata names ``required_tools`` *matches* when the set
  of tools it called equals that set, and *covers* it when it called at least those tools;
* *grounding rows*: trajectories whose reward details hold an ``iou`` (the grounding
  reward's; boxes in original-image pixels); a few per run are kept, with their first image's
  source, for the report to draw the predicted and true boxes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from deepeyes.analysis.codeops import ALL_CLASSES, classify
from deepeyes.analysis.collapse import CollapseAlarm
from deepeyes.wire.boxes import parse_box

COUNTER_KEYS = frozenset({"invalid", "failed", "repeated"})
FAILED_STATUSES = frozenset({"error", "timeout", "denied"})
#: Names a dataset may use for a tool, mapped to the trajectory's ``tool_calls`` key.
TOOL_ALIASES = {"code_execution": "code", "python": "code", "code_interpreter": "code", "text_search": "search", "web_search": "search"}
START, END = "start", "end"
ALARM_SERIES = "tool_calls_per_trajectory"  # tool calls per trajectory, = tools/calls_per_trajectory of the RL trainer


@dataclass
class AnalysisConfig:
    """Knobs of the analysis; the defaults are what ``analyze.py`` uses."""

    collapse_fraction: float = 0.5  # alarm when tool calls per trajectory < fraction × its first value ...
    collapse_patience: int = 3  # ... for this many consecutive RL steps
    examples_per_group: int = 5  # trajectories kept per (category, kind of example) for the browser
    top_paths: int = 12  # decision paths listed per run (per category: half of it)
    max_path_actions: int = 8  # longer paths are cut with "…"
    max_turn_bucket: int = 8  # complexity buckets: 1 … N-1 turns, then "N+"
    max_call_bucket: int = 5  # 0 … N-1 tool calls, then "N+"
    full_validation: bool = False  # validate every record against the JSON Schema (slower)
    grounding_pictures: int = 8  # grounding answers drawn per run, taken from each category in turn


def required_tools(metadata: dict[str, Any]) -> frozenset[str] | None:
    """The tools a sample's task needs, from ``metadata.required_tools`` (or under ``extra``/``extra_info``).

    Accepts a list of names or one comma-separated string (a TSV column); ``"none"`` or an
    empty list/string means "no tool needed" (the empty set). Names are mapped through
    :data:`TOOL_ALIASES`. ``None`` when the sample does not say (also for a missing TSV cell, NaN).
    """
    value = metadata.get("required_tools")
    for nested in ("extra", "extra_info"):
        if value is None and isinstance(metadata.get(nested), dict):
            value = metadata[nested].get("required_tools")
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple, set, frozenset)):
        return None
    names = (str(n).strip() for n in value)
    return frozenset(TOOL_ALIASES.get(n, n) for n in names if n and n.lower() != "none")


@dataclass
class Digest:
    """What one trajectory contributes; built once, added to several groups."""

    category: str
    calls: dict[str, int]  # tool → calls
    invalid: int
    failed: int
    repeated: int
    turns: int
    accuracy: float | None
    reward: dict[str, float]
    kinds: list[str]  # action kind per turn
    stop_reason: str
    tool_failed: Counter  # tool → failed calls (from the turns)
    code_primary: list[str]
    code_classes: list[frozenset[str]]
    response_tokens: int
    required: frozenset[str] | None
    step: int | None
    videos: int = 0  # input videos of the request
    total_calls: int = field(init=False)
    used: frozenset[str] = field(init=False)  # tools called at least once

    def __post_init__(self) -> None:
        self.total_calls = sum(self.calls.values())
        self.used = frozenset(tool for tool, count in self.calls.items() if count)


def category_of(record: dict[str, Any]) -> str:
    metadata = record.get("metadata") or {}
    for value in (metadata.get("category"), metadata.get("task"), record.get("data_source")):
        if value not in (None, ""):
            return str(value)
    return "unknown"


def grounding_example(record: dict[str, Any]) -> dict[str, Any] | None:
    """What a picture of a grounding row needs: its id, category, first image source, the
    answer's ``box`` and the ``true_box`` (original-image pixels; None where there is none)
    and the IoU; None for a trajectory that is no scored grounding row.

    A grounding row is one whose reward details hold an ``iou`` (the grounding reward writes
    it for those rows only). The reward records ``true_box`` only when an answer box was
    compared; otherwise (no box, a malformed one) the truth is read from the row's
    ``ground_truth`` with the one box parser (:func:`deepeyes.wire.boxes.parse_box`).
    """
    details = (record.get("reward") or {}).get("details") or {}
    if not isinstance(details, dict) or details.get("iou") is None:
        return None
    truth = details.get("true_box")
    if truth is None and record.get("ground_truth"):
        parsed = parse_box(str(record["ground_truth"])).box
        truth = list(parsed) if parsed else None
    images = record.get("images") or []
    return {
        "id": str(record["id"]),
        "category": category_of(record),
        "image": str(images[0]) if images else None,
        "box": details.get("box"),
        "true_box": truth,
        "iou": float(details["iou"]),
    }


def digest(record: dict[str, Any]) -> Digest:
    counts = record["tool_calls"]
    calls = {key: int(value) for key, value in counts.items() if key not in COUNTER_KEYS}
    reward = {key: float(value) for key, value in (record.get("reward") or {}).items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
    kinds, tool_failed, primary, classes = [], Counter(), [], []
    tokens = 0
    for turn in record["turns"]:
        action = turn["action"]
        kind = str(action["kind"])
        kinds.append(kind)
        tokens += int(turn.get("completion_tokens") or 0)
        observation = turn.get("observation")
        if observation and kind in calls and observation.get("status") in FAILED_STATUSES:
            tool_failed[kind] += 1
        if kind == "code" and observation is not None:
            operations = classify(str(action.get("content", "")))
            primary.append(operations.primary)
            classes.append(operations.classes)
    metadata = record.get("metadata") or {}
    step = metadata.get("step")
    return Digest(
        category=category_of(record),
        calls=calls,
        invalid=int(counts.get("invalid", 0)),
        failed=int(counts.get("failed", 0)),
        repeated=int(counts.get("repeated", 0)),
        turns=len(kinds),
        accuracy=reward.get("accuracy"),
        reward=reward,
        kinds=kinds,
        stop_reason=str(record["stop_reason"]),
        tool_failed=tool_failed,
        code_primary=primary,
        code_classes=classes,
        response_tokens=tokens,
        required=required_tools(metadata),
        step=step if isinstance(step, int) else None,
        videos=len(record.get("videos") or []),
    )


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


@dataclass
class _Accuracy:
    n: int = 0
    scored: int = 0
    total: float = 0.0

    def add(self, accuracy: float | None) -> None:
        self.n += 1
        if accuracy is not None:
            self.scored += 1
            self.total += accuracy

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": _ratio(self.total, self.scored)}


@dataclass
class GroupStats:
    """Counters over a group of trajectories (a run, a category, an RL step)."""

    n: int = 0
    used: Counter = field(default_factory=Counter)  # tool → trajectories calling it
    calls: Counter = field(default_factory=Counter)  # tool → calls
    tool_failed: Counter = field(default_factory=Counter)
    any_tool: int = 0
    with_video: int = 0  # trajectories whose request had a video
    failed: int = 0
    repeated: int = 0
    invalid: int = 0
    turns: int = 0
    response_tokens: int = 0
    accuracy: _Accuracy = field(default_factory=_Accuracy)
    with_tools: _Accuracy = field(default_factory=_Accuracy)
    without_tools: _Accuracy = field(default_factory=_Accuracy)
    reward_sum: Counter = field(default_factory=Counter)
    reward_n: Counter = field(default_factory=Counter)
    code_calls: int = 0
    code_primary: Counter = field(default_factory=Counter)
    code_classes: Counter = field(default_factory=Counter)
    labelled: int = 0
    choice_match: int = 0
    choice_cover: int = 0
    none_needed: int = 0
    none_needed_called: int = 0

    def add(self, d: Digest) -> None:
        self.n += 1
        calls, used = self.calls, self.used
        for tool, count in d.calls.items():
            calls[tool] += count
            if count:
                used[tool] += 1
        for tool, count in d.tool_failed.items():
            self.tool_failed[tool] += count
        total = d.total_calls
        self.any_tool += total > 0
        self.with_video += d.videos > 0
        self.failed += d.failed
        self.repeated += d.repeated
        self.invalid += d.invalid
        self.turns += d.turns
        self.response_tokens += d.response_tokens
        self.accuracy.add(d.accuracy)
        (self.with_tools if total else self.without_tools).add(d.accuracy)
        for key, value in d.reward.items():
            self.reward_sum[key] += value
            self.reward_n[key] += 1
        if d.code_primary:
            self.code_calls += len(d.code_primary)
            for primary, classes in zip(d.code_primary, d.code_classes, strict=True):
                self.code_primary[primary] += 1
                for cls in classes:
                    self.code_classes[cls] += 1
        if d.required is not None:
            self.labelled += 1
            self.choice_match += d.used == d.required
            self.choice_cover += d.required <= d.used
            if not d.required:
                self.none_needed += 1
                self.none_needed_called += total > 0

    def block(self, tools: list[str]) -> dict[str, Any]:
        """The group's metrics; ``tools`` fixes the per-tool keys (all tools seen in the run)."""
        n = self.n
        if n == 0:
            return {"n": 0}
        total_calls = sum(self.calls.values())
        return {
            "n": n,
            "accuracy": self.accuracy.to_dict()["accuracy"],
            "mean_turns": self.turns / n,
            "any_tool_rate": self.any_tool / n,
            "video_rate": self.with_video / n,
            "tool_use_rate": {tool: self.used[tool] / n for tool in tools},
            "calls_per_trajectory": {tool: self.calls[tool] / n for tool in tools},
            "tool_calls_per_trajectory": total_calls / n,
            "failure_rate": _ratio(self.failed, total_calls),
            "repeat_rate": _ratio(self.repeated, total_calls),
            "invalid_rate": _ratio(self.invalid, self.turns),
            "tool_failure_rate": {tool: _ratio(self.tool_failed[tool], self.calls[tool]) for tool in tools},
            "response_tokens": self.response_tokens / n,
            "reward": {key: self.reward_sum[key] / self.reward_n[key] for key in sorted(self.reward_sum)},
            "with_tools": self.with_tools.to_dict(),
            "without_tools": self.without_tools.to_dict(),
            "counts": {
                "tool_calls": total_calls,
                "calls": {tool: self.calls[tool] for tool in tools},
                "trajectories_using": {tool: self.used[tool] for tool in tools},
                "failed": self.failed,
                "repeated": self.repeated,
                "invalid": self.invalid,
                "turns": self.turns,
            },
        }

    def code_block(self) -> dict[str, Any]:
        return {
            "code_calls": self.code_calls,
            "primary": {cls: self.code_primary[cls] for cls in ALL_CLASSES},
            "primary_share": {cls: _ratio(self.code_primary[cls], self.code_calls) for cls in ALL_CLASSES},
            "any": {cls: self.code_classes[cls] for cls in ALL_CLASSES},
        }

    def choice_block(self) -> dict[str, Any]:
        return {
            "labelled": self.labelled,
            "unlabelled": self.n - self.labelled,
            "match_rate": _ratio(self.choice_match, self.labelled),
            "cover_rate": _ratio(self.choice_cover, self.labelled),
            "none_needed": self.none_needed,
            "called_when_none_needed_rate": _ratio(self.none_needed_called, self.none_needed),
        }


@dataclass
class _Bucket:
    """A complexity bucket: accuracy and tool use of the trajectories with so many turns/calls."""

    accuracy: _Accuracy = field(default_factory=_Accuracy)
    calls: int = 0
    any_tool: int = 0

    def add(self, d: Digest) -> None:
        self.accuracy.add(d.accuracy)
        self.calls += d.total_calls
        self.any_tool += d.total_calls > 0


def _path(kinds: list[str], stop_reason: str, max_actions: int) -> str:
    runs: list[list[Any]] = []
    for kind in kinds:
        if runs and runs[-1][0] == kind:
            runs[-1][1] += 1
        else:
            runs.append([kind, 1])
    parts = [kind if count == 1 else f"{kind}×{count}" for kind, count in runs[:max_actions]]
    if len(runs) > max_actions:
        parts.append("…")
    if stop_reason != "answer":
        parts.append(f"[{stop_reason}]")
    return " → ".join(parts) or f"[{stop_reason}]"


def _bucket(value: int, cap: int) -> str:
    return f"{cap}+" if value >= cap else str(value)


class RunAggregator:
    """Adds trajectories one at a time; :meth:`summary` gives the run's block of the summary."""

    def __init__(self, config: AnalysisConfig):
        self.config = config
        self.tools: list[str] = []  # in first-seen order
        self.overall = GroupStats()
        self.categories: dict[str, GroupStats] = defaultdict(GroupStats)
        self.steps: dict[int, GroupStats] = defaultdict(GroupStats)
        self.paths: Counter = Counter()
        self.category_paths: dict[str, Counter] = defaultdict(Counter)
        self.combinations: dict[str, Counter] = defaultdict(Counter)
        self.transitions: Counter = Counter()
        self.states: list[str] = []
        self.by_turns: dict[str, _Bucket] = defaultdict(_Bucket)
        self.by_calls: dict[str, _Bucket] = defaultdict(_Bucket)
        self.grounding_rows: Counter = Counter()  # category → grounding rows
        self.grounding_kept: dict[str, list[dict[str, Any]]] = defaultdict(list)  # at most grounding_pictures per category

    def add(self, record: dict[str, Any]) -> Digest:
        d = digest(record)
        example = grounding_example(record)
        if example is not None:
            self.grounding_rows[d.category] += 1
            if len(self.grounding_kept[d.category]) < self.config.grounding_pictures:
                self.grounding_kept[d.category].append(example)
        for tool in d.calls:
            if tool not in self.tools:
                self.tools.append(tool)
        self.overall.add(d)
        self.categories[d.category].add(d)
        if d.step is not None:
            self.steps[d.step].add(d)
        path = _path(d.kinds, d.stop_reason, self.config.max_path_actions)
        self.paths[path] += 1
        self.category_paths[d.category][path] += 1
        self.combinations[d.category][" + ".join(sorted(d.used)) or "no tool"] += 1
        previous = START
        for kind in d.kinds:
            if kind not in self.states:
                self.states.append(kind)
            self.transitions[previous, kind] += 1
            previous = kind
        self.transitions[previous, END] += 1
        self.by_turns[_bucket(d.turns, self.config.max_turn_bucket)].add(d)
        self.by_calls[_bucket(d.total_calls, self.config.max_call_bucket)].add(d)
        return d

    def _top(self, counter: Counter, limit: int, total: int) -> list[dict[str, Any]]:
        return [{"path": path, "count": count, "share": count / total} for path, count in counter.most_common(limit)]

    def _transition_block(self) -> dict[str, Any]:
        rows, columns = [START, *self.states], [*self.states, END]
        counts = [[self.transitions[a, b] for b in columns] for a in rows]
        return {
            "from": rows,
            "to": columns,
            "counts": counts,
            "probabilities": [[c / sum(row) if sum(row) else 0.0 for c in row] for row in counts],
        }

    def _complexity(self, buckets: dict[str, _Bucket], cap: int) -> list[dict[str, Any]]:
        rows = []
        for key in [*(str(i) for i in range(cap)), f"{cap}+"]:
            bucket = buckets.get(key)
            if bucket is None:
                continue
            n = bucket.accuracy.n
            rows.append(
                {"bucket": key, "n": n, "accuracy": bucket.accuracy.to_dict()["accuracy"], "tool_calls_per_trajectory": bucket.calls / n, "any_tool_rate": bucket.any_tool / n}
            )
        return rows

    def summary(self, step_metrics: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        config, tools = self.config, self.tools
        categories = sorted(self.categories)
        total = self.overall.n
        return {
            "tools": list(tools),
            "overall": self.overall.block(tools),
            "categories": {c: self.categories[c].block(tools) for c in categories},
            "code_operations": {
                "overall": self.overall.code_block(),
                "categories": {c: self.categories[c].code_block() for c in categories},
            },
            "paths": {
                "top": self._top(self.paths, config.top_paths, total) if total else [],
                "distinct": len(self.paths),
                "categories": {c: self._top(self.category_paths[c], max(1, config.top_paths // 2), self.categories[c].n) for c in categories},
                "combinations": {c: dict(self.combinations[c].most_common()) for c in categories},
            },
            "transitions": self._transition_block(),
            "complexity": {
                "by_turns": self._complexity(self.by_turns, config.max_turn_bucket),
                "by_tool_calls": self._complexity(self.by_calls, config.max_call_bucket),
                "with_vs_without_tools": {
                    c: {"with_tools": self.categories[c].with_tools.to_dict(), "without_tools": self.categories[c].without_tools.to_dict()}
                    for c in categories
                },
            },
            "tool_choice": {
                "overall": self.overall.choice_block(),
                "categories": {c: self.categories[c].choice_block() for c in categories},
            },
            "rl_steps": self._rl_block(step_metrics or []),
            "grounding": self._grounding_block(),
        }

    def _grounding_block(self) -> dict[str, Any] | None:
        """Rows per category and the examples to draw, taken from each category in turn; None without grounding rows."""
        if not self.grounding_rows:
            return None
        queues = [self.grounding_kept[c] for c in sorted(self.grounding_kept)]
        in_turn = [queue[i] for i in range(max(map(len, queues))) for queue in queues if i < len(queue)]
        return {"rows": dict(sorted(self.grounding_rows.items())), "examples": in_turn[: self.config.grounding_pictures]}

    def _rl_block(self, step_metrics: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not self.steps and not step_metrics:
            return None
        tools, config = self.tools, self.config
        steps = sorted(self.steps)
        blocks = [self.steps[s].block(tools) for s in steps]
        series: dict[str, list[float | None]] = {
            ALARM_SERIES: [b["tool_calls_per_trajectory"] for b in blocks],
            "any_tool_rate": [b["any_tool_rate"] for b in blocks],
            **{f"calls_per_trajectory/{t}": [b["calls_per_trajectory"][t] for b in blocks] for t in tools},
            **{f"tool_use_rate/{t}": [b["tool_use_rate"][t] for b in blocks] for t in tools},
            "failure_rate": [b["failure_rate"] for b in blocks],
            "invalid_rate": [b["invalid_rate"] for b in blocks],
            "repeat_rate": [b["repeat_rate"] for b in blocks],
            "mean_turns": [b["mean_turns"] for b in blocks],
            "response_tokens": [b["response_tokens"] for b in blocks],
        }
        components = sorted({key for b in blocks for key in b["reward"]})
        for key in components:
            series[f"reward/{key}"] = [b["reward"].get(key) for b in blocks]
        trainer_steps = [m["step"] for m in step_metrics]
        names = sorted({k for m in step_metrics for k, v in m.items() if k != "step" and isinstance(v, (int, float))})
        trainer = {name: [m.get(name) for m in step_metrics] for name in names}
        # The alarm replays the trainer's rule: over the logged trajectories when there are
        # any, else over the trainer's own tools/calls_per_trajectory.
        if steps:
            alarm_steps, alarm_values, source = steps, series[ALARM_SERIES], "trajectories"
        else:
            alarm_steps, alarm_values, source = trainer_steps, trainer.get("tools/calls_per_trajectory", []), "metrics.jsonl"
        alarm = CollapseAlarm(config.collapse_fraction, config.collapse_patience)
        messages = [m for s, v in zip(alarm_steps, alarm_values, strict=False) if v is not None and (m := alarm.update(s, v))]
        return {
            "steps": steps,
            "n_per_step": [self.steps[s].n for s in steps],
            "series": series,
            "trainer_metrics": {"steps": trainer_steps, "series": trainer},
            "collapse": {
                "series": ALARM_SERIES if steps else "tools/calls_per_trajectory",
                "source": source,
                "fraction": config.collapse_fraction,
                "patience": config.collapse_patience,
                "baseline": alarm.baseline,
                "threshold": alarm.threshold,
                "fired_at": alarm.fired_at,
                "messages": messages,
            },
        }
