"""One SFT conversation in the shape LLaMA-Factory trains on, and how both input formats map to it.

Both published input formats (DESIGN §5) end up as the same :class:`SftSample`: a
ShareGPT ``messages`` list with ``<image>`` (and ``<video>``) placeholders and the lists of
image paths and videos (LLaMA-Factory's video format, :mod:`deepeyes.data.video`), so
validation and writing never need to know where a sample came from. Seed records are
rendered through :mod:`deepeyes.wire`, the same renderers the agent loop uses, so the
model is trained on exactly the turns it will see at inference time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepeyes import wire
from deepeyes.data.video import Video, VideoFormatError, parse_videos
from deepeyes.prompts import system_prompt, user_prompt

#: Seed ``tool`` names (DESIGN §5).
CODE_EXECUTION, TEXT_SEARCH, IMAGE_SEARCH = "code_execution", "text_search", "image_search"
SEED_TOOLS = (CODE_EXECUTION, TEXT_SEARCH, IMAGE_SEARCH)


class RecordError(ValueError):
    """A record cannot be turned into a conversation at all (the report names it)."""


@dataclass
class SftSample:
    """A conversation plus its image paths and videos, each in placeholder order."""

    id: str
    source: str
    messages: list[dict[str, str]]
    images: list[str] = field(default_factory=list)
    #: One entry per ``<video>`` placeholder: a video file path or a list of frame paths.
    videos: list[Video] = field(default_factory=list)
    #: Position of the record in its source, so reports can point at duplicates precisely.
    index: int = 0


def is_seed_record(record: dict[str, Any]) -> bool:
    return "messages" not in record and ("tool_calls" in record or "text" in record)


def is_sharegpt_record(record: dict[str, Any]) -> bool:
    return "messages" in record


def from_sharegpt(record: dict[str, Any], sample_id: str, source: str) -> SftSample:
    """A DeepEyesV2 ShareGPT record: ``messages`` of ``{role, content}`` plus ``images`` and,
    optionally, ``videos`` (LLaMA-Factory's column: file paths or lists of frame paths)."""
    messages = record["messages"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise RecordError("'messages' must be a list of {role, content} objects")
    turns = []
    for index, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise RecordError(f"message {index} needs string 'role' and 'content'")
        turns.append({"role": role, "content": content})
    try:
        videos = parse_videos(record.get("videos"))
    except VideoFormatError as exc:
        raise RecordError(str(exc)) from exc
    return SftSample(id=sample_id, source=source, messages=turns, images=_image_list(record.get("images")), videos=videos)


def from_seed(record: dict[str, Any], sample_id: str, source: str) -> SftSample:
    """A seed record: each tool call becomes an assistant action turn followed by the tool's
    observation as a user turn (DESIGN §4); the answer closes the conversation.

    ``thoughts`` (optional, one per tool call plus one for the answer) fill the ``<think>``
    blocks; without them the turns carry the action alone rather than an invented thought.
    """
    if record.get("video") or record.get("videos"):
        raise RecordError("seed records carry images only; give a video sample as ShareGPT (messages, videos)")
    for key in ("text", "answer"):
        if not isinstance(record.get(key), str):
            raise RecordError(f"seed record needs a string '{key}'")
    calls = record.get("tool_calls") or []
    if not isinstance(calls, list):
        raise RecordError("'tool_calls' must be a list")
    thoughts = record.get("thoughts")
    if thoughts is not None and (not isinstance(thoughts, list) or len(thoughts) != len(calls) + 1):
        raise RecordError(f"'thoughts' must list {len(calls) + 1} entries (one per tool call, then the answer)")

    main_images = _image_list(record.get("image"))
    images = list(main_images)
    messages = [
        {"role": "system", "content": system_prompt()},
        {"role": "user", "content": user_prompt(record["text"], image_count=len(main_images))},
    ]
    for index, call in enumerate(calls):
        action, observation, observation_images = _render_call(call, index)
        messages.append({"role": "assistant", "content": _with_thought(thoughts, index, action)})
        messages.append({"role": "user", "content": observation})
        images.extend(observation_images)
    messages.append(
        {"role": "assistant", "content": _with_thought(thoughts, len(calls), wire.answer_action(record["answer"]))}
    )
    return SftSample(id=sample_id, source=source, messages=messages, images=images)


def _with_thought(thoughts: list[str] | None, index: int, action: str) -> str:
    if thoughts is None:
        return action
    return wire.think(str(thoughts[index])) + action


def _render_call(call: Any, index: int) -> tuple[str, str, list[str]]:
    """(assistant action text, user observation text, observation image paths) of one call."""
    if not isinstance(call, dict) or call.get("tool") not in SEED_TOOLS:
        raise RecordError(f"tool_calls[{index}] needs 'tool' in {', '.join(SEED_TOOLS)}")
    tool, tool_input, output = call["tool"], call.get("input", ""), call.get("output", "")
    images = _image_list(call.get("images"))
    if not isinstance(tool_input, str) or not isinstance(output, str):
        raise RecordError(f"tool_calls[{index}]: 'input' and 'output' must be strings")
    if tool == CODE_EXECUTION:
        observation = wire.code_observation(output, str(call.get("stderr", "")), len(images))
        return wire.code_action(tool_input), observation, images
    if tool == TEXT_SEARCH:
        return wire.text_search_action(tool_input), wire.tool_response(output), images
    return wire.image_search_action(), wire.tool_response(output), images


def _image_list(value: Any) -> list[str]:
    """Image paths as a list, from a single path or a list (readers have already written
    embedded images out as files)."""
    if value is None or value == "":
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(item, str) and item for item in items):
        raise RecordError("images must be given as non-empty path strings")
    return items
