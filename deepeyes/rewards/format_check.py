"""Format checks on each assistant turn's text (DESIGN §4 wire format).

A turn is well formed when its ``<think>`` tags are balanced and in order and, outside
the thinking, it holds exactly one complete action (``<code>``, ``<tool_call>`` or
``<answer>``) with nothing after an answer. Violations are returned as data so the reward
details can say exactly what was wrong, turn by turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deepeyes import wire

_ACTION_TAGS: dict[str, tuple[str, str]] = {
    "code": (wire.CODE_OPEN, wire.CODE_CLOSE),
    "tool_call": (wire.TOOL_CALL_OPEN, wire.TOOL_CALL_CLOSE),
    "answer": (wire.ANSWER_OPEN, wire.ANSWER_CLOSE),
}
_THINK_BLOCK_RE = re.compile(re.escape(wire.THINK_OPEN) + r".*?" + re.escape(wire.THINK_CLOSE), re.DOTALL)
_END_MARKERS = (wire.IM_END, "<|endoftext|>")


@dataclass(frozen=True)
class FormatViolation:
    turn: int
    kind: str  # unbalanced_think | unbalanced_<action> | no_action | multiple_actions | text_after_answer | answer_too_long

    def to_dict(self) -> dict[str, object]:
        return {"turn": self.turn, "kind": self.kind}


def _think_is_balanced(text: str) -> bool:
    depth = 0
    for match in re.finditer(re.escape(wire.THINK_OPEN) + "|" + re.escape(wire.THINK_CLOSE), text):
        depth += 1 if match.group() == wire.THINK_OPEN else -1
        if depth not in (0, 1):  # a close before its open, or a nested open
            return False
    return depth == 0


def check_turn(index: int, text: str) -> list[FormatViolation]:
    """Violations in one assistant turn (``index`` is only used to label them)."""
    violations: list[FormatViolation] = []
    if not _think_is_balanced(text):
        violations.append(FormatViolation(index, "unbalanced_think"))
    # Tags the model mentions while thinking are not actions.
    outside_think = _THINK_BLOCK_RE.sub("", text)
    for marker in _END_MARKERS:
        outside_think = outside_think.replace(marker, "")
    actions = 0
    for name, (open_tag, close_tag) in _ACTION_TAGS.items():
        opens, closes = outside_think.count(open_tag), outside_think.count(close_tag)
        if opens != closes:
            violations.append(FormatViolation(index, f"unbalanced_{name}"))
        actions += opens
    if actions == 0:
        violations.append(FormatViolation(index, "no_action"))
    elif actions > 1:
        violations.append(FormatViolation(index, "multiple_actions"))
    _, closed, after_answer = outside_think.rpartition(wire.ANSWER_CLOSE)
    if closed and after_answer.strip():
        violations.append(FormatViolation(index, "text_after_answer"))
    return violations


def check_turns(turn_texts: list[str]) -> list[FormatViolation]:
    """Violations across all assistant turns, in turn order."""
    return [v for index, text in enumerate(turn_texts) for v in check_turn(index, text)]


def format_score(violation_count: int, penalty: float) -> float:
    """1 for a clean output, minus ``penalty`` per violation, never below 0."""
    return max(0.0, 1.0 - penalty * violation_count)
