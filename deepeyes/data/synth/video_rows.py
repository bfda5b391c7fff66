"""The opt-in video part of the sample data: frames, SFT records, RL rows and the video benchmark.

Video questions (:mod:`deepeyes.data.synth.tasks.video`) go to files of their own, so the
default data (and the quick start that trains on them) stay byte-identical when no video is
asked for:

* ``videos/<id>/NNN.png`` — each clip as a folder of frames (lossless, so the colour masks of
  the recorded code read back what was drawn);
* ``sft/video_sharegpt.json`` — ShareGPT records with ``videos`` (one list of frame paths per
  ``<video>`` placeholder: LLaMA-Factory's video format), whose code step was executed with
  the frames preloaded as the kernel preloads them (``video_1_frames``, ``video_1_times``);
* ``rl/video_train.parquet`` / ``rl/video_val.parquet`` — rows with verl's ``videos`` column
  (``[{"video": [frame paths]}]``) and a ``<video>`` placeholder in the prompt;
* ``eval/DeepEyesMini_Video.tsv`` — held-out A-D questions (EgoExoBench-style multiple
  choice) naming each clip in VLMEvalKit's video columns: ``video`` (the clip's name) and
  ``video_path`` (its frame folder, relative to the TSV's folder).

Values are partitioned between training and held-out splits as the other tasks' are.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepeyes import prompts
from deepeyes.data import formats
from deepeyes.data.sft_sample import from_seed
from deepeyes.data.synth.config import VIDEO_HELDOUT_SPLITS, VIDEO_TASKS, SynthConfig
from deepeyes.data.synth.executor import execute_code
from deepeyes.data.synth.sample import Planned, SynthError, derived_rng
from deepeyes.data.synth.tasks.video import FPS, VIDEO_BUILDERS, VideoSample
from deepeyes.prompts.questions import pose_question

logger = logging.getLogger(__name__)

VIDEO_BENCHMARK = "DeepEyesMini_Video"
VIDEO_SFT_FILE = "sft/video_sharegpt.json"
VIDEO_RL_FILES = {"video_rl_train": "rl/video_train.parquet", "video_rl_val": "rl/video_val.parquet"}
VIDEO_TSV_COLUMNS = ["index", "video", "video_path", "question", "answer", "category", "A", "B", "C", "D", "required_tools"]
DATA_SOURCE = "deepeyes_synth_video"
ENV_NAME = "deepeyes_agent"
ABILITY = "video"


@dataclass(frozen=True)
class VideoPosed:
    """The question as the model is asked it, its answer (the option letter when multiple choice) and options."""

    text: str
    answer: str
    choices: dict[str, str] | None


def plan_videos(config: SynthConfig) -> list[Planned]:
    """Each asked-for video split's rows, the three video tasks in turn (so any prefix is balanced)."""
    return [
        Planned(split, index, VIDEO_TASKS[index % len(VIDEO_TASKS)])
        for split, size in config.video_split_sizes().items()
        for index in range(size)
    ]


def build_videos(config: SynthConfig, planned: list[Planned]) -> dict[str, VideoSample]:
    """Every planned video sample; each depends only on the seed, its split, index and task."""
    return {
        p.sample_id: VIDEO_BUILDERS[p.task](derived_rng(config.seed, p.split, p.index, p.task), p.split in VIDEO_HELDOUT_SPLITS)
        for p in planned
    }


def pose_video(config: SynthConfig, p: Planned, sample: VideoSample) -> VideoPosed:
    """Evaluation rows are always A-D; training rows are with probability ``config.choice_share``, as the visual tasks'."""
    rng = derived_rng(config.seed, "choices", p.split, p.index)
    multiple = p.split == "eval_video" or rng.random() < config.choice_share
    if not multiple or len(sample.distractors) < 3:
        if p.split == "eval_video":
            raise SynthError(f"{p.sample_id}: a benchmark row needs three distractors, got {sample.distractors}")
        return VideoPosed(pose_question(sample.question), sample.answer, None)
    options = sample.distractors[:3] + [sample.answer]
    rng.shuffle(options)
    choices = dict(zip("ABCD", options, strict=True))
    letter = next(letter for letter, text in choices.items() if text == sample.answer)
    return VideoPosed(pose_question(sample.question, choices=choices, answer_type="choice"), letter, choices)


def frame_paths(sample_id: str, sample: VideoSample) -> list[str]:
    """The clip's frame files, relative to the output folder."""
    return [f"videos/{sample_id}/{k:03d}.png" for k in range(len(sample.frames))]


def write_frames(out: Path, samples: dict[str, VideoSample]) -> list[str]:
    written = []
    for sample_id, sample in samples.items():
        for rel, frame in zip(frame_paths(sample_id, sample), sample.frames, strict=True):
            formats.save_png(frame, out / rel)
            written.append(rel)
    return written


def _sharegpt(p: Planned, sample: VideoSample, posed: VideoPosed, out: Path) -> dict[str, Any]:
    """The executed trajectory as a ShareGPT record with the clip as one ``<video>``.

    The seed renderer writes the turns (the ones the loop renders); the first user turn is
    then the one the loop writes for a question with one video and no image."""
    result = execute_code(sample.step.input, None, video_dirs=[out / "videos" / p.sample_id], video_fps=FPS)
    if not result.ok:
        raise SynthError(f"{p.sample_id}: code step failed (exit {result.returncode}):\n{result.stderr}")
    if result.stdout != sample.step.expected_stdout:
        raise SynthError(f"{p.sample_id}: code printed {result.stdout!r} but the ground truth implies {sample.step.expected_stdout!r}")
    final = sample.final_thought + (f" That is option {posed.answer}." if posed.choices else "")
    seed = {
        "text": posed.text,
        "thoughts": [sample.step.thought, final],
        "tool_calls": [{"tool": sample.step.tool, "input": sample.step.input, "output": result.stdout}],
        "answer": posed.answer,
    }
    rendered = from_seed(seed, p.sample_id, "synth_video")
    rendered.messages[1]["content"] = prompts.user_prompt(posed.text, image_count=0, video_count=1)
    return {"messages": rendered.messages, "images": [], "videos": [frame_paths(p.sample_id, sample)]}


def _rl_row(p: Planned, sample: VideoSample, posed: VideoPosed, system_prompt: str) -> dict[str, Any]:
    return {
        "data_source": DATA_SOURCE,
        "prompt": [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": prompts.user_prompt(posed.text, image_count=0, video_count=1)},
        ],
        "videos": [{"video": frame_paths(p.sample_id, sample)}],
        "ability": ABILITY,
        "env_name": ENV_NAME,
        "reward_model": {"style": "rule", "ground_truth": posed.answer},
        "extra_info": {
            "index": p.index,
            "id": p.sample_id,
            "answer_type": "choice" if posed.choices else "number" if posed.answer.isdigit() else "text",
            "question": posed.text,
            "answer": posed.answer,
            "split": "train" if p.split == "video_rl_train" else "val",
            "task": sample.task,
            "required_tools": sample.required_tools,
        },
    }


def eval_row(p: Planned, sample: VideoSample, posed: VideoPosed) -> dict[str, Any]:
    """A VLMEvalKit video row: the bare question, A-D columns and the clip's frame folder."""
    return {
        "index": p.index,
        "video": p.sample_id,
        "video_path": f"../videos/{p.sample_id}",
        "question": sample.question,
        "answer": posed.answer,
        "category": sample.task,
        "required_tools": ",".join(sample.required_tools),
        **(posed.choices or {}),
    }


def write_video_data(config: SynthConfig, out: Path, system_prompt: str) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Write every asked-for video file under ``out``; returns the files written (relative
    paths) and the row count per split and task, for the manifest. Writes nothing when no
    video split is asked for."""
    planned = plan_videos(config)
    if not planned:
        return [], {}
    samples = build_videos(config, planned)
    posed = {p.sample_id: pose_video(config, p, samples[p.sample_id]) for p in planned}
    files = write_frames(out, samples)
    by_split: dict[str, list[Planned]] = {}
    for p in planned:
        by_split.setdefault(p.split, []).append(p)
    if "video_sft" in by_split:
        with ThreadPoolExecutor(max_workers=config.workers) as pool:
            records = list(pool.map(lambda p: _sharegpt(p, samples[p.sample_id], posed[p.sample_id], out), by_split["video_sft"]))
        formats.write_json(records, out / VIDEO_SFT_FILE)
        files.append(VIDEO_SFT_FILE)
    for split, name in VIDEO_RL_FILES.items():
        if split in by_split:
            formats.write_parquet([_rl_row(p, samples[p.sample_id], posed[p.sample_id], system_prompt) for p in by_split[split]], out / name)
            files.append(name)
    if "eval_video" in by_split:
        tsv = f"eval/{VIDEO_BENCHMARK}.tsv"
        formats.write_tsv([eval_row(p, samples[p.sample_id], posed[p.sample_id]) for p in by_split["eval_video"]], VIDEO_TSV_COLUMNS, out / tsv)
        files.append(tsv)
    counts: dict[str, dict[str, int]] = {}
    for p in planned:
        counts.setdefault(p.split, {}).setdefault(p.task, 0)
        counts[p.split][p.task] += 1
    logger.info("wrote %d video questions (%s)", len(planned), ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items()))
    return files, counts
