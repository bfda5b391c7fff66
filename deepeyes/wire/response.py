"""The text route: a whole decoded response read back into a trajectory.

Foreign callers (``score_response``, ``POST /score {"response"}``, a verl hook handed only
``solution_str``) have text, not a :class:`~deepeyes.trajectory.Trajectory`. This module
rebuilds one from the text with the same turn parser and the same call counting as the
agent loop, so the reward sees the same record either way. The turns are found at the
observations (a model turn ends where a tool's user turn begins), never at a closing tag,
so a turn holding two action blocks stays one turn (policy in :mod:`deepeyes.wire.parse`).
A turn's text is kept as the model wrote it, end-of-turn tokens and what follows them
included (only the chat template's own closing marker goes): the parser applies the
end-of-turn rule, once, to the same text the agent loop parsed, so the violations both
routes record come from one parse.

What the text cannot show is read from the observation: a code call failed when its
stderr holds anything other than tool notes (``[note] …`` lines); a ``<tool_response>``
call failed when its body is an ``Error (kind): …`` line, and was refused (not run) when
that kind is ``tool disabled`` or ``budget``. The agent loop's status comes from the
tool itself, so the two agree except for a code run that succeeded while writing to
stderr (a warning), which the text route counts as failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deepeyes.tool_specs import REFUSED_STATUSES, TOOL_NAMES, ObservationStatus
from deepeyes.trajectory import Observation, StopReason, Trajectory, Turn
from deepeyes.wire.parse import final_answer, parse_turn
from deepeyes.wire.render import (
    ERROR_BUDGET,
    ERROR_DISABLED,
    IMAGE_PLACEHOLDER,
    NOTE_PREFIX,
    TOOL_RESPONSE_CLOSE,
    TOOL_RESPONSE_OPEN,
)
from deepeyes.wire.tokens import (
    ASSISTANT_HEADER,
    END_OF_TURN,
    IM_END,
    IM_START,
    remove_end_of_turn,
    trim_end_of_turn,
)

_CODE_OBSERVATION = (
    r"Code execution result:\nstdout:\n```\n.*?\n```\n\nstderr:\n```\n(?P<stderr>.*?)\n```"
    r"(?:\n\n(?:Images:\n(?:" + re.escape(IMAGE_PLACEHOLDER) + r")*)?)?"
)
_TOOL_RESPONSE = re.escape(TOOL_RESPONSE_OPEN) + r"\n?(?P<body>.*?)\n?" + re.escape(TOOL_RESPONSE_CLOSE)
_OBSERVATION_RE = re.compile(rf"(?P<code>{_CODE_OBSERVATION})|(?P<response>{_TOOL_RESPONSE})", re.DOTALL)
_ERROR_RE = re.compile(r"\AError \((?P<kind>[^)]*)\):")
# The literal pieces of the two observation shapes above, for the linear scan in find_observations.
_CODE_HEAD = "Code execution result:\nstdout:\n```\n"
_CODE_STDERR = "\n```\n\nstderr:\n```\n"
_CODE_END = "\n```"
_IMAGES_HEAD = "Images:\n"
#: verl decodes with ``skip_special_tokens``: the turn headers' role words stay around observations.
_ROLE_BEFORE_RE = re.compile(r"\n?user\n?\Z")
_ROLE_AFTER_RE = re.compile(r"\A\n?assistant\n")


@dataclass
class ResponseTurn:
    """One model turn of a response (as the model wrote it) and the observation that followed it, if any."""

    model_text: str
    observation: str | None = None


def split_response(response: str) -> list[ResponseTurn]:
    """The model turns of a decoded multi-turn response, each with its observation.

    With chat-template markers (``<|im_start|>role``) roles decide: assistant blocks are
    turns, a user block after a turn is its observation, anything before the first
    assistant turn is prompt. Text before the first marker, even a blank turn and its
    closing token alone, is an assistant turn (verl's response starts inside one); a
    response that opens with a marker (a whole conversation) has none. Without markers the
    observations are found by their wire shapes. An empty response is one empty turn.
    """
    if IM_START in response:
        head, *blocks = response.split(IM_START)
        turns = [ResponseTurn(_without_closing(head))] if head else []
        for block in blocks:
            role, _, body = block.partition("\n")
            if role.strip() == ASSISTANT_HEADER.strip():
                turns.append(ResponseTurn(_without_closing(body)))
            elif role.strip() == "user" and turns and turns[-1].observation is None:
                turns[-1].observation = remove_end_of_turn(body).strip("\n")
        return turns or [ResponseTurn("")]
    turns: list[ResponseTurn] = []
    position = 0
    for start, end in find_observations(response):
        text = _ROLE_BEFORE_RE.sub("", response[position:start])
        if position:
            text = _ROLE_AFTER_RE.sub("", text)
        turns.append(ResponseTurn(text, response[start:end]))
        position = end
    rest = response[position:]
    headed = bool(position and _ROLE_AFTER_RE.match(rest))  # a turn header: a turn, even if empty
    tail = _ROLE_AFTER_RE.sub("", rest) if position else rest
    if trim_end_of_turn(tail).strip() or headed or not turns:
        turns.append(ResponseTurn(tail))
    return turns


def _code_observation_end(text: str, start: int) -> int:
    """End of the code observation opening at ``start`` (its head is there), or -1 when it never closes."""
    stderr = text.find(_CODE_STDERR, start + len(_CODE_HEAD))
    if stderr == -1:
        return -1
    end = text.find(_CODE_END, stderr + len(_CODE_STDERR))
    if end == -1:
        return -1
    end += len(_CODE_END)
    if text.startswith("\n\n", end):
        end += 2
        if text.startswith(_IMAGES_HEAD, end):
            end += len(_IMAGES_HEAD)
            while text.startswith(IMAGE_PLACEHOLDER, end):
                end += len(IMAGE_PLACEHOLDER)
    return end


def _tool_response_end(text: str, start: int) -> int:
    """End of the ``<tool_response>`` block opening at ``start``, or -1 when it never closes."""
    close = text.find(TOOL_RESPONSE_CLOSE, start + len(TOOL_RESPONSE_OPEN))
    return -1 if close == -1 else close + len(TOOL_RESPONSE_CLOSE)


def find_observations(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every observation in ``text``, left to right, without overlaps.

    The spans ``_OBSERVATION_RE.finditer`` gives, found in linear time: that regex's lazy
    ``.*?`` scans to the end of the text from every opening that never closes, so 10,000
    unclosed ``<tool_response>`` tags took minutes (issue 30, item 10). An opening with no
    close after it means no later opening of that kind closes either, so each kind is
    given up at its first failure, and the next opening of each kind is looked up once.
    """
    spans: list[tuple[int, int]] = []
    position = 0
    heads = {_CODE_HEAD: _code_observation_end, TOOL_RESPONSE_OPEN: _tool_response_end}
    upcoming = {head: text.find(head) for head in heads}  # -1: no (further) closed block of that kind
    while True:
        for head in heads:
            if upcoming[head] != -1 and upcoming[head] < position:
                upcoming[head] = text.find(head, position)
        live = [head for head in heads if upcoming[head] != -1]
        if not live:
            return spans
        head = min(live, key=upcoming.__getitem__)
        start = upcoming[head]
        end = heads[head](text, start)
        if end == -1:
            upcoming[head] = -1
            continue
        spans.append((start, end))
        position = end


def _without_closing(block: str) -> str:
    """A chat-template block without the end-of-turn token (and newline) the template closes it with."""
    block = block.removesuffix("\n")
    for marker in END_OF_TURN:
        if block.endswith(marker):
            return block[: -len(marker)]
    return block


def observation_status(text: str) -> ObservationStatus:
    """The status a tool observation shows (see the module docstring for the rules)."""
    match = _OBSERVATION_RE.match(text.lstrip("\n"))
    if match is None:
        return "error"
    if match.group("code") is not None:
        stderr = [line for line in match.group("stderr").splitlines() if line.strip() and not line.startswith(NOTE_PREFIX)]
        return "error" if stderr else "success"
    error = _ERROR_RE.match(match.group("body").strip())
    if error is None:
        return "success"
    return {ERROR_DISABLED: "disabled", ERROR_BUDGET: "budget_exceeded"}.get(error.group("kind"), "error")  # type: ignore[return-value]


def render_response(trajectory: Trajectory, chat_markers: bool = True) -> str:
    """A trajectory's turns and observations as one decoded response (what verl decodes).

    ``chat_markers``: with the chat template's ``<|im_start|>role`` / ``<|im_end|>``
    markers, or as verl decodes with ``skip_special_tokens`` (role words, no markers).
    """
    parts = []
    for index, turn in enumerate(trajectory.turns):
        if index:
            parts.append(f"{IM_START}{ASSISTANT_HEADER}" if chat_markers else f"\n{ASSISTANT_HEADER}")
        parts.append(turn.model_text)
        if turn.observation is not None:
            if chat_markers:
                parts.append(f"{IM_END}\n{IM_START}user\n{turn.observation.text}{IM_END}\n")
            else:
                parts.append(f"\nuser\n{turn.observation.text}")
    return "".join(parts)


def trajectory_from_response(response: str, question: str = "", stop_reason: StopReason | None = None) -> Trajectory:
    """A trajectory rebuilt from a decoded response, counted as the agent loop counts.

    A tool call with no observation after it never ran: it is not counted. ``stop_reason``
    is what the caller knows and the text cannot show (``length``: the last turn was cut at
    the token limit, as vLLM's and verl's finish reason says, and is recorded so); it defaults
    to ``answer`` when the last turn answers and ``max_turns`` otherwise. The final answer
    follows from the last turn and the stop reason by :func:`deepeyes.wire.parse.final_answer`,
    as in the agent loop.
    """
    trajectory = Trajectory(id="response", question=question, images=[])
    seen: set[tuple[str, str]] = set()
    for index, piece in enumerate(split_response(response)):
        parsed = parse_turn(piece.model_text)
        action = parsed.action
        turn = Turn(index, piece.model_text, action, violations=parsed.violations)
        trajectory.turns.append(turn)
        if piece.observation is not None:
            status = observation_status(piece.observation)
            identity = (action.kind, action.content.strip())
            counted = status not in REFUSED_STATUSES
            repeated = counted and action.kind in TOOL_NAMES and identity in seen
            if counted:
                seen.add(identity)
            turn.observation = Observation(piece.observation, piece.observation.count(IMAGE_PLACEHOLDER), status, 0.0, repeated)
            trajectory.tool_calls.record(action, turn.observation)
        elif action.kind == "invalid":
            trajectory.tool_calls.record(action, None)
    last = trajectory.turns[-1]
    trajectory.stop_reason = stop_reason or ("answer" if last.action.kind == "answer" else "max_turns")
    if trajectory.stop_reason == "length":
        last.finish_reason = "length"
    trajectory.final_answer = final_answer(last.action, last.model_text, trajectory.stop_reason)
    return trajectory
