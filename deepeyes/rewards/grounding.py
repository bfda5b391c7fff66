"""The grounding reward: a box answer scored by its overlap (IoU) with the true box.

Referring-expression comprehension (REC: "the red cup on the left" → a box) is scored as
VLM-R1 scores it (``grpo_rec.py``, ``iou_reward`` and ``format_reward``): the accuracy
reward is 1 when the IoU of the answer's box with the true box passes 0.5, else 0, and a
format reward is added. Here the threshold is inclusive (IoU ≥ 0.5, the REC benchmarks'
Acc@0.5; VLM-R1 writes ``> 0.5``, which differs only at exactly 0.5), and
``GroundingConfig.continuous`` pays the IoU itself instead.

Frames. The true box is ``[x1, y1, x2, y2]`` in original-image pixels (as a list, its JSON
text, or Qwen2.5-VL's ``{"bbox_2d": …}`` text); the model answers in the frame of the image
it saw. When the request carries that frame (``image_frame``: ``{"original": [w, h],
"processed": [w, h]}``, recorded by the data conversion in the row's ``extra_info`` and kept
as trajectory metadata) the answer is clipped to the processed image and converted to
original pixels by :class:`deepeyes.images.ImageFrame`, the one conversion; without one
(the reward server's text route, which has no image) both boxes compare as given.

Every answer gets a defined score, never an exception: no box, a malformed box (wrong
length, non-numeric, non-finite; :func:`deepeyes.wire.boxes.parse_box`), an inverted or
degenerate box, and one wholly outside the image all score 0 with the reason recorded; a
box partly outside is clipped to the image first. A ground truth that is no valid box is a
data error (:class:`~deepeyes.rewards.payload.PayloadError`, HTTP 400 on the server).

Which rows: a row is a grounding row when its ``data_source`` names a REC data set
(:func:`is_grounding_source`: VLM-R1's ``refcoco``, ``refcoco+``, ``refcocog``, ``refgta``,
``rec``, with split suffixes such as ``refcoco_val``, and any name with a ``grounding``
part, as the synthetic ``DeepEyesMini_Grounding``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from deepeyes.images import ImageFrame
from deepeyes.rewards.accuracy import AccuracyResult
from deepeyes.rewards.config import GroundingConfig
from deepeyes.rewards.payload import PayloadError, ScoreRequest
from deepeyes.wire.boxes import Box, box_problem, parse_box

#: ``data_source`` parts that mark a grounding row (VLM-R1's data set names, ours, and
#: the ``refcocop`` spelling VLM-R1's file names use for RefCOCO+).
GROUNDING_SOURCE_PARTS: frozenset[str] = frozenset({"refcoco", "refcoco+", "refcocop", "refcocog", "refgta", "rec", "grounding"})
@dataclass(frozen=True)
class GroundingResult:
    """One graded box answer; boxes in original-image pixels (or the frame given)."""

    iou: float
    correct: bool
    #: ``iou`` (a box was compared), ``no_answer``, ``malformed`` (no usable box).
    method: str
    score: float
    reason: str | None = None
    predicted: Box | None = None
    truth: Box | None = None


def is_grounding_source(data_source: str | None) -> bool:
    """True when ``data_source`` names a grounding data set: one of its ``_``-separated parts
    (case-insensitive) is in :data:`GROUNDING_SOURCE_PARTS` (``refcoco``, ``RefCOCO+_testA``,
    ``refcocog_val``, ``rec``, ``DeepEyesMini_Grounding``)."""
    if not data_source:
        return False
    return any(part in GROUNDING_SOURCE_PARTS for part in data_source.lower().replace("-", "_").split("_"))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes ``(x1, y1, x2, y2)`` (continuous areas, so a box
    and itself give 1.0 whatever its size); 0.0 when either is empty or inverted."""
    if a[2] <= a[0] or a[3] <= a[1] or b[2] <= b[0] or b[3] <= b[1]:
        return 0.0
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, width) * max(0.0, height)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def clip_box(box: Box, size: tuple[float, float]) -> Box:
    """``box`` cut to an image of ``size`` (width, height)."""
    return (max(0.0, box[0]), max(0.0, box[1]), min(float(size[0]), box[2]), min(float(size[1]), box[3]))


def truth_boxes(ground_truths: list[str]) -> list[Box]:
    """The true box(es) of a request's ground truths.

    Forms: one text (``"[10, 20, 110, 220]"``, ``'{"bbox_2d": [...]}'``); four numbers (a list
    ``[10, 20, 110, 220]`` arrives as four texts, see
    :func:`deepeyes.rewards.payload._ground_truths`); several box texts (any may match).

    Raises:
        PayloadError: a ground truth is no valid box (malformed, inverted or degenerate).
    """
    if len(ground_truths) == 4 and all(_is_number(g) for g in ground_truths):
        texts = ["[" + ", ".join(ground_truths) + "]"]
    else:
        texts = ground_truths
    boxes = []
    for text in texts:
        parsed = parse_box(text)
        problem = parsed.error or (box_problem(parsed.box) if parsed.box else "no box")
        if parsed.box is None or problem:
            raise PayloadError(f"'ground_truth' of a grounding row must be a box [x1, y1, x2, y2]; {text[:80]!r}: {problem}")
        boxes.append(parsed.box)
    return boxes


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def frame_from(value: Any) -> ImageFrame | None:
    """An :class:`ImageFrame` from a request's ``image_frame`` (None passes through).

    Raises:
        PayloadError: ``value`` is not ``{"original": [w, h], "processed": [w, h]}``.
    """
    if value is None or isinstance(value, ImageFrame):
        return value
    if not isinstance(value, dict):
        raise PayloadError(f"'image_frame' must be {{'original': [w, h], 'processed': [w, h]}}, got {value!r}")
    try:
        return ImageFrame.from_dict(value)
    except ValueError as exc:
        raise PayloadError(f"'image_frame': {exc}") from exc


def grade_box(
    answer: str | None, ground_truths: list[str], config: GroundingConfig | None = None, frame: ImageFrame | None = None
) -> GroundingResult:
    """Grade a box answer (the ``<answer>`` text) against the true box(es).

    ``frame``: the image's frames; the answer is read in ``frame.processed`` and compared in
    original pixels. None: both boxes compare in the frame given, without clipping.
    Returns the best IoU over the true boxes; never raises for a bad answer (see module doc).
    """
    config = config or GroundingConfig()
    truths = truth_boxes(ground_truths)
    if answer is None or not answer.strip():
        return GroundingResult(0.0, False, "no_answer", 0.0, "no answer")
    parsed = parse_box(answer)
    if parsed.box is None:
        return GroundingResult(0.0, False, "malformed", 0.0, parsed.error)
    seen = frame.processed if frame else None
    problem = box_problem(parsed.box, seen)
    if problem:
        return GroundingResult(0.0, False, "malformed", 0.0, f"{problem} box {list(parsed.box)}", parsed.box)
    box = parsed.box
    reason = None
    if frame is not None:
        clipped = clip_box(box, frame.processed)
        if clipped != box:
            reason = f"clipped to the {frame.processed[0]}x{frame.processed[1]} image"
        box = frame.to_original(clipped)
    best = max(iou(box, truth) for truth in truths)
    truth = max(truths, key=lambda t: iou(box, t))
    correct = best >= config.iou_threshold
    score = best if config.continuous else float(correct)
    return GroundingResult(best, correct, "iou", score, reason, box, truth)


@dataclass
class BoxAccuracy(AccuracyResult):
    """The reward's accuracy component for a grounding row: an
    :class:`~deepeyes.rewards.accuracy.AccuracyResult` (answer type ``box``, no judge) plus the
    IoU and the boxes compared; its score is the IoU when the grading is continuous."""

    iou: float = 0.0
    continuous: bool = False
    predicted: Box | None = None
    truth: Box | None = None

    @property
    def score(self) -> float:
        return self.iou if self.continuous else float(self.correct)

    @property
    def malformed(self) -> bool:
        """The answer held no readable box: the reward counts it as a format fault."""
        return self.method == "malformed" and self.predicted is None

    def details(self) -> dict[str, Any]:
        """The reward details a grounding row adds: ``iou``, and the boxes compared."""
        return {
            "iou": round(self.iou, 6),
            "box": [round(v, 2) for v in self.predicted] if self.predicted else None,
            "true_box": list(self.truth) if self.truth else None,
        }


def box_accuracy(request: ScoreRequest, config: GroundingConfig) -> BoxAccuracy:
    """Grade a grounding request (its answer, ground truths and ``image_frame``)."""
    result = grade_box(request.answer, request.ground_truths, config, frame_from(request.image_frame))
    return BoxAccuracy(
        result.correct, "box", result.method, reason=result.reason, iou=result.iou,
        continuous=config.continuous, predicted=result.predicted, truth=result.truth,
    )


def is_grounding_request(request: ScoreRequest, preset: str) -> bool:
    """Whether ``request`` is graded by IoU: the ``grounding`` preset, a grounding ``data_source``,
    or answer type ``box``."""
    return preset == "grounding" or request.answer_type == "box" or is_grounding_source(request.data_source)
