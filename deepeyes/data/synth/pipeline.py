"""Generate the whole sample-data folder: images, SFT, RL, eval, corpus, image-search cache.

Order matters for honesty: the corpus is written before any trajectory is recorded, so
text-search observations come from the real search tool over the real corpus; thumbnails
are written before image-search trajectories reference them.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from deepeyes import prompts
from deepeyes.data import formats
from deepeyes.data.sft_sample import from_seed
from deepeyes.data.synth.config import (
    ALL_TASKS,
    GENERATOR_VERSION,
    GROUNDING_TASKS,
    HELDOUT_SPLITS,
    SEARCH_TASKS,
    SynthConfig,
)
from deepeyes.data.synth.recording import record_seed, save_thumbnails
from deepeyes.data.synth.sample import Planned, SynthError, TaskSample, derived_rng
from deepeyes.data.synth.tasks import BUILDERS, TaskContext
from deepeyes.data.synth.tasks.image_search import RESULTS
from deepeyes.data.synth.text_search_hook import CorpusSearch
from deepeyes.data.synth.video_rows import write_video_data
from deepeyes.data.synth.world import World, build_world
from deepeyes.prompts.questions import pose_question

logger = logging.getLogger(__name__)

#: Everything the generator owns under ``--out``; removed first so no stale file survives
#: (search indices that tools built next to an old corpus go too: they would be stale).
OUTPUT_ENTRIES = ("images", "videos", "sft", "rl", "eval", "search", "image_search", "manifest.json")
DATA_SOURCE = "deepeyes_synth"
ENV_NAME = "deepeyes_agent"
ABILITY = {
    "counting": "perception",
    "small_text": "perception",
    "no_tool": "perception",
    "chart": "reasoning",
    "arithmetic": "reasoning",
    "text_search": "search",
    "image_search": "search",
    "grounding": "perception",
}
BENCHMARKS = {"eval_visual": "DeepEyesMini_Visual", "eval_search": "DeepEyesMini_Search"}
#: The opt-in grounding benchmark, written only when ``eval_grounding`` asks for rows.
GROUNDING_BENCHMARK = {"eval_grounding": "DeepEyesMini_Grounding"}
#: ``data_source`` of grounding rows: its ``grounding`` part selects the IoU reward
#: (:func:`deepeyes.rewards.grounding.is_grounding_source`).
GROUNDING_DATA_SOURCE = "deepeyes_synth_grounding"


def benchmarks(config: SynthConfig) -> dict[str, str]:
    """The evaluation splits to write and their TSV names."""
    return {**BENCHMARKS, **(GROUNDING_BENCHMARK if config.eval_grounding else {})}
TSV_COLUMNS = ["index", "image", "question", "answer", "category", "A", "B", "C", "D", "image_index", "required_tools"]
#: The grounding benchmark names its images by path (``../images/<id>.png``, VLMEvalKit's
#: ``image_path``) as the REC conversion does: the trajectories then name a file, so the
#: viewer and the behaviour report can draw the predicted and true boxes on it.
GROUNDING_TSV_COLUMNS = ["index", "image_path", "question", "answer", "category", "required_tools"]
#: Text-search questions must find their gold document this high up (the search tests check it).
GOLD_RANK_LIMIT = 3


@dataclass(frozen=True)
class Posed:
    """A sample as the model is asked it: the same text in SFT, RL and evaluation."""

    #: Question, ``Options:`` lines when multiple choice, and the answer-form instruction.
    text: str
    #: The option's letter for a multiple-choice question, else the sample's answer.
    answer: str
    choices: dict[str, str] | None


def choices_for(config: SynthConfig, p: Planned, sample: TaskSample) -> dict[str, str] | None:
    """A-D options (three distractors and the answer, shuffled) for a share ``config.choice_share``
    of the visual tasks' questions in every split; search questions are always open."""
    distractors = list(dict.fromkeys(d for d in sample.distractors if d != sample.answer))
    if p.task in SEARCH_TASKS or len(distractors) < 3:
        return None
    rng = derived_rng(config.seed, "choices", p.split, p.index)
    if rng.random() >= config.choice_share:
        return None
    options = distractors[:3] + [sample.answer]
    rng.shuffle(options)
    return dict(zip("ABCD", options))


def pose(sample: TaskSample, choices: dict[str, str] | None) -> Posed:
    """The question text :func:`deepeyes.evaluation.templates.pose_question` builds for it."""
    if sample.task in GROUNDING_TASKS:
        return Posed(pose_question(sample.question, answer_type="box"), sample.answer, None)
    if not choices:
        return Posed(pose_question(sample.question), sample.answer, None)
    letter = next(letter for letter, text in choices.items() if text == sample.answer)
    return Posed(pose_question(sample.question, choices=choices, answer_type="choice"), letter, choices)


def quotas(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``total`` by ``weights`` with largest remainders (exact and deterministic)."""
    tasks = [task for task in ALL_TASKS if weights.get(task, 0) > 0]
    norm = sum(weights[t] for t in tasks)
    raw = {t: total * weights[t] / norm for t in tasks}
    counts = {t: int(raw[t]) for t in tasks}
    by_remainder = sorted(tasks, key=lambda t: (-(raw[t] - counts[t]), ALL_TASKS.index(t)))
    for task in by_remainder[: total - sum(counts.values())]:
        counts[task] += 1
    return counts


def plan(config: SynthConfig) -> list[Planned]:
    planned: list[Planned] = []
    for split, size in config.split_sizes().items():
        counts = quotas(size, config.mixture(split))
        if split in benchmarks(config):
            tasks = _in_turn(counts)
        else:
            tasks = [task for task, n in counts.items() for _ in range(n)]
            derived_rng(config.seed, "order", split).shuffle(tasks)
        planned += [Planned(split, i, task) for i, task in enumerate(tasks)]
    return planned


def _in_turn(counts: dict[str, int]) -> list[str]:
    """Each task in turn while it has rows left: the first N rows of a benchmark (what
    ``MAX_SAMPLES`` evaluates) cover its categories about equally, as a shuffle need not."""
    left = dict(counts)
    order: list[str] = []
    while any(left.values()):
        for task in counts:
            if left[task]:
                order.append(task)
                left[task] -= 1
    return order


def load_system_prompt() -> str:
    try:
        return prompts.system_prompt()
    except FileNotFoundError as exc:
        raise SynthError(f"system prompt file missing ({exc.filename}); it is part of the deepeyes package") from exc


def _clean(out: Path) -> None:
    for entry in OUTPUT_ENTRIES:
        path = out / entry
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for folder in ("images", "sft", "rl", "eval", "search", "image_search/images"):
        (out / folder).mkdir(parents=True, exist_ok=True)


def build_samples(
    config: SynthConfig, planned: list[Planned], on_sample: Callable[[], None] = lambda: None
) -> tuple[dict[str, TaskSample], World]:
    """Every planned sample (image, question, answer, plan) and the world they live in; writes nothing."""
    text_ids = [p.sample_id for p in planned if p.task == "text_search"]
    image_ids = [p.sample_id for p in planned if p.task == "image_search"]
    world = build_world(
        derived_rng(config.seed, "world"),
        entity_count=len(text_ids) + config.distractor_entities,
        landmark_count=len(image_ids) + RESULTS + 5,
    )
    entity_of = dict(zip(text_ids, world.entities))
    landmark_of = dict(zip(image_ids, world.landmarks))
    samples = {}
    for p in planned:
        context = TaskContext(
            entity=entity_of.get(p.sample_id),
            landmark=landmark_of.get(p.sample_id),
            landmarks=world.landmarks,
            heldout=p.split in HELDOUT_SPLITS,
        )
        samples[p.sample_id] = BUILDERS[p.task](derived_rng(config.seed, p.split, p.index, p.task), context)
        on_sample()
    return samples, world


def _check_retrieval(search: CorpusSearch, sample_id: str, sample: TaskSample) -> None:
    target = sample.text_search
    assert target is not None
    links = [result["link"] for result in search.search(target.query).results]
    if target.gold_link not in links[:GOLD_RANK_LIMIT]:
        raise SynthError(f"{sample_id}: gold document not in the top {GOLD_RANK_LIMIT} for {target.query!r}: {links}")


def _sharegpt(seed: dict[str, Any]) -> dict[str, Any]:
    """The DeepEyesV2 ShareGPT rendering of a seed record, by the project's one seed renderer."""
    sample = from_seed(seed, seed["id"], "synth")
    return {"messages": sample.messages, "images": sample.images}


def _record_sft(
    sft_plan: list[Planned],
    samples: dict[str, TaskSample],
    posed: dict[str, Posed],
    thumbnails: dict[str, list[str]],
    out: Path,
    search: CorpusSearch,
    workers: int,
    on_record: Callable[[], None],
) -> list[dict[str, Any]]:
    """Seed records in plan order; code runs in ``workers`` parallel fresh processes.

    The record asks the posed question; a multiple-choice record's last thought names the
    option and its answer is the letter."""

    def record(p: Planned) -> dict[str, Any]:
        seed = record_seed(
            p.sample_id, samples[p.sample_id], out, f"images/{p.sample_id}.png", search, thumbnails.get(p.sample_id, [])
        )
        question = posed[p.sample_id]
        seed["text"] = question.text
        if question.choices:
            seed["thoughts"][-1] += f" That is option {question.answer}."
            seed["answer"] = question.answer
        on_record()
        return seed

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(record, sft_plan))


def _rl_row(p: Planned, sample: TaskSample, posed: Posed, system_prompt: str) -> dict[str, Any]:
    answer_type = "choice" if posed.choices else "number" if sample.answer.isdigit() else "text"
    grounding = sample.task in GROUNDING_TASKS
    return {
        "data_source": GROUNDING_DATA_SOURCE if grounding else DATA_SOURCE,
        "prompt": [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": prompts.user_prompt(posed.text)},
        ],
        "images": [{"image": f"images/{p.sample_id}.png"}],
        "ability": ABILITY[sample.task],
        "env_name": ENV_NAME,
        "reward_model": {"style": "rule", "ground_truth": posed.answer},
        "extra_info": {
            "index": p.index,
            "id": p.sample_id,
            # the key into image_search/cache.json (present for every row; only image_search rows have an entry)
            "sample_index": p.sample_id,
            "answer_type": "box" if grounding else answer_type,
            "question": posed.text,
            "answer": posed.answer,
            "split": "train" if p.split == "rl_train" else "val",
            "task": sample.task,
            "required_tools": sample.required_tools,
        },
    }


def _eval_row(p: Planned, sample: TaskSample, posed: Posed, png: bytes) -> dict[str, Any]:
    """A VLMEvalKit row: the bare question and A-D columns (evaluation poses them itself)."""
    row: dict[str, Any] = {
        "index": p.index,
        "image": formats.png_base64(png),
        "question": sample.question,
        "answer": posed.answer,
        "category": sample.task,
        "required_tools": ",".join(sample.required_tools),
        **(posed.choices or {}),
    }
    if sample.task == "image_search":
        row["image_index"] = p.sample_id
    if sample.task in GROUNDING_TASKS:
        del row["image"]
        row["image_path"] = f"../images/{p.sample_id}.png"
    return row


def _write_rl(
    by_split: dict[str, list[Planned]], samples: dict[str, TaskSample], posed: dict[str, Posed], system_prompt: str, out: Path
) -> None:
    for split, name in (("rl_train", "train"), ("rl_val", "val")):
        rows = [_rl_row(p, samples[p.sample_id], posed[p.sample_id], system_prompt) for p in by_split.get(split, [])]
        if rows:
            formats.write_parquet(rows, out / f"rl/{name}.parquet")


def _write_eval(
    by_split: dict[str, list[Planned]],
    samples: dict[str, TaskSample],
    posed: dict[str, Posed],
    pngs: dict[str, bytes],
    out: Path,
    names: dict[str, str] = BENCHMARKS,
) -> None:
    for split, benchmark in names.items():
        rows = [_eval_row(p, samples[p.sample_id], posed[p.sample_id], pngs[p.sample_id]) for p in by_split.get(split, [])]
        columns = GROUNDING_TSV_COLUMNS if split in GROUNDING_BENCHMARK else TSV_COLUMNS
        formats.write_tsv(rows, columns, out / f"eval/{benchmark}.tsv")


def _write_search_files(
    planned: list[Planned], samples: dict[str, TaskSample], thumbnails: dict[str, list[str]], out: Path
) -> None:
    """``search/questions.jsonl`` and the image-search cache, for every split's questions."""
    questions: list[dict[str, Any]] = []
    cache: dict[str, Any] = {}
    queries: list[dict[str, Any]] = []
    for p in planned:
        sample = samples[p.sample_id]
        if sample.text_search is not None:
            questions.append(
                {
                    "id": p.sample_id,
                    "question": sample.question,
                    "query": sample.text_search.query,
                    "gold_link": sample.text_search.gold_link,
                    "answer": sample.answer,
                }
            )
        if sample.image_search is not None:
            cache[p.sample_id] = {
                "tool_returned_web_title": sample.image_search.titles,
                "cached_images_path": [rel.removeprefix("image_search/") for rel in thumbnails[p.sample_id]],
            }
            queries.append(
                {
                    "index": p.sample_id,
                    "image_path": f"images/{p.sample_id}.png",
                    "answer": sample.answer,
                    "gold_title": sample.image_search.gold_title,
                }
            )
    formats.write_jsonl(questions, out / "search/questions.jsonl")
    formats.write_json(cache, out / "image_search/cache.json")
    formats.write_jsonl(queries, out / "image_search/queries.jsonl")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate(config: SynthConfig, show_progress: bool = True) -> dict[str, Any]:
    """Write the sample data under ``config.out`` and return the manifest."""
    config.validate()
    system_prompt = load_system_prompt()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)

    planned = plan(config)
    sft_plan = [p for p in planned if p.split == "sft"]
    with tqdm(total=len(planned) + len(sft_plan), desc="building samples", disable=not show_progress) as bar:
        samples, world = build_samples(config, planned, on_sample=lambda: bar.update(1))
        posed = {p.sample_id: pose(samples[p.sample_id], choices_for(config, p, samples[p.sample_id])) for p in planned}
        pngs = {sid: formats.png_bytes(sample.image) for sid, sample in samples.items()}
        for sid, png in pngs.items():
            (out / f"images/{sid}.png").write_bytes(png)
        thumbnails = {sid: save_thumbnails(sid, sample, out) for sid, sample in samples.items() if sample.image_search}

        documents = [doc.as_row() for doc in world.documents]
        derived_rng(config.seed, "corpus").shuffle(documents)
        formats.write_jsonl(documents, out / "search/corpus.jsonl")

        bar.set_description("recording SFT trajectories")
        with CorpusSearch(out / "search/corpus.jsonl") as search:
            for p in planned:
                if p.task == "text_search":
                    _check_retrieval(search, p.sample_id, samples[p.sample_id])
            seeds = _record_sft(sft_plan, samples, posed, thumbnails, out, search, config.workers, on_record=lambda: bar.update(1))

    formats.write_jsonl(seeds, out / "sft/seed.jsonl")
    formats.write_json([_sharegpt(seed) for seed in seeds], out / "sft/sharegpt.json")
    by_split: dict[str, list[Planned]] = {}
    for p in planned:
        by_split.setdefault(p.split, []).append(p)
    _write_rl(by_split, samples, posed, system_prompt, out)
    _write_eval(by_split, samples, posed, pngs, out, benchmarks(config))
    _write_search_files(planned, samples, thumbnails, out)
    video_files, video_counts = write_video_data(config, out, system_prompt)
    files = sorted(_written_files(planned, seeds, thumbnails, out, benchmarks(config)) + video_files)
    manifest = _manifest(config, planned, files, out, len(documents), video_counts)
    formats.write_json(manifest, out / "manifest.json")
    logger.info("wrote %d files under %s (seed %d)", len(manifest["files"]) + 1, out, config.seed)
    return manifest


def _written_files(
    planned: list[Planned], seeds: list[dict[str, Any]], thumbnails: dict[str, list[str]], out: Path, names: dict[str, str] = BENCHMARKS
) -> list[str]:
    """Every file this run wrote (relative paths), derived from the data rather than by
    listing the folder: search tools may build their indices next to the corpus meanwhile."""
    fixed = ["sft/seed.jsonl", "sft/sharegpt.json", "search/corpus.jsonl", "search/questions.jsonl"]
    fixed += ["image_search/cache.json", "image_search/queries.jsonl"]
    fixed += [f"eval/{name}.tsv" for name in names.values()]
    fixed += [f"rl/{name}.parquet" for name in ("train", "val") if (out / f"rl/{name}.parquet").is_file()]
    images = [f"images/{p.sample_id}.png" for p in planned]
    shown = [path for seed in seeds for call in seed["tool_calls"] if call["tool"] == "code_execution" for path in call["images"]]
    cached = [path for paths in thumbnails.values() for path in paths]
    return sorted(fixed + images + shown + cached)


def _manifest(
    config: SynthConfig, planned: list[Planned], files: list[str], out: Path, corpus_size: int, video_counts: dict[str, dict[str, int]]
) -> dict[str, Any]:
    """Sizes and counts include the video splits only when some were asked for (the default manifest stays as it was)."""
    counts: dict[str, dict[str, int]] = {}
    for p in planned:
        split = counts.setdefault(p.split, {})
        split[p.task] = split.get(p.task, 0) + 1
    return {
        "generator": "deepeyes.data.synth",
        "version": GENERATOR_VERSION,
        "seed": config.seed,
        "sizes": {**config.split_sizes(), **config.video_split_sizes()},
        "counts": {**counts, **video_counts},
        "corpus_documents": corpus_size,
        "files": {name: _sha256(out / name) for name in files},
    }
