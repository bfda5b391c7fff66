"""Training rows built from the ids the policy sampled, one row per generated turn.

Decoding a turn to text and tokenising the conversation again does not give back the
sampled ids (a partial UTF-8 token decodes to a replacement character and re-encodes as
other tokens; merges differ across turn boundaries), so an update on re-tokenised text
optimises tokens the policy never chose. Here each turn becomes one row: the exact prompt
ids the turn was conditioned on, then the exact sampled ids, with the loss on the sampled
ids only. The end-of-turn marker is among them only when the model wrote it; a turn cut at
``max_new_tokens`` ends without one, so no loss lands on a marker the model never sampled.
verl's multi-turn agent loop does the same (its ``response_ids`` are the sampled ids).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from deepeyes.chat import Message
from deepeyes.policies.base import Generation
from deepeyes.policies.hf import to_hf_messages
from deepeyes.rl.masking import TokenizedConversation, media_inputs
from deepeyes.wire import VISION_START

logger = logging.getLogger(__name__)


class SampledIdsError(ValueError):
    """A turn's recorded prompt ids are not what its conversation prefix tokenises to."""


def turn_row(
    processor: Any,
    prefix: list[Message],
    generation: Generation,
    *,
    min_pixels: int,
    max_pixels: int,
    max_length: int | None = None,
) -> TokenizedConversation:
    """One training row: ``prompt ids + sampled ids``, loss mask 1 on the sampled ids.

    The images and videos of ``prefix`` are processed again, as generation processed them
    (:func:`~deepeyes.rl.masking.media_inputs`; their pixel values are not kept by the
    rollout); the prompt ids this yields must equal ``generation.prompt_token_ids`` or
    :class:`SampledIdsError` is raised, so features and ids cannot drift apart. Past
    ``max_length`` the mask is zero (the row is cut there when no image or video starts beyond it).
    """
    if generation.token_ids is None:
        raise SampledIdsError("the generation carries no sampled token ids")
    text = processor.apply_chat_template(to_hf_messages(prefix), add_generation_prompt=True, tokenize=False)
    images, media = media_inputs(processor, prefix, min_pixels=min_pixels, max_pixels=max_pixels)
    inputs = processor(text=[text], **media, return_tensors="pt")
    prompt_ids = inputs.pop("input_ids")[0]
    inputs.pop("attention_mask", None)
    if generation.prompt_token_ids is not None and prompt_ids.tolist() != list(generation.prompt_token_ids):
        raise SampledIdsError(
            f"prompt ids differ from the ones generation was conditioned on ({prompt_ids.shape[0]} vs {len(generation.prompt_token_ids)} tokens)"
        )
    sampled = torch.tensor(generation.token_ids, dtype=torch.long)
    input_ids = torch.cat([prompt_ids, sampled])
    mask = torch.zeros(input_ids.shape[0], dtype=torch.long)
    mask[prompt_ids.shape[0] :] = 1
    extra = {key: value[0] if key == "mm_token_type_ids" else value for key, value in inputs.items()}
    if "mm_token_type_ids" in extra:  # generated tokens are text
        extra["mm_token_type_ids"] = torch.cat([extra["mm_token_type_ids"], torch.zeros_like(sampled)])
    if max_length is not None and input_ids.shape[0] > max_length:
        mask[max_length:] = 0
        vision_start = processor.tokenizer.convert_tokens_to_ids(VISION_START)
        if not bool((input_ids[max_length:] == vision_start).any()):
            input_ids, mask = input_ids[:max_length], mask[:max_length]
            if "mm_token_type_ids" in extra:
                extra["mm_token_type_ids"] = extra["mm_token_type_ids"][:max_length]
    return TokenizedConversation(input_ids=input_ids, loss_mask=mask, extra_inputs=extra, images=images)


def trajectory_rows(
    processor: Any,
    messages: list[Message],
    turns: list[tuple[int, Generation]],
    *,
    min_pixels: int,
    max_pixels: int,
    max_length: int | None = None,
) -> list[TokenizedConversation]:
    """One row per generated turn of a trajectory (``turns`` from ``BatchingPolicy.sampled_turns``)."""
    return [
        turn_row(processor, messages[:prefix], generation, min_pixels=min_pixels, max_pixels=max_pixels, max_length=max_length)
        for prefix, generation in turns
    ]
