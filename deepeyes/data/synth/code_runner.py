"""Run one code block in this (fresh) interpreter, as the sandbox would see it.

Usage: ``python code_runner.py IMAGE_PATH DISPLAY_DIR [FPS VIDEO_DIR ...] < code.py``

``image_1`` is preloaded from IMAGE_PATH as a PIL image (as the sandbox kernel does; ``-``:
a question without an image); each VIDEO_DIR, a folder of frame PNGs sampled at FPS,
becomes ``video_<i>_frames`` (PIL images in name order) and ``video_<i>_times`` (seconds,
frame ``k`` at ``k / FPS``), the names the kernel preloads for a video. ``display(obj)`` saves PIL
images as numbered PNGs in DISPLAY_DIR (anything else is printed), mirroring how the
Jupyter sandbox hands figures back. Stdout and stderr are the process's own streams, so
what the generator records is exactly what the code printed. Kept free of ``deepeyes``
imports so the process starts clean.
"""

import sys
import traceback
from pathlib import Path

from PIL import Image

PNG_COMPRESS_LEVEL = 6  # same as deepeyes.data.formats, so shown images encode reproducibly


def main() -> int:
    image_path, display_dir = Path(sys.argv[1]), Path(sys.argv[2])
    code = sys.stdin.read()
    shown: list[Path] = []

    def display(obj: object) -> None:
        if isinstance(obj, Image.Image):
            path = display_dir / f"{len(shown):03d}.png"
            obj.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
            shown.append(path)
        else:
            print(obj)

    namespace: dict[str, object] = {"__name__": "__main__", "display": display}
    if str(image_path) != "-":
        image_1 = Image.open(image_path)  # loaded as the sandbox kernel loads it
        image_1.load()
        namespace["image_1"] = image_1
    if len(sys.argv) > 3:
        fps = float(sys.argv[3])
        for number, folder in enumerate(sys.argv[4:], start=1):
            frames = [Image.open(path).convert("RGB") for path in sorted(Path(folder).glob("*.png"))]
            namespace[f"video_{number}_frames"] = frames
            namespace[f"video_{number}_times"] = [k / fps for k in range(len(frames))]
    try:
        exec(compile(code, "<code>", "exec"), namespace)  # noqa: S102 - running the block is the point
    except Exception:  # noqa: BLE001 - the traceback is the observation, as in the sandbox
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
