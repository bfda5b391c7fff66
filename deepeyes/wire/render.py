"""Rendering the wire format (DESIGN §4): model actions and the observation turns.

DeepEyesV2 checkpoints were trained on exactly these shapes, so SFT data, the agent loop
and the tool observations all render through here; :mod:`deepeyes.wire.parse` reads them
back with the same tag constants.
"""

from __future__ import annotations

import json

from deepeyes.tool_specs import IMAGE_SEARCH_CALL, SEARCH_CALL
from deepeyes.wire.tokens import IM_END

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CODE_OPEN, CODE_CLOSE = "<code>", "</code>"
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
IMAGE_PLACEHOLDER = "<image>"
#: LLaMA-Factory's placeholder for one video (``llamafactory.extras.constants.VIDEO_PLACEHOLDER``).
VIDEO_PLACEHOLDER = "<video>"

#: Closing tags of the tool actions: generation stops right after the first one (the tool
#: runs next), and the parser cuts the turn there too (see :mod:`deepeyes.wire.parse`).
TOOL_STOPS: tuple[str, ...] = (CODE_CLOSE, TOOL_CALL_CLOSE)
#: Generation stops at any of these; the stop string is kept in the model text.
STOP_STRINGS: tuple[str, ...] = (*TOOL_STOPS, IM_END)

#: Error kinds of :func:`error_response` that mean "the call was refused, not run".
ERROR_DISABLED = "tool disabled"
ERROR_BUDGET = "budget"
ERROR_INVALID = "invalid call"
#: Lines of a tool's stderr that start with this are notes from the tool, not errors.
NOTE_PREFIX = "[note] "


def escape_placeholders(text: str) -> str:
    """Neutralise a literal ``<image>`` or ``<video>`` inside a question or tool output: in a
    user turn it would claim an image or a video that is not there."""
    return text.replace(IMAGE_PLACEHOLDER, "< image >").replace(VIDEO_PLACEHOLDER, "< video >")


def think(text: str) -> str:
    return f"{THINK_OPEN}\n{text.strip()}\n{THINK_CLOSE}\n"


def code_action(code: str) -> str:
    return f"{CODE_OPEN}\n```python\n{code.strip()}\n```\n{CODE_CLOSE}"


def text_search_action(query: str) -> str:
    return tool_call_action(SEARCH_CALL.name, {"query": query})


def image_search_action() -> str:
    return tool_call_action(IMAGE_SEARCH_CALL.name)


def answer_action(answer: str) -> str:
    return f"{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


def code_observation(stdout: str, stderr: str, image_count: int) -> str:
    """The user turn that carries a code execution result back to the model.

    Trailing newlines are dropped (``print`` always adds one) so that recorded SFT
    observations and live sandbox observations render identically.
    """
    stdout, stderr = escape_placeholders(stdout.rstrip("\n")), escape_placeholders(stderr.rstrip("\n"))
    images = "Images:\n" + IMAGE_PLACEHOLDER * image_count if image_count else ""
    return (
        "Code execution result:\n"
        f"stdout:\n```\n{stdout}\n```\n\n"
        f"stderr:\n```\n{stderr}\n```\n\n"
        f"{images}"
    )


def note(text: str) -> str:
    """One line the tool adds to stderr to tell the model what it changed (not an error)."""
    return f"{NOTE_PREFIX}{text}"


def tool_call_action(name: str, arguments: dict | None = None) -> str:
    """A ``<tool_call>`` block calling ``name`` (``arguments`` omitted when ``None``)."""
    call: dict = {"name": name} if arguments is None else {"name": name, "arguments": arguments}
    return f"{TOOL_CALL_OPEN}\n{json.dumps(call, ensure_ascii=False)}\n{TOOL_CALL_CLOSE}"


def restore_stop_string(text: str, finish_reason: str | None) -> str:
    """OpenAI-style servers drop the matched stop string; put the closing tag back.

    The parser needs ``</code>``/``</tool_call>`` to tell a finished call from a
    truncated one, so a turn that stopped inside an open block gets its tag restored.
    """
    if finish_reason != "stop":
        return text
    for opening, closing in ((CODE_OPEN, CODE_CLOSE), (TOOL_CALL_OPEN, TOOL_CALL_CLOSE)):
        if text.rfind(opening) > text.rfind(closing):
            return text + closing
    return text


def tool_response(body: str) -> str:
    """The user turn that carries a search result (or a tool error) back to the model."""
    return f"{TOOL_RESPONSE_OPEN}\n{body}\n{TOOL_RESPONSE_CLOSE}"


def text_search_entry(rank: int, title: str, link: str, snippet: str, date: str | None = None) -> str:
    """One numbered text-search result: ``N. [title](link)``, optional date line, snippet."""
    lines = [f"{rank}. [{escape_placeholders(title)}]({link})"]
    if date:
        lines.append(f"Date published: {date}")
    lines.append(escape_placeholders(snippet))
    return "\n".join(lines)


def text_search_body(entries: list[dict]) -> str:
    """Body of a text-search response from ``{title, link, snippet, date}`` dicts."""
    if not entries:
        return "No results found."
    return "\n\n".join(
        text_search_entry(i, e["title"], e.get("link", ""), e.get("snippet", ""), e.get("date"))
        for i, e in enumerate(entries, start=1)
    )


def image_search_body(titles: list[str]) -> str:
    """Body of an image-search response: numbered entries, each its thumbnail then its title."""
    if not titles:
        return "No results found."
    return "\n".join(f"{i}. {IMAGE_PLACEHOLDER} {escape_placeholders(title)}" for i, title in enumerate(titles, start=1))


def error_response(kind: str, message: str) -> str:
    """A tool error in the search-response shape, worded so the model can recover."""
    return tool_response(f"Error ({kind}): {message}")
