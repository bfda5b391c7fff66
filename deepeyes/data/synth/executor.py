"""Execute a code block in a fresh Python process and capture what it printed and showed.

SFT trajectories must be *real*: the observation recorded after a code block is what
that block prints when run. Each block runs in its own interpreter (no state leaks from
other samples), with only the task's image or video frames preloaded, so anyone can re-run
it and compare.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

RUNNER = Path(__file__).resolve().parent / "code_runner.py"


@dataclass
class ExecutionResult:
    stdout: str
    stderr: str
    returncode: int
    #: PNG bytes of every image passed to ``display``, in call order.
    images: list[bytes] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.stderr


def execute_code(
    code: str, image_path: Path | None, timeout_s: float = 60.0, video_dirs: Sequence[Path] = (), video_fps: float = 2.0
) -> ExecutionResult:
    """Run ``code`` in a new interpreter with ``image_1`` loaded from ``image_path`` (None: no
    image) and each folder of ``video_dirs`` (frame PNGs sampled at ``video_fps``) loaded as
    ``video_<i>_frames`` / ``video_<i>_times``.

    Raises:
        FileNotFoundError: the image or a frame folder does not exist.
    """
    if image_path is not None and not Path(image_path).is_file():
        raise FileNotFoundError(f"image for code execution not found: {image_path}")
    missing = [str(folder) for folder in video_dirs if not Path(folder).is_dir()]
    if missing:
        raise FileNotFoundError(f"video frame folder(s) for code execution not found: {missing}")
    videos = [str(video_fps), *(str(Path(folder).resolve()) for folder in video_dirs)] if video_dirs else []
    image_arg = "-" if image_path is None else str(Path(image_path).resolve())
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONIOENCODING="utf-8")
    with tempfile.TemporaryDirectory(prefix="deepeyes-synth-") as scratch:
        display_dir = Path(scratch)
        completed = subprocess.run(
            [sys.executable, str(RUNNER), image_arg, str(display_dir), *videos],
            input=code,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout_s,
            cwd=scratch,
            env=env,
            check=False,
        )
        images = [path.read_bytes() for path in sorted(display_dir.glob("*.png"))]
    return ExecutionResult(completed.stdout, completed.stderr, completed.returncode, images)
