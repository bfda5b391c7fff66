"""Convert SFT data (seed records or DeepEyesV2 ShareGPT) into a LLaMA-Factory dataset.

Writes ``<out>/<dataset_name>.json`` (ShareGPT: ``messages`` + ``images``, and ``videos``
when any sample has one, in LLaMA-Factory's video format),
``<out>/dataset_info.json`` (so ``dataset_dir: <out>`` is all LLaMA-Factory needs) and
``<out>/validation_report.json``. Every sample is validated first (:mod:`sft_validation`);
a defective one is excluded and listed in the report, or, with ``strict``, the whole
conversion fails and no dataset is written, so training can never start on data that
was quietly thinned out.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepeyes.cli import parse_cli
from deepeyes.data.sft_length import LengthSettings, SequenceLengthCounter
from deepeyes.data.sft_readers import InputError, RawRecord, read_records
from deepeyes.data.sft_sample import (
    RecordError,
    SftSample,
    from_seed,
    from_sharegpt,
    is_seed_record,
    is_sharegpt_record,
)
from deepeyes.data.sft_validation import (
    UNREADABLE_RECORD,
    ImageChecker,
    Problem,
    validate,
)
from deepeyes.data.video import (
    VideoChecker,
    extract_frames,
    is_frame_list,
    resolve_video,
)
from deepeyes.paths import resolve_path

logger = logging.getLogger(__name__)

DATASET_INFO_FILE = "dataset_info.json"
REPORT_FILE = "validation_report.json"
#: ShareGPT tags as LLaMA-Factory's ``dataset_info.json`` names them (DESIGN §5).
SHAREGPT_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}


@dataclass
class ConvertOptions:
    inputs: list[Path]
    out: Path
    #: Directory relative image paths are resolved against; default: each input's folder.
    image_root: Path | None = None
    dataset_name: str = "deepeyes_sft"
    #: Model whose processor counts tokens for the ``cutoff_len`` check; ``None`` skips it.
    model: Path | None = None
    cutoff_len: int = 4096
    length: LengthSettings = field(default_factory=LengthSettings)
    strict: bool = False
    show_progress: bool = False


@dataclass
class ConversionResult:
    report_file: Path
    report: dict[str, Any]
    dataset_file: Path


class ValidationFailed(RuntimeError):
    """``strict`` conversion found problems; the report file lists them."""


def convert(options: ConvertOptions) -> ConversionResult:
    """Read, validate and write; see the module docstring for the files produced."""
    options.out.mkdir(parents=True, exist_ok=True)
    dataset_file = options.out / f"{options.dataset_name}.json"
    for stale in (dataset_file, options.out / DATASET_INFO_FILE):  # never train on a previous run's output
        stale.unlink(missing_ok=True)
    shutil.rmtree(options.out / "video_frames", ignore_errors=True)
    samples, problems = load_samples(options.inputs, options.image_root, options.out / "embedded_images")
    counter = SequenceLengthCounter(options.model, options.length) if options.model else None
    image_checker = ImageChecker()
    found = validate(samples, image_checker, VideoChecker(image_checker.check), counter, options.cutoff_len, options.show_progress)
    for position in sorted(found):
        problems.extend(found[position])
    kept = [sample for position, sample in enumerate(samples) if position not in found]
    extracted = _one_video_kind(kept, options.out / "video_frames", options.length)
    report = _report(options, samples, kept, problems)
    report["videos"]["extracted_to_frames"] = extracted
    report_file = options.out / REPORT_FILE
    report_file.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if options.strict and problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in the data (--strict); see {report_file}")
    if not kept:
        raise ValidationFailed(f"no usable samples left; see {report_file}")
    with_videos = any(s.videos for s in kept)
    rows = [{"id": s.id, "messages": s.messages, "images": s.images, **({"videos": s.videos} if with_videos else {})} for s in kept]
    dataset_file.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    info = dataset_info(options.dataset_name, dataset_file.name, with_videos)
    (options.out / DATASET_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return ConversionResult(report_file=report_file, report=report, dataset_file=dataset_file)


def _one_video_kind(samples: list[SftSample], frame_dir: Path, length: LengthSettings) -> int:
    """When ``samples`` mix video files and frame lists, replace each file by the frames the
    trainer would sample from it (written under ``frame_dir``); returns how many were.

    LLaMA-Factory loads the dataset through Arrow, which cannot hold paths and lists in one
    ``videos`` column; a dataset of one kind is written as given.
    """
    kinds = {is_frame_list(video) for sample in samples for video in sample.videos}
    if len(kinds) < 2:
        return 0
    count = 0
    for sample in samples:
        for position, video in enumerate(sample.videos):
            if isinstance(video, str):
                sample.videos[position] = extract_frames(video, frame_dir, length.video_fps, length.video_maxlen)
                count += 1
    logger.warning(
        "the data mixes video files and frame lists; %d file(s) written as frames under %s (video_fps=%s, video_maxlen=%d)",
        count, frame_dir, length.video_fps, length.video_maxlen,
    )
    return count


def dataset_info(dataset_name: str, file_name: str, with_videos: bool = False) -> dict[str, Any]:
    """The ``dataset_info.json`` entry LLaMA-Factory looks up by ``dataset: <name>``; the
    ``videos`` column is declared only when the rows carry one."""
    columns = {"messages": "messages", "images": "images", **({"videos": "videos"} if with_videos else {})}
    return {
        dataset_name: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": columns,
            "tags": dict(SHAREGPT_TAGS),
        }
    }


def load_samples(
    inputs: list[Path], image_root: Path | None, embedded_image_dir: Path
) -> tuple[list[SftSample], list[Problem]]:
    """Every input record as a conversation with absolute image and video paths, or as the problem
    that prevented it (unvalidated: see :func:`deepeyes.data.sft_validation.validate`)."""
    samples: list[SftSample] = []
    problems: list[Problem] = []
    for input_path in inputs:
        root = image_root or (input_path if input_path.is_dir() else input_path.parent)
        for raw in read_records(input_path, embedded_image_dir):
            sample_or_problem = _to_sample(raw, root)
            if isinstance(sample_or_problem, Problem):
                problems.append(sample_or_problem)
            else:
                samples.append(sample_or_problem)
    return samples, problems


def _to_sample(raw: RawRecord, image_root: Path) -> SftSample | Problem:
    record = raw.record
    fallback_id = f"{raw.source}#{raw.index}"
    if record is None:
        return Problem(fallback_id, raw.source, raw.index, UNREADABLE_RECORD, raw.error or "unreadable")
    sample_id = str(record.get("id", fallback_id))
    try:
        if is_sharegpt_record(record):
            sample = from_sharegpt(record, sample_id, raw.source)
        elif is_seed_record(record):
            sample = from_seed(record, sample_id, raw.source)
        else:
            raise RecordError("neither a seed record (text, tool_calls, answer) nor ShareGPT (messages, images)")
    except RecordError as exc:
        return Problem(sample_id, raw.source, raw.index, UNREADABLE_RECORD, str(exc))
    sample.index = raw.index
    sample.images = [_resolve_image(path, image_root) for path in sample.images]
    sample.videos = [resolve_video(video, image_root) for video in sample.videos]
    return sample


def _resolve_image(path: str, image_root: Path) -> str:
    """Absolute paths, so LLaMA-Factory finds the images whatever its ``media_dir``; URLs are
    left for validation to reject."""
    if "://" in path:
        return path
    candidate = Path(path)
    return str((candidate if candidate.is_absolute() else image_root / candidate).resolve())


def _report(options: ConvertOptions, samples: list[SftSample], kept: list[SftSample], problems: list[Problem]) -> dict[str, Any]:
    read = Counter(s.source for s in samples) + Counter(p.source for p in problems if p.kind == UNREADABLE_RECORD)
    kept_by_source = Counter(s.source for s in kept)
    excluded: dict[tuple[str, int], list[Problem]] = {}
    for problem in problems:
        excluded.setdefault((problem.source, problem.index), []).append(problem)
    return {
        "inputs": [str(p) for p in options.inputs],
        "output_dir": str(options.out),
        "strict": options.strict,
        "length_check": {
            "model": str(options.model) if options.model else None,
            "cutoff_len": options.cutoff_len,
            "template": options.length.template,
            "image_max_pixels": options.length.image_max_pixels,
            "image_min_pixels": options.length.image_min_pixels,
            "video_max_pixels": options.length.video_max_pixels,
            "video_min_pixels": options.length.video_min_pixels,
            "video_fps": options.length.video_fps,
            "video_maxlen": options.length.video_maxlen,
        },
        "totals": {"read": sum(read.values()), "kept": len(kept), "excluded": sum(read.values()) - len(kept)},
        "videos": {"read": sum(len(s.videos) for s in samples), "kept": sum(len(s.videos) for s in kept)},
        "sources": {
            source: {"read": read[source], "kept": kept_by_source[source], "excluded": read[source] - kept_by_source[source]}
            for source in sorted(read)
        },
        "problems_by_kind": dict(sorted(Counter(p.kind for p in problems).items())),
        "excluded": [
            {"id": items[0].sample_id, "source": source, "index": index, "problems": [{"kind": p.kind, "detail": p.detail} for p in items]}
            for (source, index), items in excluded.items()
        ],
    }


@dataclass(frozen=True)
class ToLlamaFactoryArguments:
    """The command line of ``python -m deepeyes.data.to_llamafactory`` (mapped onto :class:`ConvertOptions`)."""

    input: list[str] = field(metadata={"help": "one or more input files/directories"})
    out: str = field(metadata={"help": "output directory (becomes LLaMA-Factory's dataset_dir)"})
    image_root: str | None = field(
        default=None, metadata={"help": "base for relative image and video paths (default: each input's directory)"}
    )
    dataset_name: str = field(default=ConvertOptions.dataset_name, metadata={"help": "name in dataset_info.json"})
    model: str | None = field(
        default=None, metadata={"help": "model directory whose processor counts tokens for the cutoff check (omit to skip that check)"}
    )
    cutoff_len: int = field(default=ConvertOptions.cutoff_len, metadata={"help": "samples longer than this many tokens are excluded"})
    template: str = field(default=LengthSettings.template, metadata={"help": "LLaMA-Factory template used to count tokens"})
    image_max_pixels: int = field(default=LengthSettings.image_max_pixels, metadata={"help": "as in the training YAML"})
    image_min_pixels: int = field(default=LengthSettings.image_min_pixels, metadata={"help": "as in the training YAML"})
    video_max_pixels: int = field(default=LengthSettings.video_max_pixels, metadata={"help": "as in the training YAML"})
    video_min_pixels: int = field(default=LengthSettings.video_min_pixels, metadata={"help": "as in the training YAML"})
    video_fps: float = field(default=LengthSettings.video_fps, metadata={"help": "as in the training YAML"})
    video_maxlen: int = field(default=LengthSettings.video_maxlen, metadata={"help": "as in the training YAML"})
    strict: bool = field(
        default=False, metadata={"help": "fail (exit 1, no dataset written) on any problem instead of excluding samples"}
    )

    def options(self) -> ConvertOptions:
        """The conversion these arguments ask for (relative paths taken from the current directory)."""
        return ConvertOptions(
            inputs=[resolve_path(p) for p in self.input],
            out=resolve_path(self.out),
            image_root=resolve_path(self.image_root) if self.image_root else None,
            dataset_name=self.dataset_name,
            model=resolve_path(self.model) if self.model else None,
            cutoff_len=self.cutoff_len,
            length=LengthSettings(
                self.template,
                self.image_max_pixels,
                self.image_min_pixels,
                self.video_max_pixels,
                self.video_min_pixels,
                self.video_fps,
                self.video_maxlen,
            ),
            strict=self.strict,
            show_progress=True,
        )


DESCRIPTION = (
    "Convert seed SFT records and/or DeepEyesV2 ShareGPT data (a JSON file, JSONL, a directory of "
    "JSON/JSONL/parquet parts, or a saved HF datasets directory) into a LLaMA-Factory ShareGPT dataset "
    "with dataset_info.json, after validating every sample. Defective samples are excluded and listed "
    f"in {REPORT_FILE} next to the output."
)


def main(argv: Sequence[str] | None = None) -> int:
    (args,) = parse_cli([ToLlamaFactoryArguments], argv, prog="python -m deepeyes.data.to_llamafactory", description=DESCRIPTION)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = convert(args.options())
    except (InputError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    totals = result.report["totals"]
    print(f"{totals['kept']} of {totals['read']} samples written to {result.dataset_file}")
    for kind, count in result.report["problems_by_kind"].items():
        print(f"  excluded for {kind}: {count} problem(s)")
    print(f"validation report: {result.report_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
