"""The loss only sees tokens the policy wrote: tool observations, prompts and images carry zero weight."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

from deepeyes import wire
from deepeyes.chat import Message
from deepeyes.prompts import system_prompt, user_prompt
from deepeyes.rl import algorithms
from deepeyes.rl.config import TrainingConfig
from deepeyes.rl.masking import collate, tokenize_conversation

CODE_TURN = "<think>I should measure the image.</think>\n" + wire.code_action("print(image_1.size)")
OBSERVATION = wire.code_observation("(64, 48)", "", 1)
ANSWER_TURN = "<think>It is 64 wide.</think>\n<answer>64</answer>"


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    return AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def conversation() -> list[Message]:
    question_image = Image.new("RGB", (64, 48), "red")
    figure = Image.new("RGB", (56, 56), "blue")
    return [
        Message("system", system_prompt()),
        Message("user", user_prompt("How wide is the image?", 1), [question_image]),
        Message("assistant", CODE_TURN),
        Message("user", OBSERVATION, [figure]),
        Message("assistant", ANSWER_TURN),
    ]


def _tokenize(processor, messages, max_length=None):
    size = processor.image_processor.size
    return tokenize_conversation(
        processor, messages, min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"], max_length=max_length
    )


def _masked_text(processor, tokenized, weight: int) -> str:
    ids = [i for i, m in zip(tokenized.input_ids.tolist(), tokenized.loss_mask.tolist(), strict=True) if m == weight]
    return processor.tokenizer.decode(ids, skip_special_tokens=False)


def test_only_generated_turns_are_trainable(processor, conversation):
    tokenized = _tokenize(processor, conversation)
    trainable = _masked_text(processor, tokenized, 1)
    # The code turn ended at its stop string (the template adds <|im_end|>): no loss on that token.
    # The answer turn ended with the model's own <|im_end|>: it is trained.
    assert trainable == CODE_TURN + ANSWER_TURN + "<|im_end|>"


def test_observation_prompt_and_image_tokens_have_zero_weight(processor, conversation):
    tokenized = _tokenize(processor, conversation)
    ids = tokenized.input_ids.tolist()
    mask = tokenized.loss_mask.tolist()
    frozen = _masked_text(processor, tokenized, 0)
    assert "Code execution result" in frozen and "(64, 48)" in frozen
    assert "How wide is the image?" in frozen and system_prompt()[:60] in frozen
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    image_positions = [i for i, token in enumerate(ids) if token == image_pad]
    assert len(image_positions) > 0 and all(mask[i] == 0 for i in image_positions)
    # Every token of the observation turn, located by its text, is masked.
    observation_ids = processor.tokenizer.encode("Code execution result:", add_special_tokens=False)
    start = next(i for i in range(len(ids)) if ids[i : i + len(observation_ids)] == observation_ids)
    end = ids.index(processor.tokenizer.convert_tokens_to_ids("<|im_end|>"), start)
    assert sum(mask[start:end + 1]) == 0
    # Images of both turns are kept for the forward pass.
    assert tokenized.extra_inputs["image_grid_thw"].shape[0] == 2


def test_masked_tokens_get_no_gradient(processor, conversation, tiny_model_dir):
    """Through verl's loss, a masked token's log-prob receives exactly zero gradient."""
    tokenized = _tokenize(processor, conversation)
    batch = collate([tokenized], processor.tokenizer.pad_token_id)
    mask = batch["loss_mask"][:, 1:].float()
    log_probs = torch.randn(mask.shape, requires_grad=True)
    current = algorithms.ForwardOutput(log_probs=log_probs, loss_mask=mask)
    training = TrainingConfig(kl_coef=0.1)
    parts = algorithms.policy_loss(
        algorithms.actor_config(training, rollout_n=2),
        training,
        current,
        old_log_probs=log_probs.detach() - 0.05,
        advantages=torch.ones_like(mask),
        ref_log_probs=log_probs.detach() + 0.1,
        returns=None,
        old_values=None,
        minibatch_tokens=int(mask.sum()),
        minibatch_size=1,
    )
    parts.total.backward()
    gradient = log_probs.grad[0]
    assert torch.all(gradient[mask[0] == 0] == 0)
    assert torch.all(gradient[mask[0] == 1] != 0)


def test_truncation_keeps_images_aligned(processor, conversation):
    full = _tokenize(processor, conversation)
    vision_start = processor.tokenizer.convert_tokens_to_ids("<|vision_start|>")
    last_image = max(i for i, t in enumerate(full.input_ids.tolist()) if t == vision_start)
    # Cutting after the last image shortens the sequence; nothing past the cut is trained.
    cut = full.length - 5
    assert cut > last_image
    short = _tokenize(processor, conversation, max_length=cut)
    assert short.length == cut and torch.equal(short.loss_mask, full.loss_mask[:cut])
    # A cut before an image would misalign the image features: the sequence stays whole, unweighted past the cut.
    early = _tokenize(processor, conversation, max_length=last_image - 1)
    assert early.length == full.length
    assert early.loss_mask[last_image - 1 :].sum() == 0
