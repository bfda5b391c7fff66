"""Videos for an OpenAI-compatible server: a ``video_url`` part holding the clip's own frames as an MP4.

The MP4 is decoded back with :func:`deepeyes.videos.load_video` (PyAV, as vLLM's loader):
the same number of frames at the clip's rate, in order, the square where it was.
"""

from __future__ import annotations

import base64
import gc
from pathlib import Path

import pytest
from PIL import Image
from video_media import frame, square_left_edge

from deepeyes.chat import Message
from deepeyes.policies.openai import to_openai_messages
from deepeyes.policies.video import Mp4UrlCache, mp4_data_url
from deepeyes.videos import VideoClip, VideoSampling, load_video

MP4_PREFIX = "data:video/mp4;base64,"
#: Sampling that keeps every frame of a short file.
EVERY_FRAME = VideoSampling(fps=100.0, max_frames=100)


def _decode(url: str, folder: Path) -> VideoClip:
    assert url.startswith(MP4_PREFIX)
    path = folder / "sent.mp4"
    path.write_bytes(base64.b64decode(url[len(MP4_PREFIX) :]))
    return load_video(path, EVERY_FRAME)


def test_a_video_becomes_a_video_url_part_in_place_with_the_clips_frames(tmp_path: Path) -> None:
    clip = VideoClip("clip.mp4", [frame(i) for i in range(5)], [0.0, 0.5, 1.0, 1.5, 2.0])
    red = Image.new("RGB", (8, 8), "red")
    (system, user) = to_openai_messages([Message("system", "sys"), Message("user", "see <image> then <video> now", [red], [clip])])
    assert system == {"role": "system", "content": "sys"}
    assert [p["type"] for p in user["content"]] == ["text", "image_url", "text", "video_url", "text"]
    sent = _decode(user["content"][3]["video_url"]["url"], tmp_path)
    assert len(sent.frames) == 5 and sent.frames[0].size == (64, 48)
    assert sent.timestamps == pytest.approx(clip.timestamps)  # the clip's rate travels in the container
    assert [square_left_edge(f) for f in sent.frames] == [square_left_edge(f) for f in clip.frames]


def test_odd_sides_are_padded_and_a_folders_mixed_sizes_take_the_first(tmp_path: Path) -> None:
    clip = VideoClip("<frames>", [frame(0).resize((63, 47)), frame(1), frame(2).resize((30, 30))], [0.0, 1.0, 2.0])
    sent = _decode(mp4_data_url(clip), tmp_path)
    assert len(sent.frames) == 3 and {f.size for f in sent.frames} == {(64, 48)}
    assert sent.timestamps == pytest.approx([0.0, 1.0, 2.0])


def test_the_cache_encodes_a_clip_once_and_forgets_it_with_the_clip() -> None:
    cache = Mp4UrlCache()
    clip = VideoClip("<in-memory>", [frame(i) for i in range(3)], [0.0, 0.5, 1.0])
    other = VideoClip("<in-memory>", [frame(i) for i in range(3, 6)], [0.0, 0.5, 1.0])
    first = cache(clip)
    assert cache(clip) is first and len(cache) == 1  # every later turn reuses the encoding
    assert cache(other) != first and len(cache) == 2
    del clip
    gc.collect()
    assert len(cache) == 1
