"""The thinking of a turn is read by the wire package, for every view that shows it (demo, service)."""

from __future__ import annotations

import pytest

from deepeyes import wire


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{wire.THINK_OPEN}count the dots{wire.THINK_CLOSE}{wire.answer_action('3')}", "count the dots"),
        (f"{wire.THINK_OPEN}\nstill thinking", "still thinking"),  # unclosed: runs to the end
        (f"{wire.THINK_OPEN}done{wire.THINK_CLOSE}{wire.IM_END}", "done"),
        (wire.answer_action("3"), None),
    ],
)
def test_thinking_of_a_turn(text: str, expected: str | None) -> None:
    assert wire.thinking(text) == expected
