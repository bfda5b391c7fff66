"""Issue 25 item 8: no tool-call JSON a model writes raises out of the parser; each kind is an invalid call with a reason."""

from __future__ import annotations

import pytest

from deepeyes import wire
from deepeyes.tool_specs import ToolArgumentError, read_call
from deepeyes.wire import parse_turn


def zoom(box: str) -> str:
    return wire.think("look") + f'<tool_call>\n{{"name": "image_zoom_in_tool", "arguments": {{"bbox_2d": {box}}}}}\n</tool_call>'


DEEP = "[" * 50_000 + "]" * 50_000


@pytest.mark.parametrize(
    ("box", "reason_part"),
    [
        ("[NaN, 0, 10, 10]", "NaN is not a JSON number"),  # was ValueError out of round()
        ("[1e309, 0, 10, 10]", "1e309 is out of range"),  # was OverflowError (float infinity)
        (DEEP, "nested too deeply"),  # was RecursionError out of json.loads
        ("[-Infinity, 0, 10, 10]", "-Infinity is not a JSON number"),
        ("[" + "9" * 5000 + ", 0, 10, 10]", "5000-digit integer is too long"),  # Python's reader: ValueError past 4300 digits
        ("[1e308, 0, 10, 10]", "finite pixel coordinates"),  # finite, but no pixel
        ("[" + "9" * 99 + ", 0, 10, 10]", "finite pixel coordinates"),  # an int past float range
    ],
)
def test_each_kind_of_malformed_number_is_an_invalid_call(box: str, reason_part: str) -> None:
    parsed = parse_turn(zoom(box))
    assert parsed.action.kind == "invalid" and reason_part in (parsed.action.reason or "")
    assert parsed.violations == []  # a well-formed turn whose call is wrong: an invalid call, not a format fault


def test_a_sane_box_still_reads() -> None:
    action = parse_turn(zoom("[1.6, 0, 10, 10]")).action
    assert (action.kind, action.content) == ("image_zoom_in_tool", '{"bbox_2d": [2, 0, 10, 10], "label": ""}')


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 10**400])
def test_the_spec_refuses_non_finite_coordinates_from_any_caller(value: float) -> None:
    with pytest.raises(ToolArgumentError, match="finite pixel coordinates"):
        read_call("image_zoom_in_tool", {"bbox_2d": [value, 0, 10, 10]})
