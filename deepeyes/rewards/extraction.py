"""Read a model's full output text: its final answer, its assistant turns, its tool calls.

Callers that only hold text (verl's reward hook gets the decoded response) still need the
per-turn structure for the format check and the tool-call counts for tool efficiency, so
this module recovers both from the wire format (DESIGN §4) without the agent loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deepeyes import wire
from deepeyes.actions import parse_action

_IM_START = "<|im_start|>"
_END_MARKERS = (wire.IM_END, "<|endoftext|>")

_ANSWER_RE = re.compile(re.escape(wire.ANSWER_OPEN) + r"(.*?)" + re.escape(wire.ANSWER_CLOSE), re.DOTALL)
_TOOL_RESPONSE_RE = re.compile(re.escape(wire.TOOL_RESPONSE_OPEN) + r".*?" + re.escape(wire.TOOL_RESPONSE_CLOSE), re.DOTALL)
_CODE_OBSERVATION_RE = re.compile(
    r"Code execution result:\nstdout:\n```\n.*?\n```\n\nstderr:\n```\n(?P<stderr>.*?)\n```\n\n"
    r"(?:Images:\n(?:" + re.escape(wire.IMAGE_PLACEHOLDER) + r")*)?",
    re.DOTALL,
)
#: One regex over the whole text so that tags quoted inside an observation are never
#: mistaken for actions (an observation is consumed as a whole before its inside is seen).
_EVENT_RE = re.compile(
    r"(?P<code>" + re.escape(wire.CODE_OPEN) + r".*?" + re.escape(wire.CODE_CLOSE) + r")"
    r"|(?P<tool>" + re.escape(wire.TOOL_CALL_OPEN) + r".*?" + re.escape(wire.TOOL_CALL_CLOSE) + r")"
    r"|(?P<tool_response>" + re.escape(wire.TOOL_RESPONSE_OPEN) + r"(?P<response_body>.*?)"
    + re.escape(wire.TOOL_RESPONSE_CLOSE) + r")"
    r"|(?P<code_result>" + _CODE_OBSERVATION_RE.pattern + r")",
    re.DOTALL,
)
_TURN_BOUNDARY_RE = re.compile("(" + re.escape(wire.CODE_CLOSE) + "|" + re.escape(wire.TOOL_CALL_CLOSE) + ")")
_ERROR_BODY_PREFIX = "Error ("


def extract_answer(text: str) -> str | None:
    """The content of the last complete ``<answer>…</answer>``, stripped; ``None`` if there is none."""
    matches = _ANSWER_RE.findall(text)
    return matches[-1].strip() if matches else None


def _strip_end_markers(text: str) -> str:
    for marker in _END_MARKERS:
        text = text.replace(marker, "")
    return text


def split_assistant_turns(response: str) -> list[str]:
    """The assistant turns of a full multi-turn response, observations removed.

    With chat-template markers (``<|im_start|>role``) the roles say which text is the
    model's; the text before the first marker is the opening assistant turn (verl's
    response starts inside it). Without markers the observations are cut out and the text
    is split after each tool-call stop string, where generation hands over to a tool.
    """
    if _IM_START in response:
        head, *blocks = response.split(_IM_START)
        turns = [head] if head.strip() else []
        for block in blocks:
            role, _, body = block.partition("\n")
            if role.strip() == "assistant":
                turns.append(body)
        return [_strip_end_markers(t) for t in turns] or [""]
    text = _TOOL_RESPONSE_RE.sub("", response)
    text = _CODE_OBSERVATION_RE.sub("", text)
    pieces = _TURN_BOUNDARY_RE.split(text)
    # split() with a capture group alternates text, boundary, text, ...: glue each
    # boundary back onto the turn it closes.
    turns = [pieces[i] + pieces[i + 1] for i in range(0, len(pieces) - 1, 2)]
    tail = _strip_end_markers(pieces[-1])
    if tail.strip() or not turns:
        turns.append(tail)
    return turns


@dataclass
class _Call:
    kind: str  # code | search | image_search | invalid
    key: str  # what makes two calls identical
    failed: bool = False


def _call_from_block(block: str) -> _Call:
    """Classify one ``<code>``/``<tool_call>`` block with the agent loop's own parser, so a
    call the loop would refuse is counted invalid here too."""
    action = parse_action(block)
    if action.kind not in ("code", "search", "image_search"):
        return _Call("invalid", block)
    return _Call(action.kind, action.content.strip())


def derive_tool_stats(response: str) -> dict[str, int]:
    """Tool-call counts (the trajectory's ``tool_calls`` shape) read from a full response.

    A call failed when the observation that follows it reports an error (non-empty
    stderr, or an ``Error (…)`` tool response); a call is repeated when an identical call
    (same tool, same code or arguments) came before it.
    """
    calls: list[_Call] = []
    for match in _EVENT_RE.finditer(response):
        if match.group("code") or match.group("tool"):
            calls.append(_call_from_block(match.group("code") or match.group("tool")))
        elif calls and match.group("tool_response"):
            calls[-1].failed = match.group("response_body").strip().startswith(_ERROR_BODY_PREFIX)
        elif calls and match.group("code_result"):
            calls[-1].failed = bool(match.group("stderr").strip())
    stats = {"code": 0, "search": 0, "image_search": 0, "invalid": 0, "failed": 0, "repeated": 0}
    seen: set[tuple[str, str]] = set()
    for call in calls:
        stats[call.kind] += 1
        if call.kind == "invalid":
            continue
        stats["failed"] += call.failed
        identity = (call.kind, call.key)
        stats["repeated"] += identity in seen
        seen.add(identity)
    return stats
