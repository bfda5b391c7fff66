"""Checks every SFT sample must pass before it reaches LLaMA-Factory.

LLaMA-Factory skips a malformed conversation with a log line and silently truncates one
that is too long, so a bad sample either vanishes or teaches a half-finished turn. These
checks run first and name each defect, so the converter can exclude the sample *and* list
it in the report (or refuse the whole run with ``--strict``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from deepeyes import wire
from deepeyes.data.sft_length import SequenceLength
from deepeyes.data.sft_sample import SftSample
from deepeyes.data.video import VideoChecker
from deepeyes.wire import parse_action

# Defect classes, as they appear in the report.
# (The video classes, ``video_missing`` and ``video_unreadable``, live in :mod:`deepeyes.data.video`.)
UNREADABLE_RECORD = "unreadable_record"
DUPLICATE_ID = "duplicate_id"
BAD_ROLES = "bad_roles"
IMAGE_MISSING = "image_missing"
IMAGE_UNREADABLE = "image_unreadable"
PLACEHOLDER_MISMATCH = "placeholder_mismatch"
UNBALANCED_TAGS = "unbalanced_tags"
INVALID_ACTION = "invalid_action"
OVER_CUTOFF = "over_cutoff"
#: The token count itself failed (the processor rejected the sample's media).
LENGTH_CHECK_FAILED = "length_check_failed"

#: Tags whose open/close pairs must match in every assistant turn.
BALANCED_TAGS = ("think", "code", "tool_call", "answer")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    sample_id: str
    source: str
    index: int
    kind: str
    detail: str


class ImageChecker:
    """Opens each distinct image once (samples share images) and remembers the verdict."""

    def __init__(self) -> None:
        self._verdicts: dict[Path, tuple[str, str] | None] = {}

    def check(self, path: str) -> tuple[str, str] | None:
        """``None`` when ``path`` is a readable image, else ``(kind, detail)``."""
        if _URL.match(path):
            return IMAGE_MISSING, f"{path}: URLs are not fetched (nothing downloads at run time); use local files"
        resolved = Path(path)
        if resolved not in self._verdicts:
            self._verdicts[resolved] = self._open(resolved)
        return self._verdicts[resolved]

    @staticmethod
    def _open(path: Path) -> tuple[str, str] | None:
        if not path.is_file():
            return IMAGE_MISSING, f"{path}: no such file"
        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # what PIL raises for bad files
            return IMAGE_UNREADABLE, f"{path}: {type(exc).__name__}: {exc}"
        return None


def structure_problems(sample: SftSample) -> list[tuple[str, str]]:
    """Role order, image and video placeholders, tag balance and actions, as ``(kind, detail)`` pairs."""
    problems = []
    roles_problem = _roles_problem([m["role"] for m in sample.messages])
    if roles_problem:
        problems.append((BAD_ROLES, roles_problem))
    for placeholder, media, noun in ((wire.IMAGE_PLACEHOLDER, sample.images, "image"), (wire.VIDEO_PLACEHOLDER, sample.videos, "video")):
        placeholders = sum(m["content"].count(placeholder) for m in sample.messages)
        if placeholders != len(media):
            problems.append((PLACEHOLDER_MISMATCH, f"{placeholders} {placeholder} placeholder(s) but {len(media)} {noun}(s)"))
    for turn, message in enumerate(sample.messages):
        if message["role"] != "assistant":
            continue
        for tag in BALANCED_TAGS:
            if not _balanced(message["content"], tag):
                problems.append((UNBALANCED_TAGS, f"message {turn}: <{tag}> and </{tag}> do not pair up"))
        action = parse_action(message["content"])
        if action.kind == "invalid":
            problems.append((INVALID_ACTION, f"message {turn}: {action.reason}"))
    return problems


def _roles_problem(roles: list[str]) -> str | None:
    """LLaMA-Factory's ShareGPT reader needs: optional system, then user/assistant strictly
    alternating, ending on assistant (tool observations are user turns here)."""
    body = roles[1:] if roles and roles[0] == "system" else roles
    if not body:
        return "no user/assistant turns"
    for position, role in enumerate(body):
        expected = "user" if position % 2 == 0 else "assistant"
        if role != expected:
            return f"turn {position} is '{role}', expected '{expected}' (after an optional leading system turn)"
    if body[-1] != "assistant":
        return "the conversation must end with an assistant turn"
    return None


def _balanced(text: str, tag: str) -> bool:
    depth = 0
    for match in re.finditer(rf"<(/?){tag}>", text):
        depth += -1 if match.group(1) else 1
        if depth not in (0, 1):
            return False
    return depth == 0


def validate(
    samples: list[SftSample],
    image_checker: ImageChecker,
    video_checker: VideoChecker,
    count_tokens: Callable[[SftSample], SequenceLength] | None,
    cutoff_len: int,
    show_progress: bool = False,
) -> dict[int, list[Problem]]:
    """Problems keyed by the sample's position in ``samples`` (duplicates share an id, so
    the id cannot be the key); only samples with problems appear. The token count runs
    last and only on otherwise sound samples: it has to open the images and videos."""
    found: dict[int, list[Problem]] = {}
    seen: set[str] = set()
    for position, sample in enumerate(tqdm(samples, desc="validating", unit="sample", disable=not show_progress)):
        issues = [Problem(sample.id, sample.source, sample.index, kind, detail) for kind, detail in structure_problems(sample)]
        if sample.id in seen:
            issues.append(Problem(sample.id, sample.source, sample.index, DUPLICATE_ID, f"id '{sample.id}' already used by an earlier sample"))
        seen.add(sample.id)
        for image in sample.images:
            verdict = image_checker.check(image)
            if verdict:
                issues.append(Problem(sample.id, sample.source, sample.index, *verdict))
        for position_in_sample, video in enumerate(sample.videos):
            verdict = video_checker.check(video)
            if verdict:
                issues.append(Problem(sample.id, sample.source, sample.index, verdict[0], f"video {position_in_sample}: {verdict[1]}"))
        if not issues and count_tokens is not None:
            issues.extend(_length_problems(sample, count_tokens, cutoff_len))
        if issues:
            found[position] = issues
    return found


def _length_problems(sample: SftSample, count_tokens: Callable[[SftSample], SequenceLength], cutoff_len: int) -> list[Problem]:
    """The over-length problem (naming how many tokens the images and videos take), or
    the reason the count failed. Any exception is caught: the count runs LLaMA-Factory's
    plugin and the processor over user media, and one sample they reject must be
    reported, not end the run."""
    try:
        length = count_tokens(sample)
    except Exception as exc:  # noqa: BLE001 - third-party code over user data; reported per sample
        return [Problem(sample.id, sample.source, sample.index, LENGTH_CHECK_FAILED, f"{type(exc).__name__}: {exc}")]
    if length.total <= cutoff_len:
        return []
    detail = (
        f"{length.total} tokens > cutoff_len {cutoff_len} "
        f"({length.image_tokens} image token(s), {length.video_tokens} video token(s))"
    )
    return [Problem(sample.id, sample.source, sample.index, OVER_CUTOFF, detail)]
