"""Read benchmark TSVs in VLMEvalKit's conventions from ``LMUDATA``.

Columns: ``index``, ``question``, ``answer`` (required), ``image`` (base64, a Python-list
string of base64 images, or — VLMEvalKit's de-duplication — the ``index`` of another
row whose image it shares) or ``image_path`` (path or list of paths, relative to the TSV's
folder), optional ``category``, option columns ``A``…``J``, ``hint``, and ``image_index``
(the row's key in the image-search cache). Video rows follow VLMEvalKit's video datasets
(Video-MME, EgoExoBench): ``video`` names the clip and ``video_path`` (a path or list of
paths, relative to the TSV's folder) is a video file or a folder of frame images; such a row
needs no image. Every problem is reported as a
:class:`DatasetError` naming the file, the row and the column, because a benchmark TSV is
usually a multi-gigabyte download that users cannot inspect by eye.
"""

from __future__ import annotations

import ast
import base64
import binascii
import csv
import io
import logging
import string
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from deepeyes.evaluation.profiles import DatasetProfile, profile_for
from deepeyes.rewards.choices import choice_letter, option_by_text
from deepeyes.videos import FRAME_SUFFIXES

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("index", "question", "answer")
OPTION_LETTERS: tuple[str, ...] = tuple(string.ascii_uppercase[:10])  # A … J
#: VLMEvalKit stores a repeated image as the index of the row that holds it; real base64
#: images are far longer than any index.
_MAX_REFERENCE_LENGTH = 64
_MATHVISTA_TYPES = {"integer": "number", "float": "number", "text": "text", "list": "text"}


class DatasetError(ValueError):
    """A benchmark TSV is missing, unreadable or malformed; the message says where."""


@dataclass
class EvalSample:
    """One benchmark row, decoded and typed, ready to become an agent request."""

    dataset: str
    index: str
    row: int  # 1-based data row (the header is line 1, so the row is on line ``row + 1``)
    question: str
    answer: str
    #: What the reward's matcher should expect: choice | number | text | auto.
    answer_type: str
    category: str
    images: list[bytes] = field(default_factory=list)
    #: Where each image came from, for the trajectory record (a path or ``file.tsv#index``).
    image_sources: list[str] = field(default_factory=list)
    #: The row's videos (``video_path``): video files or frame folders, as absolute paths
    #: :func:`deepeyes.videos.load_video` decodes (``AgentRequest.videos``).
    videos: list[str] = field(default_factory=list)
    choices: dict[str, str] | None = None
    hint: str | None = None
    sample_index: str | None = None  # key into the image-search cache
    #: The tools the task needs (optional ``required_tools`` column, comma-separated; empty or
    #: ``none``: no tool), which behaviour analysis compares with the tools the model called.
    required_tools: list[str] | None = None
    #: CircularEval: how many places the options were rotated (0: as the TSV has them; see
    #: :mod:`deepeyes.evaluation.circular`).
    rotation: int = 0

    @property
    def id(self) -> str:
        base = f"{self.dataset}/{self.index}"
        return f"{base}@rot{self.rotation}" if self.rotation else base


def gold_option(sample: EvalSample) -> str | None:
    """The option letter a multiple-choice row's answer names, by letter or by option text.

    ``None`` for a row without options, and for one whose answer is neither one of its
    letters nor one of its option texts (a data fault :mod:`deepeyes.evaluation.guards`
    reports). The reward's own readers decide (``choice_letter``, ``option_by_text``), so the
    letter is the one scoring compares against.
    """
    if not sample.choices:
        return None
    letter = choice_letter(sample.answer)
    if letter is not None:
        return letter if letter in sample.choices else None
    return option_by_text(sample.answer, sample.choices)


def dataset_path(lmudata: str | Path, dataset: str) -> Path:
    """``LMUDATA/<dataset>.tsv`` — VLMEvalKit's layout."""
    return Path(lmudata) / f"{dataset}.tsv"


def load_dataset(dataset: str, lmudata: str | Path, max_samples: int | None = None) -> list[EvalSample]:
    """The first ``max_samples`` rows (all when ``None``) of ``LMUDATA/<dataset>.tsv``.

    Only the selected rows are decoded and validated, so a capped run over a large
    benchmark starts quickly; references to images in other rows are resolved from the
    whole file.
    """
    path = dataset_path(lmudata, dataset)
    frame = read_tsv(path)
    profile = profile_for(dataset)
    selected = frame if max_samples is None else frame.iloc[:max_samples]
    image_by_index = dict(zip(frame["index"], frame["image"], strict=True)) if "image" in frame.columns else {}
    seen: set[str] = set()
    samples = []
    for position, record in enumerate(selected.to_dict("records")):
        sample = _sample(dataset, path, position + 1, record, profile, image_by_index)
        if sample.index in seen:
            raise DatasetError(f"{path}: row {sample.row} (line {sample.row + 1}), column 'index': duplicate index {sample.index!r}")
        seen.add(sample.index)
        samples.append(sample)
    logger.info("%s: %d of %d rows selected", dataset, len(samples), len(frame))
    return samples


def read_tsv(path: Path) -> pd.DataFrame:
    """The TSV as strings (empty cells stay ``""``), with its required columns checked."""
    if not path.is_file():
        folder = path.parent
        present = sorted(p.stem for p in folder.glob("*.tsv")) if folder.is_dir() else []
        hint = f"; TSVs in {folder}: {', '.join(present)}" if present else f"; {folder} has no TSV files"
        raise DatasetError(f"dataset file not found: {path} (set LMUDATA to the folder holding <dataset>.tsv{hint})")
    csv.field_size_limit(2**31 - 1)  # base64 images of 8K benchmarks are single huge fields
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL, engine="c")
    except pd.errors.ParserError as exc:
        raise DatasetError(f"{path}: not a well-formed TSV: {exc}") from exc
    except (UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{path}: cannot be read as a UTF-8 TSV: {exc}") from exc
    frame = frame.fillna("")  # rows with fewer fields than the header: the missing cells are empty
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: missing required column(s) {missing} (columns present: {list(frame.columns)})")
    if not {"image", "image_path", "video_path"} & set(frame.columns):
        raise DatasetError(
            f"{path}: needs an 'image' (base64), 'image_path' or 'video_path' column (columns present: {list(frame.columns)})"
        )
    return frame


def _sample(
    dataset: str,
    path: Path,
    row: int,
    record: dict[str, str],
    profile: DatasetProfile,
    image_by_index: dict[str, str],
) -> EvalSample:
    def fail(column: str, problem: str) -> DatasetError:
        return DatasetError(f"{path}: row {row} (line {row + 1}, index={record.get('index', '?')!r}), column '{column}': {problem}")

    index = record["index"].strip()
    if not index:
        raise fail("index", "empty")
    question = record["question"].strip()
    if not question:
        raise fail("question", "empty")
    answer = record["answer"].strip()
    if not answer:
        raise fail("answer", "empty")
    options = {letter: record[letter].strip() for letter in OPTION_LETTERS if record.get(letter, "").strip()}
    answer_type, choices = _answer_type(profile, record, options, fail)
    videos = _videos(path, record, fail)
    images, sources = _images(path, record, image_by_index, fail, required=not videos)
    category_column = profile.category_column
    return EvalSample(
        dataset=dataset,
        index=index,
        row=row,
        question=question,
        answer=answer,
        answer_type=answer_type,
        category=record.get(category_column, "").strip() or "all",
        images=images,
        image_sources=sources,
        videos=videos,
        choices=choices,
        hint=record.get("hint", "").strip() or None,
        sample_index=record.get("image_index", "").strip() or None,
        required_tools=_required_tools(record.get("required_tools")),
    )


def _required_tools(cell: str | None) -> list[str] | None:
    """``None`` when the benchmark has no such column; else the listed tool names (maybe none)."""
    if cell is None:
        return None
    names = [name.strip() for name in cell.split(",") if name.strip()]
    return [] if names in ([], ["none"]) else names


def _answer_type(profile: DatasetProfile, record: dict[str, str], options: dict[str, str], fail) -> tuple[str, dict[str, str] | None]:
    """The row's answer type for the reward matcher, and its options when multiple choice."""
    if profile.kind == "mathvista":
        return _mathvista_type(record, fail)
    if options:
        letters = list(options)
        if letters != list(OPTION_LETTERS[: len(letters)]):
            raise fail(letters[-1], f"option columns must be filled from A without gaps, got {letters}")
        if len(options) < 2:
            raise fail("B", "a multiple-choice row needs at least options A and B")
        return "choice", options
    if profile.kind == "box":  # grounding: the answer is a box, graded by IoU (issue 26)
        return "box", None
    if profile.kind == "mcq":
        raise fail("A", "this benchmark is multiple choice but the row has no options in columns A, B, …")
    return ("number" if profile.kind == "numeric" else "auto"), None


def _mathvista_type(record: dict[str, str], fail) -> tuple[str, dict[str, str] | None]:
    if record.get("question_type", "").strip() == "multi_choice":
        raw = record.get("choices", "").strip()
        try:
            values = ast.literal_eval(raw)
        except (ValueError, SyntaxError) as exc:
            raise fail("choices", f"expected a Python list of option texts, got {raw[:80]!r}") from exc
        if not isinstance(values, (list, tuple)) or len(values) < 2:
            raise fail("choices", f"expected at least two options, got {raw[:80]!r}")
        return "choice", {OPTION_LETTERS[i]: str(v) for i, v in enumerate(values)}
    kind = record.get("answer_type", "").strip()
    return _MATHVISTA_TYPES.get(kind, "auto"), None


def _videos(path: Path, record: dict[str, str], fail) -> list[str]:
    """The row's ``video_path`` entries as absolute paths; each must be a file or a folder holding frame images.

    Decoding waits for the agent loop (a bad file fails that one sample, recorded as an error)."""
    cell = record.get("video_path", "").strip()
    if not cell:
        return []
    videos = []
    for relative in _listed(cell, "video_path", fail):
        target = Path(relative) if Path(relative).is_absolute() else path.parent / relative
        if target.is_dir():
            if not any(p.suffix.lower() in FRAME_SUFFIXES for p in target.iterdir()):
                raise fail("video_path", f"frame folder {target} holds no frame images ({', '.join(FRAME_SUFFIXES)})")
        elif not target.is_file():
            raise fail("video_path", f"video not found: {target}")
        videos.append(str(target.resolve()))
    return videos


def _images(
    path: Path, record: dict[str, str], image_by_index: dict[str, str], fail, required: bool = True
) -> tuple[list[bytes], list[str]]:
    """The row's images and where each came from; a row with a video may have none (``required=False``)."""
    cell = record.get("image", "").strip()
    if cell:
        if len(cell) <= _MAX_REFERENCE_LENGTH and cell in image_by_index and cell != record["index"]:
            cell = image_by_index[cell].strip()  # VLMEvalKit: the image is stored in row `cell`
        encoded = _listed(cell, "image", fail)
        images = [_decode_base64(text, position, fail) for position, text in enumerate(encoded)]
        return images, [f"{path.name}#index={record['index']}" + (f"/{i}" if len(images) > 1 else "") for i in range(len(images))]
    cell = record.get("image_path", "").strip()
    if not cell:
        if not required:
            return [], []
        raise fail("image" if "image" in record else "image_path", "no image given")
    images, sources = [], []
    for relative in _listed(cell, "image_path", fail):
        file = (path.parent / relative) if not Path(relative).is_absolute() else Path(relative)
        if not file.is_file():
            raise fail("image_path", f"image file not found: {file}")
        data = file.read_bytes()
        _check_image(data, f"file {file}", "image_path", fail)
        images.append(data)
        sources.append(str(file))
    return images, sources


def _listed(cell: str, column: str, fail) -> list[str]:
    """A cell holding one value or a Python-list string of values (multi-image rows)."""
    if not cell.startswith("["):
        return [cell]
    try:
        values = ast.literal_eval(cell)
    except (ValueError, SyntaxError) as exc:
        raise fail(column, f"starts with '[' but is not a Python list: {exc}") from exc
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise fail(column, "expected a non-empty list of strings")
    return values


def _decode_base64(text: str, position: int, fail) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise fail("image", f"image {position + 1} is not valid base64 ({exc})") from exc
    _check_image(data, f"image {position + 1}", "image", fail)
    return data


def _check_image(data: bytes, what: str, column: str, fail) -> None:
    """Reject undecodable images at load time (``verify`` reads headers, not pixels: cheap)."""
    try:
        Image.open(io.BytesIO(data)).verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise fail(column, f"{what} is not a decodable image ({exc})") from exc
