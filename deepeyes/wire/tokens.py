"""Qwen2.5-VL's special tokens and the strings that end a model turn (DESIGN §3, §4).

The chat template, the tiny model's tokenizer, the loss mask, the policies' stop lists and
the parser all need these spellings; they live here so that no other module writes them.
"""

from __future__ import annotations

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
VISION_PAD = "<|vision_pad|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"

#: Tokens that end an assistant turn; neither is part of the turn's text.
END_OF_TURN: tuple[str, ...] = (IM_END, END_OF_TEXT)
#: Tokens that carry structure, not text (the vision block and the turn header).
STRUCTURAL_TOKENS: tuple[str, ...] = (VISION_START, VISION_END, VISION_PAD, IMAGE_PAD, VIDEO_PAD, IM_START)
#: Qwen2.5-VL's special tokens in Qwen's id order (the released tokenizer's ``added_tokens``),
#: so templates and processors that look them up by string behave as with the checkpoints.
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    END_OF_TEXT,
    IM_START,
    IM_END,
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    VISION_START,
    VISION_END,
    VISION_PAD,
    IMAGE_PAD,
    VIDEO_PAD,
)

#: The turn header the chat template writes before each assistant turn.
ASSISTANT_HEADER = "assistant\n"


def trim_end_of_turn(text: str) -> str:
    """Cut ``text`` at its first end-of-turn token (the token and anything after it go)."""
    for marker in END_OF_TURN:
        position = text.find(marker)
        if position != -1:
            text = text[:position]
    return text


def remove_end_of_turn(text: str) -> str:
    """``text`` with every end-of-turn token deleted (for joining decoded turns)."""
    for marker in END_OF_TURN:
        text = text.replace(marker, "")
    return text
