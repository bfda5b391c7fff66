"""Fitting one observation into the tokens the conversation has left.

An observation enters the next prompt whole. A long one (a print of a million digits comes
back as some 40,000 tokens even after the sandbox's character cap) would make that prompt
longer than the context the agent loop allows, a request the server rejects (vLLM answers
HTTP 400) or one past what the model was trained on. So the observation is measured before
it enters the prompt, and what does not fit is cut, with a ``[note]`` saying so, as images
are fitted: first the long text fields (stdout, stderr, a search body) to their first
characters, then, when even the bare observation does not fit, its images from the last.

Text is measured with the policy's tokenizer when it has one, else by its UTF-8 length,
an upper bound for byte-level BPE (each token covers at least one byte); an image by the
28-pixel grid cells Qwen2.5-VL turns it into, plus its two vision markers.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from deepeyes.images import QWEN_FACTOR

#: Counts the tokens of a text.
TokenCounter = Callable[[str], int]
#: Shortens one long text field of an observation (see :data:`deepeyes.tools.base.Renderer`).
Clip = Callable[[str], str]
#: Qwen2.5-VL's processor makes an image at least this many grid cells (``min_pixels`` 3136).
MIN_IMAGE_CELLS = 4


def keep_all(text: str) -> str:
    """The clip of an observation that fits: nothing is cut."""
    return text


def utf8_length(text: str) -> int:
    """An upper bound of the tokens of ``text`` under a byte-level BPE tokenizer."""
    return len(text.encode("utf-8", errors="replace"))


_COPIES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_COPIES_LOCK = threading.Lock()


def tokenizer_counter(tokenizer: Any) -> TokenCounter:
    """Exact counts with a Hugging Face fast tokenizer, :func:`utf8_length` for any other.

    Counting uses a private copy of the tokenizer's Rust backend (made once per tokenizer):
    the policy's own is not re-entrant ("Already borrowed" when one thread encodes while
    another sets its padding), and trajectories run on many threads.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return utf8_length
    with _COPIES_LOCK:
        copy = _COPIES.get(tokenizer)
        if copy is None:
            copy = type(backend).from_str(backend.to_str())
            copy.no_padding()
            copy.no_truncation()
            _COPIES[tokenizer] = copy
    return lambda text: len(copy.encode(text, add_special_tokens=False).ids)


def image_tokens(image: Image.Image) -> int:
    """At most the tokens Qwen2.5-VL spends on ``image``: its 28-px cells (the processor rounds
    each side to the grid, never up past a whole cell) and the vision start and end markers."""
    cells = math.ceil(image.width / QWEN_FACTOR) * math.ceil(image.height / QWEN_FACTOR)
    return max(cells, MIN_IMAGE_CELLS) + 2


@dataclass(frozen=True)
class ObservationBudget:
    """How many tokens the next observation may take, and how to count them."""

    max_tokens: int
    count: TokenCounter = utf8_length


@dataclass
class FittedObservation:
    """An observation's text, which images stay (positions in the list given), and its tokens."""

    text: str
    kept: list[int]
    tokens: int


#: Renders an observation from the positions of the images it keeps, its notes and the clip.
Render = Callable[[list[int], list[str], Clip], str]


def fit_observation(render: Render, images: list[Image.Image], notes: list[str], budget: ObservationBudget) -> FittedObservation:
    """The observation cut to ``budget.max_tokens`` if it must be (see the module docstring).

    When even the bare observation (every long field empty, no image) is over the budget it
    is returned so, with its token count: the caller must not send it.
    """
    costs = [image_tokens(image) for image in images]

    def measure(kept: list[int], notes_: list[str], clip: Clip) -> FittedObservation:
        text = render(kept, notes_, clip)
        return FittedObservation(text, kept, budget.count(text) + sum(costs[i] for i in kept))

    whole = measure(list(range(len(images))), notes, keep_all)
    room = budget.max_tokens
    if whole.tokens <= room:
        return whole

    def clipped(kept: list[int], extra: list[str], chars: int) -> FittedObservation:
        note = f"output cut to its first {chars} characters to fit the {room} tokens left in the context"
        return measure(kept, [*notes, *extra, note], lambda text: text[:chars])

    kept = list(whole.kept)
    while kept and clipped(kept, [], 0).tokens > room:
        kept.pop()
    extra = []
    if len(kept) < len(images):
        cost = sum(costs[len(kept) :])
        extra.append(f"the last {len(images) - len(kept)} image(s) dropped: their {cost} tokens do not fit the {room} tokens left in the context")
        whole = measure(kept, [*notes, *extra], keep_all)
        if whole.tokens <= room:
            return whole
    low, high = 0, max(map(len, _long_fields(render, kept)))
    best = clipped(kept, extra, 0)
    while low < high:  # the most characters that still fit
        middle = (low + high + 1) // 2
        candidate = clipped(kept, extra, middle)
        if candidate.tokens <= room:
            low, best = middle, candidate
        else:
            high = middle - 1
    return best


def _long_fields(render: Render, kept: list[int]) -> list[str]:
    """The text fields ``render`` clips (recorded through a clip that keeps them whole)."""
    seen: list[str] = [""]

    def record(text: str) -> str:
        seen.append(text)
        return text

    render(kept, [], record)
    return seen
