"""The conversation a policy sees: messages whose text uses ``<image>`` and ``<video>`` placeholders.

One placeholder per attached image, in order — the convention of the DeepEyesV2 ShareGPT
data — and one ``<video>`` per attached video (LLaMA-Factory's convention), so a
conversation converts to LLaMA-Factory, HF processors and OpenAI-style requests without
guessing where images and videos go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

from deepeyes.videos import VideoClip
from deepeyes.wire import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER

Role = Literal["system", "user", "assistant"]
_PLACEHOLDERS = re.compile(f"({re.escape(IMAGE_PLACEHOLDER)}|{re.escape(VIDEO_PLACEHOLDER)})")


@dataclass
class Message:
    role: Role
    content: str
    images: list[Image.Image] = field(default_factory=list)
    videos: list[VideoClip] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.role == "assistant" and not self.images and not self.videos:
            return  # model text: a literal "<image>" it writes is just text
        for placeholder, media, noun in ((IMAGE_PLACEHOLDER, self.images, "image"), (VIDEO_PLACEHOLDER, self.videos, "video")):
            placeholders = self.content.count(placeholder)
            if placeholders != len(media):
                raise ValueError(f"{self.role} message has {placeholders} {placeholder} placeholder(s) but {len(media)} {noun}(s)")

    def segments(self) -> list[str | Image.Image | VideoClip]:
        """Text, images and videos interleaved in reading order (empty text pieces dropped)."""
        if not self.images and not self.videos:
            return [self.content] if self.content else []
        pieces: list[str | Image.Image | VideoClip] = []
        images, videos = iter(self.images), iter(self.videos)
        for piece in _PLACEHOLDERS.split(self.content):
            if piece == IMAGE_PLACEHOLDER:
                pieces.append(next(images))
            elif piece == VIDEO_PLACEHOLDER:
                pieces.append(next(videos))
            elif piece:
                pieces.append(piece)
        return pieces


def all_images(messages: list[Message]) -> list[Image.Image]:
    return [image for message in messages for image in message.images]


def all_videos(messages: list[Message]) -> list[VideoClip]:
    return [video for message in messages for video in message.videos]
