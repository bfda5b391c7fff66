"""Load trajectory JSONL files from any stage and filter them for the viewer page.

Evaluation, RL and the demo all write the one trajectory schema (DESIGN §5); this module
reads such a file line by line (a bad line is reported by number, the rest still load)
and answers the viewer's filters: dataset, category, correct/incorrect, tools used.

An uploaded file is the visitor's, not the operator's: the image paths it names are read
from this machine only inside the folders the operator allowed (:func:`image_reader`; by
default the demo's sample folder), never anywhere else (issue 30 showed a root-only file
named in an uploaded trajectory). Images the file carries itself (data URLs) always show.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from deepeyes.demo.tools import tool_names
from deepeyes.trajectory import Trajectory

NO_TOOL = "none"
CORRECTNESS = ("all", "correct", "incorrect", "unscored")
#: ``reward["accuracy"]`` at or above this counts as correct (accuracy is 0/1 for exact
#: matching, a fraction for partial-credit judges).
CORRECT_AT = 0.5
MAX_ERRORS_SHOWN = 5


@dataclass
class LoadedFile:
    trajectories: list[Trajectory]
    errors: list[str] = field(default_factory=list)  # "line N: why", for the page


def load_trajectories(path: str | Path) -> LoadedFile:
    """Read a trajectory JSONL; lines that are not JSON or break the schema are skipped and reported."""
    loaded = LoadedFile([])
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                loaded.trajectories.append(Trajectory.from_dict(json.loads(line)))
            except json.JSONDecodeError as exc:
                loaded.errors.append(f"line {number}: not JSON ({exc.msg})")
            except jsonschema.ValidationError as exc:
                loaded.errors.append(f"line {number}: not a trajectory record ({exc.message[:120]})")
            except (TypeError, KeyError, AttributeError) as exc:
                loaded.errors.append(f"line {number}: not a trajectory record ({type(exc).__name__})")
    return loaded


def image_reader(folders: Sequence[str | Path]) -> Callable[[str], bool]:
    """Whether an image path named in an uploaded file may be read: a file inside one of ``folders``.

    Paths are compared after resolving links and ``..`` (``os.path.realpath``), so neither
    can lead out of a folder. No folders: no path may be read.
    """
    roots = [os.path.realpath(folder) for folder in folders]

    def may_read(source: str) -> bool:
        if "://" in source or source.startswith("<"):
            return False
        real = os.path.realpath(source)
        return os.path.isfile(real) and any(os.path.commonpath([real, root]) == root for root in roots)

    return may_read


def dataset_of(trajectory: Trajectory) -> str:
    return str(trajectory.data_source or trajectory.metadata.get("dataset") or "unknown")


def category_of(trajectory: Trajectory) -> str:
    return str(trajectory.metadata.get("category") or "none")


def correctness_of(trajectory: Trajectory) -> str:
    """``correct``, ``incorrect`` or ``unscored`` (no accuracy in the reward)."""
    accuracy = (trajectory.reward or {}).get("accuracy")
    if not isinstance(accuracy, (int, float)):
        return "unscored"
    return "correct" if accuracy >= CORRECT_AT else "incorrect"


def tools_used(trajectory: Trajectory) -> set[str]:
    """Tools the trajectory called (calls that reached the tool manager); ``{"none"}`` when none."""
    used = {turn.action.kind for turn in trajectory.turns if turn.observation is not None and turn.action.kind in tool_names()}
    return used or {NO_TOOL}


@dataclass
class TrajectoryFilter:
    """Empty selections mean "any"; ``tools`` keeps trajectories that used any of them."""

    datasets: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    correctness: str = "all"
    tools: list[str] = field(default_factory=list)

    def matches(self, trajectory: Trajectory) -> bool:
        return (
            (not self.datasets or dataset_of(trajectory) in self.datasets)
            and (not self.categories or category_of(trajectory) in self.categories)
            and (self.correctness == "all" or correctness_of(trajectory) == self.correctness)
            and (not self.tools or bool(tools_used(trajectory) & set(self.tools)))
        )

    def apply(self, trajectories: list[Trajectory]) -> list[int]:
        """Indices of the matching trajectories, in file order."""
        return [i for i, trajectory in enumerate(trajectories) if self.matches(trajectory)]


def facets(trajectories: list[Trajectory]) -> dict[str, list[str]]:
    """The choices each filter offers for this file."""
    return {
        "datasets": sorted({dataset_of(t) for t in trajectories}),
        "categories": sorted({category_of(t) for t in trajectories}),
        "tools": [*tool_names(), NO_TOOL],
    }


def summary_row(index: int, trajectory: Trajectory) -> list[str | int]:
    """One table row: #, id, dataset, category, result, tools, turns, question."""
    question = trajectory.question if len(trajectory.question) <= 80 else trajectory.question[:77] + "…"
    return [
        index + 1,
        trajectory.id,
        dataset_of(trajectory),
        category_of(trajectory),
        correctness_of(trajectory),
        ", ".join(sorted(tools_used(trajectory))),
        len(trajectory.turns),
        question,
    ]


SUMMARY_HEADERS = ["#", "id", "dataset", "category", "result", "tools", "turns", "question"]


def choice_label(index: int, trajectory: Trajectory) -> str:
    return f"#{index + 1} · {trajectory.id} · {dataset_of(trajectory)} · {correctness_of(trajectory)}"
