"""How a :class:`~deepeyes.videos.VideoClip` is handed to a model: fitted frames or an MP4.

Both policies send the frames the clip holds, never a re-sampling of its source, so the
model sees exactly the frames the tools and the trajectory record name (and the context
budget counts):

- :func:`fit_clip` puts every frame of a clip on Qwen2.5-VL's 28-px grid at one size, the
  first frame's within the pixel bounds. The video processor stacks a clip's frames into
  one tensor (they must share a size) and would resize them to its grid anyway; a front end
  applies a request's ``VideoSampling.max_pixels`` when it decodes the clip
  (:func:`deepeyes.videos.load_video`).
- :func:`processor_metadata` tells the HF processor the clip's sampled rate, from which it
  derives ``second_per_grid_ts``, the seconds each temporal patch spans, for Qwen2.5-VL's
  absolute-time M-RoPE (without it the processor assumes 24 fps).
- :func:`mp4_data_url` encodes the frames as an MP4 at the clip's sampled rate, the
  ``video_url`` form vLLM's OpenAI server decodes (``data:video/mp4;base64,…``); the server
  then reads the rate from the container.
"""

from __future__ import annotations

import base64
import io
import threading
import weakref
from fractions import Fraction

import av
import numpy as np
from PIL import Image
from transformers.video_utils import VideoMetadata

from deepeyes.images import prepare_for_qwen
from deepeyes.videos import VideoClip

#: Encoder of :func:`mp4_data_url`: H.264 where PyAV's FFmpeg has it, else MPEG-4 part 2
#: (both decode in vLLM's PyAV and OpenCV video loaders).
MP4_CODEC = "libx264" if "libx264" in av.codecs_available else "mpeg4"
#: H.264 settings: ``ultrafast`` encodes 16 noisy 640x480 frames in 0.7 s where the default
#: preset took 8 s on the project's loaded 2-core machine; CRF 18 keeps the frames visually intact.
_X264_OPTIONS = {"preset": "ultrafast", "crf": "18"}
#: Denominator bound of the frame rate written into the MP4 (a container rate is a fraction).
_RATE_DENOMINATOR = 1000


def fit_clip(clip: VideoClip, min_pixels: int, max_pixels: int) -> VideoClip:
    """``clip`` with every frame at the first frame's size on Qwen's 28-px grid, area in ``[min_pixels, max_pixels]``.

    Returns ``clip`` itself when its frames already have that size (nothing is copied);
    otherwise a new clip with the same source and timestamps.

    Raises:
        deepeyes.images.ImageLoadError: the frames' aspect ratio is past Qwen2.5-VL's limit (200).
    """
    first = prepare_for_qwen(clip.frames[0], min_pixels, max_pixels)
    size = first.size
    if all(frame.size == size for frame in clip.frames):
        return clip
    frames = [frame if frame.size == size else frame.resize(size, Image.Resampling.BICUBIC) for frame in clip.frames]
    return VideoClip(clip.source, frames, list(clip.timestamps))


def processor_metadata(clip: VideoClip) -> VideoMetadata:
    """The ``video_metadata`` entry of ``clip`` for a Qwen2.5-VL processor: all its frames, at its sampled rate."""
    count = len(clip.frames)
    return VideoMetadata(total_num_frames=count, fps=clip.sampled_fps, frames_indices=list(range(count)))


def mp4_bytes(clip: VideoClip) -> bytes:
    """The clip's frames as an MP4 (:data:`MP4_CODEC`, yuv420p) at its sampled rate, frame ``i`` at ``i / rate``.

    Every frame takes the first frame's size; yuv420p needs even sides, so an odd side is
    padded by one black pixel row or column.
    """
    width, height = clip.frames[0].size
    even = (width + width % 2, height + height % 2)
    rate = Fraction(clip.sampled_fps).limit_denominator(_RATE_DENOMINATOR)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(MP4_CODEC, rate=rate, options=_X264_OPTIONS if MP4_CODEC == "libx264" else {})
        stream.width, stream.height, stream.pix_fmt = even[0], even[1], "yuv420p"
        for index, frame in enumerate(clip.frames):
            canvas = Image.new("RGB", even)
            canvas.paste(frame.convert("RGB").resize((width, height)))  # a folder's frames may differ in size
            picture = av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24")
            picture.pts = index
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def mp4_data_url(clip: VideoClip) -> str:
    """``data:video/mp4;base64,…`` of :func:`mp4_bytes` (vLLM's ``video_url`` content part)."""
    return "data:video/mp4;base64," + base64.b64encode(mp4_bytes(clip)).decode("ascii")


class Mp4UrlCache:
    """:func:`mp4_data_url` of each clip, encoded once while the clip lives.

    Every turn resends the whole conversation, and with it the same clip objects; an entry
    is dropped when its clip is garbage-collected (clips are compared by identity: a
    :class:`VideoClip` is mutable and unhashable). Safe to call from several threads; two
    threads meeting a new clip at once may both encode it, and one result is kept.
    """

    def __init__(self) -> None:
        self._urls: dict[int, str] = {}
        self._lock = threading.Lock()

    def __call__(self, clip: VideoClip) -> str:
        key = id(clip)
        with self._lock:
            url = self._urls.get(key)
        if url is not None:
            return url
        url = mp4_data_url(clip)
        with self._lock:
            if key not in self._urls:
                self._urls[key] = url
                weakref.finalize(clip, self._urls.pop, key, None)
        return url

    def __len__(self) -> int:
        return len(self._urls)
