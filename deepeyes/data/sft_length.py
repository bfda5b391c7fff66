"""Token length of an SFT sample exactly as LLaMA-Factory will see it.

The count goes through LLaMA-Factory's own chat template and multimodal plugin with the
model's processor, so image and video tokens are expanded with the same resizing and
frame-sampling rules (``image_max_pixels`` / ``image_min_pixels``, ``video_max_pixels`` /
``video_min_pixels`` / ``video_fps`` / ``video_maxlen``) the training run applies. A re-implemented
count would drift from the trainer, and the trainer truncates silently.

Loading the processor is also where the training image budget meets the one inference
uses: RL, evaluation and serving resize images to the checkpoint processor's own
``max_pixels``, so a recipe that trains at another budget is warned about (docs/cold_start.md,
"Image budget").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepeyes.data.sft_sample import SftSample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LengthSettings:
    """The LLaMA-Factory settings that change a sample's token count."""

    template: str = "qwen2_vl"
    image_max_pixels: int = 768 * 768
    image_min_pixels: int = 32 * 32
    #: Video settings, with LLaMA-Factory's defaults (its ``ModelArguments``): pixels per
    #: frame, frames sampled per second of a video file, and the most frames kept.
    video_max_pixels: int = 256 * 256
    video_min_pixels: int = 16 * 16
    video_fps: float = 2.0
    video_maxlen: int = 128


@dataclass(frozen=True)
class SequenceLength:
    """A sample's token count as the trainer sees it, and how much of it is media."""

    total: int
    image_tokens: int
    video_tokens: int


class SequenceLengthCounter:
    """Callable ``sample -> SequenceLength``; loads the processor once."""

    def __init__(self, model_path: Path, settings: LengthSettings = LengthSettings()) -> None:
        from llamafactory.data import get_template_and_fix_tokenizer
        from llamafactory.hparams import DataArguments
        from transformers import AutoProcessor

        if not (Path(model_path) / "config.json").is_file():
            raise FileNotFoundError(f"model not found (no config.json): {model_path}")
        self.processor = AutoProcessor.from_pretrained(str(model_path))
        warning = image_budget_warning(self.processor, settings.image_max_pixels)
        if warning:
            logger.warning("%s", warning)
        # The attributes LLaMA-Factory's patch_processor sets from the training arguments.
        for name in ("image_max_pixels", "image_min_pixels", "video_max_pixels", "video_min_pixels", "video_fps", "video_maxlen"):
            setattr(self.processor, name, getattr(settings, name))
        self.tokenizer = self.processor.tokenizer
        self.template = get_template_and_fix_tokenizer(self.tokenizer, DataArguments(template=settings.template))
        plugin = self.template.mm_plugin
        self._media_ids = {
            kind: self.tokenizer.convert_tokens_to_ids(token)
            for kind, token in (("image", plugin.image_token), ("video", plugin.video_token))
            if token is not None
        }

    def __call__(self, sample: SftSample) -> SequenceLength:
        """Raises what LLaMA-Factory's plugin raises for media it cannot use (e.g. ``ValueError``
        for a placeholder count that does not match, PyAV errors for a bad video file)."""
        messages = sample.messages
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
        turns = messages[1:] if system is not None else messages
        videos = [list(video) if isinstance(video, list) else video for video in sample.videos]
        expanded = self.template.mm_plugin.process_messages(turns, list(sample.images), videos, [], self.processor)
        pairs = self.template.encode_multiturn(self.tokenizer, expanded, system, None)
        ids = [token for prompt, response in pairs for token in (*prompt, *response)]
        media = {kind: sum(1 for token in ids if token == token_id) for kind, token_id in self._media_ids.items()}
        return SequenceLength(
            total=len(ids) + (1 if self.template.efficient_eos else 0),
            image_tokens=media.get("image", 0),
            video_tokens=media.get("video", 0),
        )


def image_budget_warning(processor: Any, image_max_pixels: int) -> str | None:
    """Why training at ``image_max_pixels`` differs from how the model will be run, or None.

    Every inference path (RL rollouts, evaluation, serving) resizes images to the
    checkpoint processor's ``longest_edge``; a model trained on smaller (or larger) images
    than it then sees loses accuracy (docs/cold_start.md measures it on the tiny model).
    """
    serving = int(processor.image_processor.size["longest_edge"])
    if serving == image_max_pixels:
        return None
    return (
        f"image budget: training resizes images to at most image_max_pixels={image_max_pixels} pixels, but the model's "
        f"processor, which RL, evaluation and serving use, allows {serving}. Make them agree: set IMAGE_MAX_PIXELS={serving}, "
        f"or run the trained model at the training budget by saving its processor with image_processor.size['longest_edge'] "
        f"= {image_max_pixels} (docs/cold_start.md, 'Image budget')."
    )
