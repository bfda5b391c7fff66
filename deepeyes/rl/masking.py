"""Token ids of a finished conversation and the mask of the tokens the policy wrote.

RL must only push on tokens the model generated: the system prompt, the question, image
tokens and every tool observation (a *user* turn in the wire format) are context, and a
gradient on them would teach the model to predict its tools' output. The mask is found
on the token ids themselves — each assistant turn header opens a trainable span that runs
to its end-of-turn token (both spelled in :mod:`deepeyes.wire.tokens`) — so it cannot
drift from what the model is fed.
Both engines use this module: the local engine to build its loss, the verl agent loop to
build verl's ``response_mask``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from deepeyes import wire
from deepeyes.chat import Message
from deepeyes.policies.hf import processor_media, to_hf_messages

#: Turns that end in one of these were cut by a stop string (the grammar policy in
#: :mod:`deepeyes.wire.parse`: a turn ends at its first closing tool tag): the model did not
#: write the closing end-of-turn token (the template adds it), so that token gets no loss.
#: Every token the model did write is trained, including text the parser ignores.
TOOL_STOPS: tuple[str, ...] = wire.TOOL_STOPS
#: Processor outputs of a conversation's videos, concatenated over a batch like the images'
#: (``second_per_grid_ts``: seconds per temporal patch, Qwen2.5-VL's absolute-time M-RoPE).
VISION_KEYS: tuple[str, ...] = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts")


@dataclass
class TokenizedConversation:
    """One conversation ready for a forward pass."""

    input_ids: torch.Tensor  # (length,)
    loss_mask: torch.Tensor  # (length,) 1 on tokens the policy generated
    #: Processor outputs besides ``input_ids`` / ``attention_mask`` (pixel_values, image_grid_thw, ...).
    extra_inputs: dict[str, torch.Tensor]
    images: list[Any]

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


def assistant_spans(input_ids: list[int], tokenizer: Any) -> list[tuple[int, int, bool]]:
    """``(start, end, ends_turn)`` for every assistant turn's content: ``input_ids[start:end]``.

    ``end`` is the position of the turn's ``<|im_end|>`` (or the sequence length when the
    conversation was cut); ``ends_turn`` says whether that token exists.
    """
    im_start = tokenizer.convert_tokens_to_ids(wire.IM_START)
    im_end = tokenizer.convert_tokens_to_ids(wire.IM_END)
    header = tokenizer.encode(wire.ASSISTANT_HEADER, add_special_tokens=False)
    spans = []
    length = len(input_ids)
    position = 0
    while position < length:
        if input_ids[position] == im_start and input_ids[position + 1 : position + 1 + len(header)] == header:
            start = position + 1 + len(header)
            end = start
            while end < length and input_ids[end] != im_end:
                end += 1
            spans.append((start, end, end < length))
            position = end
        position += 1
    return spans


def generated_token_mask(input_ids: list[int], tokenizer: Any) -> torch.Tensor:
    """1 on assistant content tokens (and on ``<|im_end|>`` when the model itself ended the turn)."""
    mask = torch.zeros(len(input_ids), dtype=torch.long)
    for start, end, ends_turn in assistant_spans(input_ids, tokenizer):
        mask[start:end] = 1
        if ends_turn:
            text = tokenizer.decode(input_ids[start:end], skip_special_tokens=False)
            if not text.rstrip().endswith(TOOL_STOPS):
                mask[end] = 1
    return mask


def media_inputs(processor: Any, messages: list[Message], *, min_pixels: int, max_pixels: int) -> tuple[list[Image.Image], dict[str, Any]]:
    """The images of ``messages`` resized, and the processor's image and video arguments.

    Built by the function :class:`~deepeyes.policies.hf.HFPolicy` builds them with for
    generation (:func:`~deepeyes.policies.hf.processor_media`), so what is scored here is what
    the rollout saw.
    """
    media = processor_media(processor, [messages], min_pixels=min_pixels, max_pixels=max_pixels)
    return media["images"] or [], media


def tokenize_conversation(
    processor: Any,
    messages: list[Message],
    *,
    min_pixels: int,
    max_pixels: int,
    max_length: int | None = None,
) -> TokenizedConversation:
    """Token ids (images and videos expanded the way the model sees them) and the generated-token mask.

    Images and videos are prepared exactly as :class:`~deepeyes.policies.hf.HFPolicy` prepares
    them for generation (:func:`media_inputs`), so the tokens scored here are the tokens the
    policy was conditioned on. Past ``max_length`` the loss mask is zero; the sequence itself is
    cut there only when no image or video starts beyond the cut (cutting inside one would
    misalign its features).
    """
    text = processor.apply_chat_template(to_hf_messages(messages), add_generation_prompt=False, tokenize=False)
    images, media = media_inputs(processor, messages, min_pixels=min_pixels, max_pixels=max_pixels)
    inputs = processor(text=[text], **media, return_tensors="pt")
    input_ids = inputs.pop("input_ids")[0]
    inputs.pop("attention_mask", None)
    extra = {key: value[0] if key == "mm_token_type_ids" else value for key, value in inputs.items()}
    mask = generated_token_mask(input_ids.tolist(), processor.tokenizer)
    if max_length is not None and input_ids.shape[0] > max_length:
        mask[max_length:] = 0
        vision_start = processor.tokenizer.convert_tokens_to_ids(wire.VISION_START)
        if not bool((input_ids[max_length:] == vision_start).any()):
            input_ids, mask = input_ids[:max_length], mask[:max_length]
            if "mm_token_type_ids" in extra:
                extra["mm_token_type_ids"] = extra["mm_token_type_ids"][:max_length]
    return TokenizedConversation(input_ids=input_ids, loss_mask=mask, extra_inputs=extra, images=images)


def collate(conversations: list[TokenizedConversation], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded model inputs for several conversations (image and video features concatenated in order)."""
    width = max(c.length for c in conversations)
    input_ids = torch.full((len(conversations), width), pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(conversations), width), dtype=torch.long)
    loss_mask = torch.zeros((len(conversations), width), dtype=torch.long)
    token_types = torch.zeros((len(conversations), width), dtype=torch.long)
    for row, conversation in enumerate(conversations):
        input_ids[row, : conversation.length] = conversation.input_ids
        attention[row, : conversation.length] = 1
        loss_mask[row, : conversation.length] = conversation.loss_mask
        if "mm_token_type_ids" in conversation.extra_inputs:
            token_types[row, : conversation.length] = conversation.extra_inputs["mm_token_type_ids"]
    batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention, "loss_mask": loss_mask}
    if any("mm_token_type_ids" in c.extra_inputs for c in conversations):
        batch["mm_token_type_ids"] = token_types
    for key in VISION_KEYS:
        parts = [c.extra_inputs[key] for c in conversations if key in c.extra_inputs]
        if parts:
            batch[key] = torch.cat(parts, dim=0)
    return batch
