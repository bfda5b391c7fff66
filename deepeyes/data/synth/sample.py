"""The in-memory shape of one generated question before it is written in any format.

A task builds a :class:`TaskSample`: the image, the question and its ground truth, and a
*plan* of tool steps (thought + tool input). Running the plan (executing the code, querying
the corpus, looking up the image-search cache) turns it into a recorded trajectory; the
final thought is written only after the observations exist, because it cites them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

ToolName = Literal["code_execution", "text_search", "image_search"]
#: The registry's action kind for each seed tool name (the names trajectories count calls by).
TOOL_KIND: dict[str, str] = {"code_execution": "code", "text_search": "search", "image_search": "image_search"}
#: One value in this many belongs to the held-out side.
HELDOUT_ONE_IN = 4


@dataclass
class Observation:
    """What one tool step returned: text plus images (PNG bytes) shown back to the model."""

    text: str
    images: list[bytes] = field(default_factory=list)
    #: Text-search results as ``{title, link, snippet, date}`` dicts (empty for other tools).
    results: list[dict] = field(default_factory=list)
    stderr: str = ""


@dataclass
class ToolStep:
    tool: ToolName
    thought: str
    #: Code for ``code_execution``, the query for ``text_search``, empty for ``image_search``.
    input: str
    #: For code: the exact stdout the generator expects; a mismatch aborts generation,
    #: which is what proves the code really computes the answer from the image.
    expected_stdout: str | None = None


@dataclass
class ImageSearchEntry:
    """One MMSearch-R1 cache entry: result titles and their thumbnails, in rank order."""

    titles: list[str]
    thumbnails: list[Image.Image]
    gold_title: str


@dataclass
class TextSearchTarget:
    query: str
    gold_link: str


FinalThought = Callable[[list[Observation]], str]


@dataclass
class TaskSample:
    task: str
    question: str
    answer: str
    image: Image.Image
    steps: list[ToolStep]
    final_thought: FinalThought
    #: Wrong but plausible answers; evaluation turns some rows into A-D multiple choice.
    distractors: list[str] = field(default_factory=list)
    text_search: TextSearchTarget | None = None
    image_search: ImageSearchEntry | None = None

    @property
    def required_tools(self) -> list[str]:
        """The tool kinds (``code``, ``search``, ``image_search``) this task needs, in plan order;
        empty for a question answerable from its own text. Behaviour analysis compares the
        kinds a model called with these to score tool choice."""
        return list(dict.fromkeys(TOOL_KIND[step.tool] for step in self.steps))


def derived_rng(seed: int, *parts: object) -> random.Random:
    """An RNG that depends only on the seed and the parts, so samples don't shift each other."""
    digest = hashlib.sha256("/".join(map(str, (seed, *parts))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def is_heldout_value(*key: object) -> bool:
    """Which side of the train / held-out partition a task's defining values fall on.

    A stable hash of ``key`` (e.g. the operands of a sum, the colour and count of a counting
    question) puts one value in :data:`HELDOUT_ONE_IN` on the held-out side, so held-out
    questions never repeat a training question's values and accuracy measures generalisation.
    """
    digest = hashlib.sha256(repr(key).encode()).digest()
    return int.from_bytes(digest[:4], "big") % HELDOUT_ONE_IN == 0


def draw_on_side(rng: random.Random, heldout: bool, draw: Callable[[random.Random], tuple]) -> tuple:
    """Call ``draw`` until its values fall on the requested side of the partition."""
    for _ in range(10_000):
        values = draw(rng)
        if is_heldout_value(*values) == heldout:
            return values
    raise SynthError("no values on the requested side of the train/held-out partition after 10000 draws")


def numeric_distractors(value: int, offsets: tuple[int, ...], count: int = 3) -> list[str]:
    """The first ``count`` distinct non-negative wrong answers ``value + offset``."""
    wrong: list[str] = []
    for offset in offsets:
        candidate = value + offset
        if candidate >= 0 and candidate != value and str(candidate) not in wrong:
            wrong.append(str(candidate))
    return wrong[:count]


class SynthError(RuntimeError):
    """A generated sample failed its own check (code output, search result, answer)."""


@dataclass(frozen=True)
class Planned:
    """One sample the generator will write: its split, its index there (the id) and its task."""

    split: str
    index: int
    task: str

    @property
    def sample_id(self) -> str:
        return f"{self.split}-{self.index:05d}"
