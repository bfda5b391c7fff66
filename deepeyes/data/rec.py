"""Referring-expression (REC) data → our SFT records, RL rows and evaluation rows.

Two published layouts are read:

* **VLM-R1's REC JSON** (``rec_jsons_processed``: ``refcoco_train.json``, ``refcocop_val.json``,
  ``refcocog_val.json``, ``refgta_subsample.json``, …): a JSON list (or JSONL) of records
  ``{"image": "<path under the image root>", "problem": "<question>", "solution": [x1, y1, x2, y2]}``
  with the box in original-image pixels; the files are listed in a data config of
  ``datasets: [{json_path: …, sampling_strategy: all | first:N | end:N | random:N | …:P%}]``
  (VLM-R1's ``data_config/rec.yaml``, read by its ``grpo_rec.py``).
* **The RefCOCO layout** of the refer toolkit (``<root>/<dataset>/refs(<split_by>).p``, a
  pickle of refs ``{ref_id, ann_id, image_id, split, sentences: [{sent}]}``, and
  ``<root>/<dataset>/instances.json``, COCO annotations with ``bbox`` = ``[x, y, w, h]``), as
  RefCOCO (unc), RefCOCO+ (unc) and RefCOCOg (umd) are published; images under the COCO
  ``train2014/`` folder. The pickle is read with an unpickler that builds plain containers
  only, so a tampered file cannot run code.

Each (image, expression, box) becomes:

* an **SFT seed record** (``sft/seed.jsonl``; ``bash cold_start/run_cold_start.sh`` converts
  it for LLaMA-Factory) whose answer is Qwen2.5-VL's ``{"bbox_2d": [...], "label": ...}``
  in the pixel frame the model will see in training: LLaMA-Factory's pre-resize
  (``image_max_pixels``) then the processor's ``smart_resize``, both through
  :class:`deepeyes.images.ImageFrame`;
* an **RL row** (``rl/<name>.parquet``, verl conventions) with ``data_source`` naming the data
  set (which selects the grounding reward), the box in original pixels as
  ``reward_model.ground_truth`` and the frame the policy will see in ``extra_info.image_frame``;
* an **evaluation row** (``eval/<name>.tsv``, VLMEvalKit columns) with the box in ``answer``
  as ``[x1, y1, x2, y2]`` in original pixels and the image by ``image_path``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import pickle
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from deepeyes import prompts
from deepeyes.cli import parse_cli
from deepeyes.data import formats
from deepeyes.images import QWEN_DEFAULT_MAX_PIXELS, QWEN_DEFAULT_MIN_PIXELS, ImageFrame, llamafactory_size
from deepeyes.prompts.questions import pose_question
from deepeyes.wire.boxes import box_problem, format_box

logger = logging.getLogger(__name__)

ENV_NAME = "deepeyes_agent"
ABILITY = "grounding"
EVAL_COLUMNS = ["index", "image_path", "question", "answer", "category"]
#: LLaMA-Factory's default image budget (``image_max_pixels`` / ``image_min_pixels``).
LF_IMAGE_MAX_PIXELS = 768 * 768
LF_IMAGE_MIN_PIXELS = 32 * 32


class RecDataError(ValueError):
    """A REC file or record cannot be read; the message names the file and record."""


@dataclass(frozen=True)
class RecRecord:
    """One referring expression: the image (path relative to the image root), the question, the box."""

    id: str
    image: str
    question: str
    box: tuple[float, float, float, float]  # original-image pixels, (x1, y1, x2, y2)
    source: str  # the data set name (becomes ``data_source``)
    expression: str | None = None  # the bare expression, when the layout has one


# --- readers -----------------------------------------------------------------------------


def _box(value: Any, where: str) -> tuple[float, float, float, float]:
    if not isinstance(value, list) or len(value) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise RecDataError(f"{where}: 'solution' must be a box [x1, y1, x2, y2], got {str(value)[:80]}")
    box = tuple(float(v) for v in value)
    problem = box_problem(box)  # type: ignore[arg-type]
    if problem or not all(math.isfinite(v) for v in box):
        raise RecDataError(f"{where}: box {list(value)} is {problem or 'not finite'}")
    return box  # type: ignore[return-value]


def source_name(path: Path) -> str:
    """The data set name of a VLM-R1 file: its stem (``refcoco_train``, ``refgta_subsample``)."""
    return path.stem


def read_rec_json(path: str | Path, source: str | None = None) -> list[RecRecord]:
    """Records of one VLM-R1 REC file (a JSON list, or JSONL), in file order.

    Raises:
        RecDataError: the file is neither, or a record lacks ``image``/``problem`` or a valid box.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        items = [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecDataError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(items, list):
        raise RecDataError(f"{path}: expected a list of records")
    name = source or source_name(path)
    records = []
    for index, item in enumerate(items):
        where = f"{path}: record {index}"
        if not isinstance(item, dict) or not isinstance(item.get("image"), str) or not isinstance(item.get("problem"), str):
            raise RecDataError(f"{where}: needs string 'image' and 'problem'")
        caption = item.get("normal_caption")
        records.append(
            RecRecord(
                id=f"{name}-{item.get('id', index)}",
                image=item["image"],
                question=item["problem"].strip(),
                box=_box(item.get("solution"), where),
                source=name,
                expression=caption if isinstance(caption, str) else None,
            )
        )
    return records


def _sample(records: list[RecRecord], strategy: str, rng: random.Random, where: str) -> list[RecRecord]:
    """VLM-R1's ``sampling_strategy``: ``all``, or ``first|end|random:N`` (N a count or ``P%``)."""
    if strategy == "all":
        return records
    kind, _, amount = strategy.partition(":")
    if kind not in ("first", "end", "random") or not amount:
        raise RecDataError(f"{where}: sampling_strategy must be all or first|end|random:N, got {strategy!r}")
    try:
        count = math.ceil(int(amount[:-1]) * len(records) / 100) if amount.endswith("%") else int(amount)
    except ValueError as exc:
        raise RecDataError(f"{where}: sampling_strategy {strategy!r}: not a count") from exc
    if kind == "first":
        return records[:count]
    if kind == "end":
        return records[-count:] if count else []
    picked = list(records)
    rng.shuffle(picked)
    return picked[:count]


def read_rec_yaml(path: str | Path, seed: int = 0) -> list[RecRecord]:
    """Every record a VLM-R1 data config lists (``datasets: [{json_path, sampling_strategy}]``).

    A relative ``json_path`` is taken from the YAML's folder. ``random:N`` is seeded by ``seed``.
    """
    path = Path(path)
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = config.get("datasets") if isinstance(config, dict) else None
    if not isinstance(entries, list) or not entries:
        raise RecDataError(f"{path}: expected 'datasets:' with a list of {{json_path: …}} entries")
    rng = random.Random(seed)
    records: list[RecRecord] = []
    for index, entry in enumerate(entries):
        where = f"{path}: datasets[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("json_path"), str):
            raise RecDataError(f"{where}: needs 'json_path'")
        json_path = Path(entry["json_path"]).expanduser()
        if not json_path.is_absolute():
            json_path = path.parent / json_path
        if not json_path.is_file():
            raise RecDataError(f"{where}: {json_path} not found")
        picked = _sample(read_rec_json(json_path), str(entry.get("sampling_strategy", "all")), rng, where)
        logger.info("%s: %d records from %s", path.name, len(picked), json_path)
        records += picked
    return records


class _PlainUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings and numbers only: any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise RecDataError(f"refs pickle references {module}.{name}; only plain containers are accepted")


def read_refcoco(root: str | Path, dataset: str = "refcoco", split_by: str = "unc", split: str = "train") -> list[RecRecord]:
    """Records of one split of a RefCOCO-layout data set (one per referring sentence).

    ``root`` holds ``<dataset>/refs(<split_by>).p`` and ``<dataset>/instances.json``; the
    records' ``image`` is the COCO file name (``COCO_train2014_….jpg``), found under the
    image root given to the writers. ``split``: ``train``, ``val``, ``test``, ``testA``, ``testB``.
    """
    folder = Path(root) / dataset
    refs_path, instances_path = folder / f"refs({split_by}).p", folder / "instances.json"
    for required in (refs_path, instances_path):
        if not required.is_file():
            raise RecDataError(f"{required} not found (the refer toolkit's layout: <root>/{dataset}/refs({split_by}).p and instances.json)")
    try:
        refs = _PlainUnpickler(io.BytesIO(refs_path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError) as exc:
        raise RecDataError(f"{refs_path}: not a refs pickle: {exc}") from exc
    instances = formats.read_json(instances_path)
    files = {image["id"]: image["file_name"] for image in instances.get("images", [])}
    boxes = {ann["id"]: ann["bbox"] for ann in instances.get("annotations", [])}
    name = dataset if split == "train" else f"{dataset}_{split}"
    records = []
    for ref in refs:
        if ref.get("split") != split:
            continue
        where = f"{refs_path}: ref {ref.get('ref_id')}"
        if ref.get("ann_id") not in boxes or ref.get("image_id") not in files:
            raise RecDataError(f"{where}: annotation {ref.get('ann_id')} or image {ref.get('image_id')} missing from instances.json")
        x, y, w, h = boxes[ref["ann_id"]]
        box = _box([x, y, x + w, y + h], where)
        for number, sentence in enumerate(ref.get("sentences", [])):
            expression = str(sentence.get("sent", "")).strip()
            if expression:
                records.append(
                    RecRecord(f"{name}-{ref['ref_id']}-{number}", files[ref["image_id"]], f'Where is "{expression}"?', box, name, expression)
                )
    return records


# --- writers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameSettings:
    """The pixel limits that decide the frame a model sees: the processor's for RL and
    evaluation; LLaMA-Factory's pre-resize and then the processor's for SFT."""

    min_pixels: int = QWEN_DEFAULT_MIN_PIXELS
    max_pixels: int = QWEN_DEFAULT_MAX_PIXELS
    image_max_pixels: int = LF_IMAGE_MAX_PIXELS
    image_min_pixels: int = LF_IMAGE_MIN_PIXELS

    def policy_frame(self, size: tuple[int, int]) -> ImageFrame:
        return ImageFrame.for_qwen(size, self.min_pixels, self.max_pixels)

    def sft_frame(self, size: tuple[int, int]) -> ImageFrame:
        trained = llamafactory_size(size, self.image_max_pixels, self.image_min_pixels)
        return ImageFrame(tuple(size), ImageFrame.for_qwen(trained, self.min_pixels, self.max_pixels).processed)  # type: ignore[arg-type]


def posed(record: RecRecord) -> str:
    """The question the model is asked: the record's question and the box instruction."""
    return pose_question(record.question, answer_type="box")


def _size(image_root: Path, record: RecRecord) -> tuple[int, int]:
    path = image_root / record.image
    try:
        with Image.open(path) as image:
            return image.size
    except (FileNotFoundError, OSError) as exc:
        raise RecDataError(f"{record.id}: image {path} cannot be read: {exc}") from exc


def seed_record(record: RecRecord, size: tuple[int, int], frames: FrameSettings) -> dict[str, Any]:
    """The SFT seed record of ``record``: no tool call, a thought, and the box in the SFT frame."""
    box = frames.sft_frame(size).to_processed(record.box)
    label = record.expression or "the object"
    return {
        "id": record.id,
        "image": record.image,
        "text": posed(record),
        "tool_calls": [],
        "thoughts": [f"I look for {label} in the image and read off its box."],
        "answer": format_box(box, label),
    }


def rl_row(record: RecRecord, index: int, size: tuple[int, int], frames: FrameSettings, split: str) -> dict[str, Any]:
    """The verl RL row of ``record`` (box in original pixels, the policy's frame beside it)."""
    question = posed(record)
    return {
        "data_source": record.source,
        "prompt": [{"role": "system", "content": prompts.system_prompt()}, {"role": "user", "content": prompts.user_prompt(question)}],
        "images": [{"image": record.image}],
        "ability": ABILITY,
        "env_name": ENV_NAME,
        "reward_model": {"style": "rule", "ground_truth": [round(v, 2) for v in record.box]},
        "extra_info": {
            "index": index,
            "id": record.id,
            "question": question,
            "answer": format_box(record.box),
            "answer_type": "box",
            "split": split,
            "task": "grounding",
            "image_frame": frames.policy_frame(size).to_dict(),
        },
    }


def eval_row(record: RecRecord, index: int, image_root: Path) -> dict[str, Any]:
    """The VLMEvalKit row of ``record``: the bare question, the true box in ``answer``."""
    return {
        "index": index,
        "image_path": str((image_root / record.image).resolve()),
        "question": record.question,
        "answer": json.dumps([round(v, 2) for v in record.box]),
        "category": record.source,
    }


def write_all(records: Sequence[RecRecord], image_root: str | Path, out: str | Path, name: str, frames: FrameSettings, split: str = "train") -> dict[str, Path]:
    """Write ``sft/<name>.jsonl``, ``rl/<name>.parquet`` and ``eval/<name>.tsv`` under ``out``.

    Returns the written paths by kind. Raises :class:`RecDataError` for an unreadable image or
    when there are no records.
    """
    if not records:
        raise RecDataError("no REC records to write")
    root, out = Path(image_root), Path(out)
    sizes = [_size(root, record) for record in records]
    paths = {"sft": out / "sft" / f"{name}.jsonl", "rl": out / "rl" / f"{name}.parquet", "eval": out / "eval" / f"{name}.tsv"}
    formats.write_jsonl([seed_record(r, s, frames) for r, s in zip(records, sizes, strict=True)], paths["sft"])
    formats.write_parquet([rl_row(r, i, s, frames, split) for i, (r, s) in enumerate(zip(records, sizes, strict=True))], paths["rl"])
    formats.write_tsv([eval_row(r, i, root) for i, r in enumerate(records)], EVAL_COLUMNS, paths["eval"])
    return paths


# --- command line ------------------------------------------------------------------------


@dataclass(frozen=True)
class RecArguments:
    image_root: str = field(metadata={"help": "folder the records' image paths start from (COCO's train2014/ for RefCOCO)"})
    out: str = field(metadata={"help": "output folder: sft/<name>.jsonl, rl/<name>.parquet, eval/<name>.tsv"})
    rec_yaml: str | None = field(default=None, metadata={"help": "VLM-R1 data config (datasets: [{json_path, sampling_strategy}])"})
    rec_json: list[str] = field(default_factory=list, metadata={"help": "VLM-R1 REC JSON / JSONL files (instead of --rec_yaml)"})
    refcoco_root: str | None = field(default=None, metadata={"help": "refer-toolkit root holding <dataset>/refs(<split_by>).p and instances.json"})
    dataset: str = field(default="refcoco", metadata={"help": "with --refcoco_root: refcoco, refcoco+ or refcocog"})
    split_by: str = field(default="unc", metadata={"help": "with --refcoco_root: unc (RefCOCO, RefCOCO+) or umd (RefCOCOg)"})
    split: str = field(default="train", metadata={"help": "with --refcoco_root: train, val, test, testA, testB; also written to extra_info.split"})
    name: str | None = field(default=None, metadata={"help": "output file stem (default: the data set and split)"})
    min_pixels: int = field(default=QWEN_DEFAULT_MIN_PIXELS, metadata={"help": "the model processor's min_pixels"})
    max_pixels: int = field(default=QWEN_DEFAULT_MAX_PIXELS, metadata={"help": "the model processor's max_pixels (the tiny model: 50176)"})
    image_max_pixels: int = field(default=LF_IMAGE_MAX_PIXELS, metadata={"help": "LLaMA-Factory's image_max_pixels of the SFT run"})
    image_min_pixels: int = field(default=LF_IMAGE_MIN_PIXELS, metadata={"help": "LLaMA-Factory's image_min_pixels of the SFT run"})
    seed: int = field(default=0, metadata={"help": "seed of random:N sampling strategies"})

    def __post_init__(self) -> None:
        given = [bool(self.rec_yaml), bool(self.rec_json), bool(self.refcoco_root)]
        if sum(given) != 1:
            raise ValueError("give exactly one of --rec_yaml, --rec_json, --refcoco_root")


def load(args: RecArguments) -> list[RecRecord]:
    if args.rec_yaml:
        return read_rec_yaml(args.rec_yaml, args.seed)
    if args.rec_json:
        return [record for path in args.rec_json for record in read_rec_json(path)]
    return read_refcoco(args.refcoco_root, args.dataset, args.split_by, args.split)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    (args,) = parse_cli(
        [RecArguments], argv, prog="python -m deepeyes.data.rec",
        description="Convert VLM-R1 REC JSON (or a rec.yaml of json_path entries) or a RefCOCO-layout data set into "
        "SFT seed records, RL parquet rows and an evaluation TSV (boxes in original pixels; SFT answers in the model's frame).",
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        records = load(args)
        name = args.name or (Path(args.rec_yaml).stem if args.rec_yaml else records[0].source if records else args.dataset)
        frames = FrameSettings(args.min_pixels, args.max_pixels, args.image_max_pixels, args.image_min_pixels)
        paths = write_all(records, args.image_root, args.out, name, frames, args.split)
    except RecDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for kind, path in paths.items():
        print(f"{kind:<5} {path}")
    print(f"{len(records)} referring expressions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
