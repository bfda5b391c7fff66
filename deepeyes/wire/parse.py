"""Reading one model turn: exactly one action, plus the format violations it shows.

This module is the written grammar policy (docs/wire.md repeats it for readers). The same
rules hold in generation stops, this parser, the loss mask and the reward, on every route
(agent loop, local RL engine, verl, evaluation, reward server, text-only callers):

1. **End of turn.** ``<|im_end|>`` / ``<|endoftext|>`` end a turn; they and anything after
   them are not part of it.
2. **Thinking.** A closed ``<think>…</think>`` is thought: tags written inside it are text,
   never actions. Think tags out of order or left open are the violation
   ``unbalanced_think``; an unclosed ``<think>`` hides nothing (the action after it still counts).
3. **The action is the first action block** (``<code>``, ``<tool_call>`` or ``<answer>``)
   outside thinking. Generation stops right after the first ``</code>`` / ``</tool_call>``
   (``wire.STOP_STRINGS``) because the tool runs next, so the parser reads a turn the way
   the stop would have cut it: whatever follows the first block is never run, never
   answered and never counted as a tool call.
4. **After the first block.** Another action block there is the violation
   ``multiple_actions``; other non-blank text is ``text_after_action``. (A policy that
   honours the stops can only produce these after an ``<answer>``, where it stops at
   ``<|im_end|>`` instead.)
5. **An unclosed final answer counts.** ``<answer>42<|im_end|>`` (or ``<answer>42`` cut by
   the token limit) answers ``42``, with the violation ``unbalanced_answer``: the turn has
   ended, so the answer cannot be read differently. An unclosed ``<code>`` /
   ``<tool_call>`` is not run (truncated code or JSON is not what the model meant): the
   action is invalid and the violation ``unbalanced_code`` / ``unbalanced_tool_call``.
   A closing action tag with no opening before it is ``unbalanced_<tag>`` too.
6. **An empty answer is invalid**: ``<answer></answer>`` (blank inside) is an invalid
   action, like a malformed tool call, not an answer.
7. **No action** at all is an invalid action and the violation ``no_action``.
8. **Tool-call JSON is strict**: ``NaN``, infinities, numbers past float range, integers past
   :data:`MAX_INT_DIGITS` digits and nesting too deep to read make an invalid call (with a
   reason), never an exception: no model output may crash a rollout or a reward.
9. **A turn cut at the token limit** is read by the rules above; when it would end the run
   (an answer, a no-tool run's turn) the run ends with ``stop_reason`` ``length``, not
   ``answer``, and :func:`final_answer` says what the run answered, for the agent loop and the
   text route alike.

Invalid actions (bad JSON, unknown tool, bad arguments, empty answer, unclosed call) carry
a reason worded for the model: the agent loop sends it back as the observation, and the
reward counts the turn as an invalid call. The loss mask trains on every token the model
wrote, including text this parser ignores, so the format penalty reaches those tokens.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from deepeyes.tool_specs import CALL_NAMES, ToolArgumentError, read_call
from deepeyes.trajectory import Action, StopReason
from deepeyes.wire.render import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    CODE_CLOSE,
    CODE_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
)
from deepeyes.wire.tokens import trim_end_of_turn

#: Tag name → (opening, closing) of the three action blocks.
ACTION_TAGS: dict[str, tuple[str, str]] = {
    "code": (CODE_OPEN, CODE_CLOSE),
    "tool_call": (TOOL_CALL_OPEN, TOOL_CALL_CLOSE),
    "answer": (ANSWER_OPEN, ANSWER_CLOSE),
}
_TAG_BY_STRING = {tag: (name, opening) for name, (o, c) in ACTION_TAGS.items() for tag, opening in ((o, True), (c, False))}
_ACTION_TAG_RE = re.compile("|".join(re.escape(t) for t in _TAG_BY_STRING))
_THINK_TAG_RE = re.compile(re.escape(THINK_OPEN) + "|" + re.escape(THINK_CLOSE))
_UNCLOSED_THINK_RE = re.compile(re.escape(THINK_OPEN) + r".*?(?:" + re.escape(THINK_CLOSE) + r"|$)", re.DOTALL)
#: Longer integers in a tool call are refused (Python's own limit is 4,300 digits, then ValueError).
MAX_INT_DIGITS = 100
_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n?(?P<code>.*?)(?:```|$)", re.DOTALL)

#: Every violation kind :func:`parse_turn` finds (what a trajectory's turn records; the
#: reward adds ``answer_too_long``, as only it knows the length cap).
TURN_VIOLATIONS: tuple[str, ...] = (
    "unbalanced_think",
    *(f"unbalanced_{name}" for name in ACTION_TAGS),
    "no_action",
    "multiple_actions",
    "text_after_action",
)


@dataclass(frozen=True)
class FormatViolation:
    turn: int
    kind: str  # one of TURN_VIOLATIONS, or the reward's answer_too_long

    def to_dict(self) -> dict[str, object]:
        return {"turn": self.turn, "kind": self.kind}


@dataclass
class ParsedTurn:
    """One turn read under the policy above: its action and its violation kinds, in order."""

    action: Action
    violations: list[str] = field(default_factory=list)


def _think_is_balanced(text: str) -> bool:
    depth = 0
    for match in _THINK_TAG_RE.finditer(text):
        depth += 1 if match.group() == THINK_OPEN else -1
        if depth not in (0, 1):  # a close before its open, or a nested open
            return False
    return depth == 0


def outside_thinking(text: str) -> str:
    """``text`` with every closed ``<think>…</think>`` block replaced by one space, in linear time.

    Each block runs from a ``<think>`` to the first ``</think>`` after it; an open tag with no
    close after it hides nothing. This is what ``re.sub(r"<think>.*?</think>", " ", text,
    flags=re.DOTALL)`` gives, without that regex's cost: it scans to the end of the text from
    every unclosed ``<think>``, so 10,000 of them took seconds (issue 30, item 10). Here every
    character is read a bounded number of times.
    """
    pieces: list[str] = []
    position = 0
    while (opening := text.find(THINK_OPEN, position)) != -1:
        closing = text.find(THINK_CLOSE, opening + len(THINK_OPEN))
        if closing == -1:  # no close after this open, so none after any later open either
            break
        pieces.append(text[position:opening])
        pieces.append(" ")
        position = closing + len(THINK_CLOSE)
    pieces.append(text[position:])
    return "".join(pieces)


def parse_turn(text: str) -> ParsedTurn:
    """Read one assistant turn (stop string included, end-of-turn token optional), in time linear in its length."""
    body = trim_end_of_turn(text)
    violations: list[str] = [] if _think_is_balanced(body) else ["unbalanced_think"]
    outside = outside_thinking(body)
    first: tuple[str, str, bool] | None = None  # (tag name, content, closed)
    rest = ""
    position = 0
    while first is None:
        match = _ACTION_TAG_RE.search(outside, position)
        if match is None:
            break
        name, opening = _TAG_BY_STRING[match.group()]
        if not opening:
            violations.append(f"unbalanced_{name}")
            position = match.end()
            continue
        close = outside.find(ACTION_TAGS[name][1], match.end())
        if close == -1:
            first = (name, outside[match.end() :], False)
        else:
            first = (name, outside[match.end() : close], True)
            rest = outside[close + len(ACTION_TAGS[name][1]) :]
    if first is None:
        violations.append("no_action")
        return ParsedTurn(
            Action(
                "invalid",
                reason=f"No action found: end your reply with one {CODE_OPEN}…{CODE_CLOSE}, "
                f"{TOOL_CALL_OPEN}…{TOOL_CALL_CLOSE} or {ANSWER_OPEN}…{ANSWER_CLOSE} block.",
            ),
            violations,
        )
    name, content, closed = first
    if not closed:
        violations.append(f"unbalanced_{name}")
    if any(_TAG_BY_STRING[m.group()][1] for m in _ACTION_TAG_RE.finditer(rest)):
        violations.append("multiple_actions")
    elif rest.strip():
        violations.append("text_after_action")
    if name == "answer":
        return ParsedTurn(_parse_answer(content), violations)
    if not closed:
        opening, closing = ACTION_TAGS[name]
        return ParsedTurn(Action("invalid", reason=f"The {opening} block is not closed with {closing}."), violations)
    if name == "code":
        return ParsedTurn(_parse_code(content), violations)
    return ParsedTurn(_parse_tool_call(content), violations)


def parse_action(text: str) -> Action:
    """The action of one assistant turn (see the module policy)."""
    return parse_turn(text).action


def check_turn(index: int, text: str) -> list[FormatViolation]:
    """Violations in one assistant turn (``index`` only labels them)."""
    return [FormatViolation(index, kind) for kind in parse_turn(text).violations]


def check_turns(turn_texts: list[str]) -> list[FormatViolation]:
    """Violations across all assistant turns, in turn order."""
    return [v for index, text in enumerate(turn_texts) for v in check_turn(index, text)]


def format_score(violation_count: int, penalty: float) -> float:
    """1 for a clean output, minus ``penalty`` per violation, never below 0."""
    return max(0.0, 1.0 - penalty * violation_count)


def thinking(text: str) -> str | None:
    """The turn's thinking: the first ``<think>`` block's text (an unclosed one runs to the end), or None."""
    match = _UNCLOSED_THINK_RE.search(trim_end_of_turn(text))
    if match is None:
        return None
    body = match.group(0)[len(THINK_OPEN) :]
    return body.removesuffix(THINK_CLOSE).strip()


def strip_thinking(text: str) -> str:
    """The turn without its thinking (an unclosed ``<think>`` runs to the end) and end-of-turn
    token: what a no-tool run scores as the answer when the model wrote no answer block."""
    return _UNCLOSED_THINK_RE.sub("", trim_end_of_turn(text)).strip()


def final_answer(action: Action, model_text: str, stop_reason: StopReason) -> str | None:
    """The answer of a run that ended after this turn with ``stop_reason``: one rule for the
    agent loop and the text route.

    An answer block gives its content whatever ended the run, so a turn cut at the token
    limit (``length``) keeps what it wrote, for the record and for accuracy; whether the run
    *finished* is the stop reason's to say (only ``answer`` earns completion credit). A
    no-tool run (``no_action``) without an answer block is scored on its text without the
    thinking. Anything else has no answer.
    """
    if action.kind == "answer":
        return action.content
    if stop_reason == "no_action":
        return strip_thinking(model_text) or None
    return None


def _parse_answer(content: str) -> Action:
    answer = content.strip()
    if not answer:
        return Action("invalid", reason=f"The {ANSWER_OPEN} block is empty.")
    return Action("answer", content=answer)


def _parse_code(content: str) -> Action:
    fenced = _FENCE.search(content)
    code = (fenced.group("code") if fenced else content).strip("\n")
    if not code.strip():
        return Action("invalid", reason=f"The {CODE_OPEN} block contains no Python code.")
    return Action("code", content=code)


class _NotStrictJson(ValueError):
    """A value Python's ``json`` accepts but JSON does not (or no tool could use)."""


def _no_constant(name: str) -> Any:
    raise _NotStrictJson(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotStrictJson(f"{text[:40]} is out of range for a number")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise _NotStrictJson(f"a {len(text)}-digit integer is too long")
    return int(text)


def _read_json(raw: str) -> Any:
    """``raw`` as strict JSON, or ValueError worded for the model.

    Python's reader accepts ``NaN`` / ``Infinity``, turns ``1e309`` into infinity, raises
    ValueError past 4,300 digits and RecursionError on deep nesting; a model writes all of
    these, so each becomes an invalid call here instead of an exception in a tool, the
    rollout or the reward.
    """
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at position {exc.pos}") from exc
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def _parse_tool_call(content: str) -> Action:
    raw = content.strip()
    try:
        call = _read_json(raw)
    except ValueError as exc:
        return Action("invalid", content=raw, reason=f"The tool call is not valid JSON ({exc}).")
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return Action("invalid", content=raw, reason='The tool call must be a JSON object with a "name" field.')
    try:
        read = read_call(call["name"], call.get("arguments"))
    except ToolArgumentError as exc:
        return Action("invalid", content=raw, reason=str(exc))
    if read is None:
        return Action(
            "invalid",
            content=raw,
            reason=f"Unknown tool '{call['name']}'. Available tools: {', '.join(CALL_NAMES)}; run code with {CODE_OPEN}.",
        )
    kind, argument = read
    return Action(kind, content=argument)
