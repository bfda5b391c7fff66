"""Video questions about moving shapes: direction of motion, frames where a shape appears, order of appearance.

Opt-in (``--video_rows`` / ``--eval_video`` of the generator). Each sample is a tiny clip
(64×48 px, 6 or 8 frames, flat palette colours on a pastel ground) whose answer no single
frame holds: the motion needs two frames, the count and the order need all of them. The
recorded code reads the frames the code tool's kernel preloads (``video_1_frames``, a list
of PIL images in time order) with colour masks, as the counting task reads ``image_1``;
the generator runs it and checks it prints the ground truth.

Frames are written losslessly (PNG folders), so the colour masks the code uses read back
exactly what was drawn.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from deepeyes.data.synth.drawing import PALETTE, new_canvas, pastel
from deepeyes.data.synth.sample import ToolStep, draw_on_side, numeric_distractors
from deepeyes.data.synth.tasks.counting import KINDS, draw_shape

WIDTH, HEIGHT = 64, 48
#: Side of every shape, in pixels.
SHAPE = 9
#: Seconds per frame is ``1 / FPS``: frame folders are read as sampled at this rate
#: (:data:`deepeyes.videos.DEFAULT_FPS`, so no frame is thinned at the default sampling).
FPS = 2.0
FRAME_COUNTS = (6, 8)
#: A colour-mask pixel count below this is noise, not a shape.
MIN_PIXELS = 4
TOLERANCE = 40
DIRECTIONS = ("left", "right", "up", "down")
_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass
class VideoSample:
    """One video question before it is written: frames, question, ground truth and the code step."""

    task: str
    question: str
    answer: str
    frames: list[Image.Image]
    step: ToolStep
    final_thought: str
    #: The values that place the question on one side of the train / held-out partition.
    values: tuple
    distractors: list[str] = field(default_factory=list)

    @property
    def required_tools(self) -> list[str]:
        return ["code"]


def _mask(rgb: str, frame: str) -> str:
    """Code for the colour mask of ``frame`` (an expression) around ``rgb`` (a list literal or a name)."""
    return f"(np.abs(np.asarray({frame}, dtype=int) - {rgb}).max(-1) < {TOLERANCE})"


def _blank(rng: random.Random, count: int) -> list[tuple[Image.Image, object]]:
    ground = pastel(rng)
    return [new_canvas(WIDTH, HEIGHT, ground) for _ in range(count)]


def _box(x: int, y: int) -> tuple[int, int, int, int]:
    return (x, y, x + SHAPE, y + SHAPE)


def _free_spots(rng: random.Random, count: int, taken: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """``count`` shape boxes apart from each other and from ``taken`` (a 3 px gap)."""
    boxes = list(taken)
    found: list[tuple[int, int, int, int]] = []
    while len(found) < count:
        box = _box(rng.randint(2, WIDTH - SHAPE - 2), rng.randint(2, HEIGHT - SHAPE - 2))
        if all(box[2] + 3 < b[0] or b[2] + 3 < box[0] or box[3] + 3 < b[1] or b[3] + 3 < box[1] for b in boxes):
            boxes.append(box)
            found.append(box)
    return found


def _motion_values(rng: random.Random) -> tuple:
    return "video_motion", rng.choice(sorted(PALETTE)), rng.choice(KINDS), rng.choice(DIRECTIONS)


def build_motion(rng: random.Random, heldout: bool) -> VideoSample:
    """One shape moves 3-4 px a frame in one direction; a shape of another colour stays put."""
    values = draw_on_side(rng, heldout, _motion_values)
    _, color, kind, direction = values
    count, speed = rng.choice(FRAME_COUNTS), rng.randint(3, 4)
    dx, dy = _STEP[direction]
    span = speed * (count - 1)
    # start so that the whole path stays inside the frame
    x = rng.randint(2 + span * (dx < 0), WIDTH - SHAPE - 2 - span * (dx > 0))
    y = rng.randint(2 + span * (dy < 0), HEIGHT - SHAPE - 2 - span * (dy > 0))
    path = [_box(x + dx * speed * i, y + dy * speed * i) for i in range(count)]
    sweep = (min(b[0] for b in path), min(b[1] for b in path), max(b[2] for b in path), max(b[3] for b in path))
    (still,) = _free_spots(rng, 1, [sweep])
    other = rng.choice([c for c in sorted(PALETTE) if c != color])
    other_kind = rng.choice(KINDS)
    canvases = _blank(rng, count)
    for (_, draw), box in zip(canvases, path, strict=True):
        draw_shape(draw, other_kind, still, PALETTE[other])
        draw_shape(draw, kind, box, PALETTE[color])
    code = "\n".join(
        [
            "import numpy as np",
            "def centre(frame):",
            f"    ys, xs = np.nonzero{_mask(str(list(PALETTE[color])), 'frame')}",
            "    return xs.mean(), ys.mean()",
            "(x0, y0), (x1, y1) = centre(video_1_frames[0]), centre(video_1_frames[-1])",
            'horizontal = "right" if x1 > x0 else "left"',
            'vertical = "down" if y1 > y0 else "up"',
            f'print("the {color} {kind} moves", horizontal if abs(x1 - x0) > abs(y1 - y0) else vertical)',
        ]
    )
    things = f"{color} {kind}"
    question = rng.choice([f"In which direction does the {things} move in the video?", f"Which way is the {things} moving?"])
    return VideoSample(
        task="video_motion",
        question=question,
        answer=direction,
        frames=[image for image, _ in canvases],
        step=ToolStep(
            tool="code_execution",
            thought=f"I will compare where the {things} is in the first and the last frame with code.",
            input=code,
            expected_stdout=f"the {things} moves {direction}\n",
        ),
        final_thought=f"The code found that the {things} moves {direction}.",
        values=values,
        distractors=[d for d in DIRECTIONS if d != direction],
    )


def _count_values(rng: random.Random) -> tuple:
    count = rng.choice(FRAME_COUNTS)
    return "video_count", rng.choice(sorted(PALETTE)), count, rng.randint(1, count - 1)


def build_count(rng: random.Random, heldout: bool) -> VideoSample:
    """A shape of one colour shows in some frames only (it may jump); two other shapes stay."""
    values = draw_on_side(rng, heldout, _count_values)
    _, color, count, shown = values
    visible = set(rng.sample(range(count), shown))
    others = rng.sample([c for c in sorted(PALETTE) if c != color], 2)
    fixed = _free_spots(rng, 2, [])
    kinds = [rng.choice(KINDS) for _ in range(3)]
    canvases = _blank(rng, count)
    for i, (_, draw) in enumerate(canvases):
        for box, other, kind in zip(fixed, others, kinds[:2], strict=True):
            draw_shape(draw, kind, box, PALETTE[other])
        if i in visible:
            (box,) = _free_spots(rng, 1, fixed)
            draw_shape(draw, kinds[2], box, PALETTE[color])
    code = "\n".join(
        [
            "import numpy as np",
            f"seen = [int({_mask(str(list(PALETTE[color])), 'frame')}.sum() >= {MIN_PIXELS}) for frame in video_1_frames]",
            f'print("frames with the {color} shape:", sum(seen), "of", len(seen))',
        ]
    )
    question = rng.choice(
        [f"In how many frames of the video does the {color} shape appear?", f"Count the frames in which the {color} shape is visible."]
    )
    return VideoSample(
        task="video_count",
        question=question,
        answer=str(shown),
        frames=[image for image, _ in canvases],
        step=ToolStep(
            tool="code_execution",
            thought=f"The {color} shape comes and goes, so I will check every frame for it with code.",
            input=code,
            expected_stdout=f"frames with the {color} shape: {shown} of {count}\n",
        ),
        final_thought=f"The code found the {color} shape in {shown} frames.",
        values=values,
        distractors=numeric_distractors(shown, (1, -1, 2, -2, 3)),
    )


def _order_values(rng: random.Random) -> tuple:
    return "video_order", tuple(rng.sample(sorted(PALETTE), 4)), rng.choice(("first", "last"))


def build_order(rng: random.Random, heldout: bool) -> VideoSample:
    """Four shapes of four colours appear one after another (each stays once it is there)."""
    values = draw_on_side(rng, heldout, _order_values)
    _, order, which = values
    count = rng.choice(FRAME_COUNTS)
    starts = sorted(rng.sample(range(count), 4))
    boxes = _free_spots(rng, 4, [])
    kinds = [rng.choice(KINDS) for _ in order]
    canvases = _blank(rng, count)
    for i, (_, draw) in enumerate(canvases):
        for color, start, box, kind in zip(order, starts, boxes, kinds, strict=True):
            if i >= start:
                draw_shape(draw, kind, box, PALETTE[color])
    asked = sorted(order)  # the question lists the colours alphabetically, not in their order
    answer = order[0] if which == "first" else order[-1]
    pick = "min" if which == "first" else "max"
    code = "\n".join(
        [
            "import numpy as np",
            f"colours = {{{', '.join(f'{name!r}: {list(PALETTE[name])}' for name in asked)}}}",
            "def first_frame(rgb):",
            f"    return next(i for i, frame in enumerate(video_1_frames) if {_mask('rgb', 'frame')}.sum() >= {MIN_PIXELS})",
            "appears = {name: first_frame(rgb) for name, rgb in colours.items()}",
            "print(\"first frames:\", appears)",
            f'print("appears {which}:", {pick}(appears, key=appears.get))',
        ]
    )
    first = {color: start for color, start in zip(order, starts, strict=True)}
    listed = ", ".join(asked[:-1]) + f" or {asked[-1]}"
    question = f"Which shape appears {which} in the video: the {listed} one?"
    return VideoSample(
        task="video_order",
        question=question,
        answer=answer,
        frames=[image for image, _ in canvases],
        step=ToolStep(
            tool="code_execution",
            thought=f"I will find the first frame in which each colour shows with code and pick the {which}.",
            input=code,
            expected_stdout=f"first frames: { {name: first[name] for name in asked} }\nappears {which}: {answer}\n",
        ),
        final_thought=f"The {answer} shape appears {which}.",
        values=values,
        distractors=[c for c in asked if c != answer],
    )


VideoBuilder = Callable[[random.Random, bool], VideoSample]
VIDEO_BUILDERS: dict[str, VideoBuilder] = {"video_motion": build_motion, "video_count": build_count, "video_order": build_order}
