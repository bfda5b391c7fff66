"""The turn parser (deepeyes.wire.parse): tolerant of sloppy formatting, strict where a wrong guess would run the wrong tool."""

from __future__ import annotations

import pytest

from deepeyes import wire
from deepeyes.wire import parse_action, parse_turn


def test_round_trip_of_every_rendered_action() -> None:
    assert parse_action(wire.think("t") + wire.code_action("print(1)")).content == "print(1)"
    search = parse_action(wire.think("t") + wire.text_search_action("Velmora founded"))
    assert (search.kind, search.content) == ("search", "Velmora founded")
    assert parse_action(wire.think("t") + wire.image_search_action()).kind == "image_search"
    answer = parse_action(wire.think("t") + wire.answer_action("42") + "<|im_end|>")
    assert (answer.kind, answer.content) == ("answer", "42")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("<code>\n```\nx = 1\n```\n</code>", "x = 1"),  # no language tag
        ("<code>```py\nx = 2```</code>", "x = 2"),
        ("<code>\n  ```python\nx = 3\n```   \n</code>", "x = 3"),
        ("<code>\nx = 4\n</code>", "x = 4"),  # no fence at all
        ("<code>```python\na=1\n```</code> then <code>```python\nb=2\n```</code>", "a=1"),  # the first block is the action
    ],
)
def test_tolerant_code_parsing(text: str, code: str) -> None:
    action = parse_action(text)
    assert (action.kind, action.content) == ("code", code)


def test_several_blocks_take_the_first_one_and_are_a_violation() -> None:
    # Generation stops at the first </code>: the parser reads the turn as the stop would have cut it.
    parsed = parse_turn("<code>```python\nprint(1)\n```</code> <answer>7</answer>")
    assert (parsed.action.kind, parsed.violations) == ("code", ["multiple_actions"])
    parsed = parse_turn("<answer>7</answer>" + wire.code_action("print(1)"))
    assert (parsed.action.kind, parsed.action.content, parsed.violations) == ("answer", "7", ["multiple_actions"])


def test_text_after_the_action_is_ignored_and_flagged() -> None:
    parsed = parse_turn(wire.answer_action("7") + " I hope that helps")
    assert (parsed.action.content, parsed.violations) == ("7", ["text_after_action"])


def test_tags_inside_thinking_are_text() -> None:
    parsed = parse_turn("<think>maybe <answer>3</answer> or <code>x</code></think>" + wire.answer_action("4"))
    assert (parsed.action.content, parsed.violations) == ("4", [])


def test_answer_left_open_at_end_of_turn_is_accepted_with_a_violation() -> None:
    parsed = parse_turn("<think>x</think><answer> Paris " + wire.IM_END)
    assert (parsed.action.kind, parsed.action.content, parsed.violations) == ("answer", "Paris", ["unbalanced_answer"])


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("just words", "No action found"),
        ('<tool_call>\n{"name": "search", "arguments": {"query": }\n</tool_call>', "not valid JSON"),
        ('<tool_call>\n{"name": "calculator", "arguments": {}}\n</tool_call>', "Unknown tool 'calculator'"),
        ('<tool_call>\n{"name": "image_search", "arguments": {"query": "x"}}\n</tool_call>', "takes no arguments"),
        ('<tool_call>\n{"name": "search", "arguments": {"query": "  "}}\n</tool_call>', "non-empty"),
        ('<tool_call>\n{"name": "search"}\n</tool_call>', "non-empty"),
        ("<tool_call>\n[1, 2]\n</tool_call>", '"name" field'),
        ("<code>\n```python\nprint(1)\n```\n", "not closed"),
        ("<code>\n```python\n```\n</code>", "no Python code"),
        ("<answer>  </answer>", "empty"),
    ],
)
def test_strict_rejections_carry_a_reason(text: str, reason_part: str) -> None:
    action = parse_action(text)
    assert action.kind == "invalid"
    assert reason_part in (action.reason or "")


def test_overlong_query_rejected() -> None:
    action = parse_action(wire.text_search_action("q" * 600))
    assert action.kind == "invalid" and "longer than" in (action.reason or "")
