"""How each benchmark is asked and scored: question template kind, answer type, reward tweaks.

VLMEvalKit TSVs share columns but not conventions: VStar and HR-Bench are multiple choice
with A–D columns, ChartQA is short answer graded with a 5 % numeric tolerance ("relaxed
accuracy"), MathVista mixes multiple choice and free-form rows described by its own
``question_type``/``answer_type`` columns. A profile records those differences in one
place; a TSV whose name has no profile is read with ``kind="auto"`` (rows with option
columns are multiple choice, the others short answer), which is also how the bundled mini
benchmarks are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from deepeyes.rewards.grounding import is_grounding_source

#: ``auto``: per row — multiple choice when option columns are filled, else short answer.
#: ``mcq``: every row is multiple choice. ``vqa``: short answer (text or number, inferred).
#: ``numeric``: the answer is a number. ``mathvista``: per row, from MathVista's own columns.
#: ``box``: referring-expression grounding, the answer a box graded by IoU (deepeyes.rewards.grounding).
DatasetKind = Literal["auto", "mcq", "vqa", "numeric", "mathvista", "box"]


@dataclass(frozen=True)
class DatasetProfile:
    kind: DatasetKind = "auto"
    #: Column that groups rows for per-category metrics (missing column → one category "all").
    category_column: str = "category"
    #: ``RewardConfig`` fields overridden for this benchmark's official grading rule.
    reward_overrides: dict[str, Any] = field(default_factory=dict)


#: ChartQA's relaxed accuracy: numbers within 5 %, integers included.
_RELAXED_NUMERIC = {"numeric_rel_tol": 0.05, "integer_exact": False}

PROFILES: dict[str, DatasetProfile] = {
    "DeepEyesMini_Visual": DatasetProfile("auto"),
    "DeepEyesMini_Search": DatasetProfile("auto"),
    "VStarBench": DatasetProfile("mcq"),
    "HRBench4K": DatasetProfile("mcq"),
    "HRBench8K": DatasetProfile("mcq"),
    "MME-RealWorld": DatasetProfile("mcq"),
    "MME-RealWorld-Lite": DatasetProfile("mcq"),
    "MME-RealWorld-CN": DatasetProfile("mcq"),
    "ChartQA_TEST": DatasetProfile("vqa", reward_overrides=_RELAXED_NUMERIC),
    "MathVista_MINI": DatasetProfile("mathvista", category_column="task"),
    "DeepEyesMini_Grounding": DatasetProfile("box"),
}


def profile_for(dataset: str) -> DatasetProfile:
    """The profile registered for ``dataset``; a grounding data set's name (``refcoco_val``, …:
    :func:`~deepeyes.rewards.grounding.is_grounding_source`) gets box answers; else auto-detecting."""
    if dataset not in PROFILES and is_grounding_source(dataset):
        return DatasetProfile("box")
    return PROFILES.get(dataset, DatasetProfile())
