"""The tiny offline Qwen2.5-VL: deterministic build, loads through the standard classes, generates on an image."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

from deepeyes import wire
from deepeyes.models.tiny import QWEN_SPECIAL_TOKENS, WIRE_TOKENS, build


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    first, second = digest(build(tmp_path / "a")), digest(build(tmp_path / "b"))
    assert {"model.safetensors", "tokenizer.json", "config.json", "processor_config.json"} <= set(first)
    assert first == second


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir)
    return processor, model


def test_loads_and_generates_on_an_image_prompt(loaded) -> None:
    processor, model = loaded
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many red circles?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n") and "<|vision_start|><|image_pad|><|vision_end|>" in prompt
    inputs = processor(text=[prompt], images=[Image.new("RGB", (320, 240), "white")], return_tensors="pt")
    image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    grid = inputs["image_grid_thw"][0]
    assert image_tokens == int(grid.prod()) // 4  # merge 2×2 patches per visual token
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 8 or int(out[0, -1]) in model.generation_config.eos_token_id


def test_tokenizer_round_trips_wire_format_and_keeps_special_tokens(loaded) -> None:
    tokenizer = loaded[0].tokenizer
    text = (
        "<|im_start|>assistant\n"
        + wire.think("I will zoom in.")
        + wire.code_action("crop = image_1.crop((0, 0, 10, 10))\nprint(crop.size)")
        + "<|im_end|>\n<|im_start|>user\n"
        + wire.code_observation("(10, 10)", "", 1)
        + wire.tool_response(wire.text_search_body([{"title": "Ünïcode ✓ 東京", "link": "https://x.org", "snippet": "s"}]))
        + wire.text_search_action('quote " and \\ backslash')
        + wire.answer_action("42")
    )
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    for token in (*QWEN_SPECIAL_TOKENS, *WIRE_TOKENS):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token


def test_a_number_is_the_same_digit_tokens_wherever_it_appears(loaded) -> None:
    """Copying a number from the question into code, or from printed output into the answer,
    must be a token-for-token copy (Qwen2's pre-tokenizer splits digits the same way)."""
    tokenizer = loaded[0].tokenizer

    def ids_of(number: str, context: str) -> list[int]:
        before, _ = context.split("{}")
        prefix = len(tokenizer(before, add_special_tokens=False)["input_ids"])
        ids = tokenizer(context.format(number), add_special_tokens=False)["input_ids"]
        return ids[prefix : prefix + len(number)]

    for number in ("4743", "51", "1906", "3301"):
        digits = [tokenizer.convert_tokens_to_ids(d) for d in number]
        for context in ("What is {} times 3?", "print({} * 93)", "```\n{}\n```", "<answer>{}</answer>", "founded in {};"):
            assert ids_of(number, context) == digits, (number, context)
