"""Task generators: each builds one :class:`~deepeyes.data.synth.sample.TaskSample`.

Every task is chosen so that its tool genuinely helps: counting and chart reading are
computed from pixels, tiny text needs a zoom, long arithmetic needs code, facts about
fictional entities live only in the local corpus, and landmark names only in the
image-search cache. ``no_tool`` questions are easy enough to answer at a glance.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from deepeyes.data.synth.sample import TaskSample
from deepeyes.data.synth.tasks import (
    arithmetic,
    chart,
    counting,
    grounding,
    image_search,
    no_tool,
    small_text,
    text_search,
)
from deepeyes.data.synth.tasks.context import TaskContext

TaskBuilder = Callable[[random.Random, TaskContext], TaskSample]

BUILDERS: dict[str, TaskBuilder] = {
    "counting": counting.build,
    "chart": chart.build,
    "small_text": small_text.build,
    "arithmetic": arithmetic.build,
    "no_tool": no_tool.build,
    "text_search": text_search.build,
    "image_search": image_search.build,
    "grounding": grounding.build,
}

__all__ = ["BUILDERS", "TaskBuilder", "TaskContext"]
