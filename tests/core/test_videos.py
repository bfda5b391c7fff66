"""Videos as the loop sees them (:mod:`deepeyes.videos`): which frames are kept from a file,
a folder or a list, at what times, and the errors for what cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from video_media import square_left_edge, write_frames, write_mp4

from deepeyes.chat import Message
from deepeyes.videos import VideoClip, VideoLoadError, VideoSampling, load_video, sample_indices


def test_sample_indices_spread_evenly_and_respect_both_caps() -> None:
    assert sample_indices(8, 2.0, 2.0, 16) == [0, 2, 4, 7]  # 2 s at 2 fps: 4 frames, first to last
    assert sample_indices(8, 2.0, 100.0, 16) == list(range(8))  # never more than the file has
    assert sample_indices(100, 50.0, 2.0, 5) == [0, 24, 49, 74, 99]  # max_frames caps it
    assert sample_indices(0, 0.0, 2.0, 3) == [0, 1, 2]  # unknown length: the first max_frames


def test_file_keeps_sampled_frames_with_presentation_times(tmp_path: Path) -> None:
    clip = load_video(write_mp4(tmp_path / "clip.mp4", count=8, fps=4), VideoSampling(fps=2.0))
    assert len(clip.frames) == 4 and clip.source.endswith("clip.mp4")
    # Frames 0, 2, 4, 7 of a 4 fps file: shown at 0, 0.5, 1.0 and 1.75 s; the square has moved 4 px per frame.
    assert clip.timestamps == pytest.approx([0.0, 0.5, 1.0, 1.75])
    assert [square_left_edge(f) for f in clip.frames] == [4, 12, 20, 32]
    assert clip.describe() == {"source": clip.source, "frames": 4}


def test_folder_and_list_are_frames_already_sampled_at_fps(tmp_path: Path) -> None:
    paths = write_frames(tmp_path / "frames", count=6)
    from_folder = load_video(tmp_path / "frames", VideoSampling(fps=2.0, max_frames=3))
    assert from_folder.timestamps == pytest.approx([0.0, 1.0, 2.5])  # frames 0, 2, 5 at 2 fps
    assert [square_left_edge(f) for f in from_folder.frames] == [4, 12, 24]
    from_list = load_video([Image.open(p) for p in paths], VideoSampling(fps=1.0))
    assert len(from_list.frames) == 6 and from_list.source == "<in-memory>"
    assert from_list.timestamps == pytest.approx([0, 1, 2, 3, 4, 5])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp / "absent.mp4", "video not found"),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "holds no frame images"),
        (lambda tmp: (tmp / "broken.mp4").write_bytes(b"not a video at all" * 50) and tmp / "broken.mp4", "cannot decode"),
        (lambda tmp: "https://example.com/clip.mp4", "URLs are not fetched"),
        (lambda tmp: [], "has no frame"),
        (lambda tmp: [tmp / "missing.png"], "frame cannot be read"),
    ],
    ids=["missing", "empty-folder", "corrupt", "url", "empty-list", "missing-frame"],
)
def test_unreadable_videos_raise_one_error_naming_the_source(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(VideoLoadError, match=message):
        load_video(make(tmp_path))


def test_sampling_settings_are_checked() -> None:
    for bad in ({"fps": 0}, {"max_frames": 0}, {"max_pixels": 0}):
        with pytest.raises(ValueError):
            VideoSampling(**bad)


def test_message_interleaves_images_and_videos_by_placeholder(tmp_path: Path) -> None:
    clip = load_video(write_frames(tmp_path / "f", count=2))
    image = Image.new("RGB", (8, 8))
    message = Message("user", "<image>see<video>then?", [image], [clip])
    assert message.segments() == [image, "see", clip, "then?"]
    with pytest.raises(ValueError, match="1 <video> placeholder"):
        Message("user", "<video>", [], [])
    assert isinstance(clip, VideoClip)


def test_a_pixel_limit_scales_frames_down_for_every_source(tmp_path: Path) -> None:
    """``VideoSampling.max_pixels`` is applied where a video is decoded, so the service, the
    demo, RL rows and infer hand the loop the same frames (and a clip within it is untouched)."""
    limit = VideoSampling(max_pixels=28 * 28)
    for source in (write_mp4(tmp_path / "clip.mp4"), write_frames(tmp_path / "frames"), tmp_path / "frames"):
        width, height = load_video(source, limit).frames[0].size
        assert width * height <= 28 * 28 and width % 28 == 0 and height % 28 == 0
    within = load_video(tmp_path / "frames", VideoSampling(max_pixels=64 * 48))
    assert within.frames[0].size == (64, 48)
