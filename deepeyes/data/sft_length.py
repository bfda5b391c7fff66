"""Token length of an SFT sample exactly as LLaMA-Factory will see it.

The count goes through LLaMA-Factory's own chat template and multimodal plugin with the
model's processor, so image tokens are expanded with the same resizing rules
(``image_max_pixels`` / ``image_min_pixels``) the training run applies. A re-implemented
count would drift from the trainer, and the trainer truncates silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deepeyes.data.sft_sample import SftSample


@dataclass(frozen=True)
class LengthSettings:
    """The LLaMA-Factory settings that change a sample's token count."""

    template: str = "qwen2_vl"
    image_max_pixels: int = 768 * 768
    image_min_pixels: int = 32 * 32


class SequenceLengthCounter:
    """Callable ``sample -> token count``; loads the processor once."""

    def __init__(self, model_path: Path, settings: LengthSettings = LengthSettings()) -> None:
        from llamafactory.data import get_template_and_fix_tokenizer
        from llamafactory.hparams import DataArguments
        from transformers import AutoProcessor

        if not (Path(model_path) / "config.json").is_file():
            raise FileNotFoundError(f"model not found (no config.json): {model_path}")
        self.processor = AutoProcessor.from_pretrained(str(model_path))
        self.processor.image_max_pixels = settings.image_max_pixels
        self.processor.image_min_pixels = settings.image_min_pixels
        self.tokenizer = self.processor.tokenizer
        self.template = get_template_and_fix_tokenizer(self.tokenizer, DataArguments(template=settings.template))

    def __call__(self, sample: SftSample) -> int:
        messages = sample.messages
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
        turns = messages[1:] if system is not None else messages
        expanded = self.template.mm_plugin.process_messages(turns, list(sample.images), [], [], self.processor)
        pairs = self.template.encode_multiturn(self.tokenizer, expanded, system, None)
        length = sum(len(prompt) + len(response) for prompt, response in pairs)
        return length + (1 if self.template.efficient_eos else 0)
