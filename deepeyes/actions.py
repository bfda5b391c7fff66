"""Parse one model turn into an action (DESIGN §4).

Tolerant where DeepEyesV2 checkpoints are sloppy (whitespace, a fence without a language
tag, an answer left open at the end of the turn, several action blocks → the last one),
strict where a wrong guess would run the wrong tool (bad JSON, unknown tool name,
arguments given to ``image_search``). Every rejection carries a reason worded for the
model, because the reason is sent back to it as the tool observation.
"""

from __future__ import annotations

import json
import re

from deepeyes import wire
from deepeyes.trajectory import Action

_BLOCK = re.compile(
    r"<(?P<tag>code|tool_call|answer)>(?P<body>.*?)(?:</(?P=tag)>|(?P<open>$))",
    re.DOTALL,
)
_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n?(?P<code>.*?)(?:```|$)", re.DOTALL)
_TRAILING_SPECIALS = re.compile(r"(?:<\|im_end\|>|<\|endoftext\|>)\s*$")

MAX_QUERY_CHARS = 512


def parse_action(text: str) -> Action:
    """Turn ``text`` (one assistant turn, stop string included) into an :class:`Action`."""
    body = _TRAILING_SPECIALS.sub("", text)
    blocks = list(_BLOCK.finditer(body))
    if not blocks:
        return Action(
            "invalid",
            reason="No action found: end your reply with one <code>…</code>, <tool_call>…</tool_call> or <answer>…</answer> block.",
        )
    last = blocks[-1]
    tag, content, unclosed = last.group("tag"), last.group("body"), last.group("open") is not None
    if tag == "answer":
        return _parse_answer(content)
    if unclosed:
        return Action("invalid", reason=f"The <{tag}> block is not closed with </{tag}>.")
    if tag == "code":
        return _parse_code(content)
    return _parse_tool_call(content)


def _parse_answer(content: str) -> Action:
    answer = content.strip()
    if not answer:
        return Action("invalid", reason="The <answer> block is empty.")
    return Action("answer", content=answer)


def _parse_code(content: str) -> Action:
    fenced = _FENCE.search(content)
    code = (fenced.group("code") if fenced else content).strip("\n")
    if not code.strip():
        return Action("invalid", reason="The <code> block contains no Python code.")
    return Action("code", content=code)


def _parse_tool_call(content: str) -> Action:
    raw = content.strip()
    try:
        call = json.loads(raw)
    except json.JSONDecodeError as exc:
        return Action("invalid", content=raw, reason=f"The tool call is not valid JSON ({exc.msg} at position {exc.pos}).")
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return Action("invalid", content=raw, reason='The tool call must be a JSON object with a "name" field.')
    name, arguments = call["name"], call.get("arguments")
    if name == wire.IMAGE_SEARCH_TOOL:
        if arguments not in (None, {}):
            return Action("invalid", content=raw, reason="image_search takes no arguments: it always searches with the original image.")
        return Action("image_search")
    if name == wire.TEXT_SEARCH_TOOL:
        query = arguments.get("query") if isinstance(arguments, dict) else None
        if not isinstance(query, str) or not query.strip():
            return Action("invalid", content=raw, reason='search needs {"arguments": {"query": "<non-empty text>"}}.')
        if len(query) > MAX_QUERY_CHARS:
            return Action("invalid", content=raw, reason=f"The search query is longer than {MAX_QUERY_CHARS} characters.")
        return Action("search", content=query.strip())
    return Action(
        "invalid",
        content=raw,
        reason=f"Unknown tool '{name}'. Available tools: {wire.TEXT_SEARCH_TOOL}, {wire.IMAGE_SEARCH_TOOL}; run code with <code>.",
    )
