"""The grammar reads hostile text in linear time and gives what its regex definitions give (issue 30, item 10).

The old readers were ``re.sub(r"<think>.*?</think>")`` and ``_OBSERVATION_RE.finditer``; both
scan to the end of the text from every opening that never closes. The new readers must give
exactly the regexes' results, so each is compared with its regex on many random texts built
from the tags; the quoted input (10,000 unmatched ``<think>``) is checked for its result, and
a size where a quadratic reader would take minutes is read within a generous bound.
"""

from __future__ import annotations

import random
import re
import time

import pytest

from deepeyes import wire
from deepeyes.wire.parse import outside_thinking, parse_turn
from deepeyes.wire.response import (
    _OBSERVATION_RE,
    find_observations,
    split_response,
    trajectory_from_response,
)

_THINK_BLOCK_RE = re.compile(re.escape(wire.THINK_OPEN) + r".*?" + re.escape(wire.THINK_CLOSE), re.DOTALL)
FRAGMENTS = [
    wire.THINK_OPEN, wire.THINK_CLOSE, "x", "\n", " ", wire.ANSWER_OPEN, wire.ANSWER_CLOSE,
    wire.TOOL_RESPONSE_OPEN, wire.TOOL_RESPONSE_CLOSE, "Code execution result:\nstdout:\n```\n",
    "\n```\n\nstderr:\n```\n", "\n```", "\n\n", "Images:\n", wire.IMAGE_PLACEHOLDER, "```",
]  # fmt: skip


def random_texts(count: int, seed: int = 30) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 24))) for _ in range(count)]


def test_outside_thinking_is_the_regex_substitution() -> None:
    for text in random_texts(3000):
        assert outside_thinking(text) == _THINK_BLOCK_RE.sub(" ", text), repr(text)


def test_find_observations_gives_the_regex_spans() -> None:
    for text in random_texts(3000, seed=31):
        assert find_observations(text) == [m.span() for m in _OBSERVATION_RE.finditer(text)], repr(text)


def test_ten_thousand_unmatched_think_tags() -> None:
    """The issue's input: every open tag is unclosed, so it hides nothing and the answer counts."""
    parsed = parse_turn(wire.THINK_OPEN * 10_000 + wire.answer_action("42"))
    assert (parsed.action.kind, parsed.action.content) == ("answer", "42")
    assert parsed.violations == ["unbalanced_think"]
    no_action = parse_turn(wire.THINK_OPEN * 10_000)
    assert (no_action.action.kind, no_action.violations) == ("invalid", ["unbalanced_think", "no_action"])


def test_ten_thousand_unclosed_observations_on_the_text_route() -> None:
    """Unclosed ``<tool_response>`` and code-result heads are model text, not observations."""
    for opening in (wire.TOOL_RESPONSE_OPEN + "\n", "Code execution result:\nstdout:\n```\n"):
        response = opening * 10_000 + wire.answer_action("7")
        turns = split_response(response)
        assert len(turns) == 1 and turns[0].observation is None
        trajectory = trajectory_from_response(response)
        assert (trajectory.final_answer, trajectory.stop_reason) == ("7", "answer")


@pytest.mark.parametrize("opening", [wire.THINK_OPEN, wire.TOOL_RESPONSE_OPEN])
def test_a_size_where_quadratic_would_take_minutes(opening: str) -> None:
    """40,000 unclosed tags (~0.3-0.6 MB): the old readers needed minutes; a linear one milliseconds.
    The bound is generous on purpose (a shared, loaded machine); benchmarks/hostile_inputs.py prints the figures."""
    text = opening * 40_000 + wire.answer_action("1")
    start = time.perf_counter()
    assert trajectory_from_response(text).final_answer == "1"
    assert time.perf_counter() - start < 5
