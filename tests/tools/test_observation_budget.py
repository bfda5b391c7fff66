"""Fitting an observation into the tokens left (issue 25 item 9): text cut first, then images, always with a note."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image
from transformers import AutoProcessor

from deepeyes import wire
from deepeyes.tools.budget import (
    Clip,
    ObservationBudget,
    fit_observation,
    image_tokens,
    tokenizer_counter,
    utf8_length,
)

STDOUT = "1" * 20_000


def code_render():
    def render(kept: list[int], notes: list[str], clip: Clip) -> str:
        return wire.code_observation(clip(STDOUT), "\n".join(map(wire.note, notes)), len(kept))

    return render


def test_what_fits_is_left_whole() -> None:
    fitted = fit_observation(code_render(), [], [], ObservationBudget(30_000))
    assert STDOUT in fitted.text and fitted.tokens == utf8_length(fitted.text)


def test_long_text_is_cut_to_the_most_that_fits_with_a_note() -> None:
    fitted = fit_observation(code_render(), [], [], ObservationBudget(5_000))
    assert fitted.tokens <= 5_000 and fitted.tokens > 4_900
    assert "[note] output cut to its first" in fitted.text and "to fit the 5000 tokens left in the context" in fitted.text


def test_images_go_from_the_last_when_even_the_bare_text_leaves_no_room_for_them() -> None:
    images = [Image.new("RGB", (280, 280)), Image.new("RGB", (560, 560))]  # 100 + 2 and 400 + 2 tokens
    assert [image_tokens(i) for i in images] == [102, 402]
    fitted = fit_observation(code_render(), images, [], ObservationBudget(400))
    assert fitted.kept == [0] and fitted.tokens <= 400 and fitted.text.count(wire.IMAGE_PLACEHOLDER) == 1
    assert "[note] the last 1 image(s) dropped: their 402 tokens do not fit the 400 tokens left in the context" in fitted.text
    assert "[note] output cut to its first" in fitted.text


def test_a_dropped_image_leaves_short_text_whole() -> None:
    def render(kept: list[int], notes: list[str], clip: Clip) -> str:
        return wire.tool_response("\n".join([clip("Zoomed in."), *(wire.IMAGE_PLACEHOLDER for _ in kept), *map(wire.note, notes)]))

    fitted = fit_observation(render, [Image.new("RGB", (560, 560))], [], ObservationBudget(200))
    assert fitted.kept == [] and "Zoomed in." in fitted.text and "output cut" not in fitted.text


def test_an_observation_that_cannot_fit_says_so_by_its_count() -> None:
    fitted = fit_observation(code_render(), [], [], ObservationBudget(10))
    assert fitted.tokens > 10  # the caller must not send it


def test_image_tokens_bound_what_the_processor_makes(tiny_model_dir: Path) -> None:
    processor = AutoProcessor.from_pretrained(str(tiny_model_dir))
    for size in [(100, 60), (28, 28), (300, 170), (10, 10)]:
        image = Image.new("RGB", size)
        grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
        assert int(grid.prod()) // 4 + 2 <= image_tokens(image), size


def test_exact_counts_with_the_policy_tokenizer_on_many_threads(tiny_model_dir: Path) -> None:
    tokenizer = AutoProcessor.from_pretrained(str(tiny_model_dir)).tokenizer
    count = tokenizer_counter(tokenizer)
    text = "Code execution result:\nstdout:\n```\n12345 apples\n```"
    assert count(text) == len(tokenizer.encode(text, add_special_tokens=False)) < utf8_length(text)
    assert tokenizer_counter(object()) is utf8_length  # no fast tokenizer: the byte bound

    def busy(index: int) -> int:  # the policy pads and encodes while trajectories count
        if index % 2:
            tokenizer.padding_side = "left"
            return len(tokenizer([text, text * 2], padding=True)["input_ids"][0])
        return count(text * (index + 1))

    with ThreadPoolExecutor(8) as pool:
        assert all(n > 0 for n in pool.map(busy, range(200)))


@pytest.mark.parametrize("room", [0, -5])
def test_no_room_at_all_never_fits(room: int) -> None:
    assert fit_observation(code_render(), [], [], ObservationBudget(room)).tokens > room
