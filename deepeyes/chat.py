"""The conversation a policy sees: messages whose text uses ``<image>`` placeholders.

One placeholder per attached image, in order — the convention of the DeepEyesV2 ShareGPT
data — so a conversation converts to LLaMA-Factory, HF processors and OpenAI-style
requests without guessing where images go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

from deepeyes.wire import IMAGE_PLACEHOLDER

Role = Literal["system", "user", "assistant"]


@dataclass
class Message:
    role: Role
    content: str
    images: list[Image.Image] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.role == "assistant" and not self.images:
            return  # model text: a literal "<image>" it writes is just text
        placeholders = self.content.count(IMAGE_PLACEHOLDER)
        if placeholders != len(self.images):
            raise ValueError(
                f"{self.role} message has {placeholders} {IMAGE_PLACEHOLDER} placeholder(s) but {len(self.images)} image(s)"
            )

    def segments(self) -> list[str | Image.Image]:
        """Text and images interleaved in reading order (empty text pieces dropped)."""
        if not self.images:
            return [self.content] if self.content else []
        pieces: list[str | Image.Image] = []
        texts = self.content.split(IMAGE_PLACEHOLDER)
        for index, text in enumerate(texts):
            if text:
                pieces.append(text)
            if index < len(self.images):
                pieces.append(self.images[index])
        return pieces


def all_images(messages: list[Message]) -> list[Image.Image]:
    return [image for message in messages for image in message.images]
