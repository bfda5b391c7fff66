"""Video benchmark rows: written by the generator, read back with their clips, scored per category.

The benchmark is the synthetic one (``DeepEyesMini_Video``: A-D questions over frame
folders). A scripted policy answers from a script but only when the question's clip reached
it with all its frames, so the accuracy per category is known in advance and a lost video
shows as a wrong answer.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from deepeyes.data.synth import SynthConfig
from deepeyes.data.synth.config import VIDEO_TASKS
from deepeyes.data.synth.video_rows import VIDEO_BENCHMARK, write_video_data
from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.datasets import DatasetError, EvalSample, load_dataset
from deepeyes.evaluation.runner import evaluate
from deepeyes.evaluation.templates import build_question
from deepeyes.policies.base import Generation
from deepeyes.trajectory import read_jsonl
from deepeyes.videos import load_video

ROWS = 6


@pytest.fixture(scope="module")
def lmudata(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("video_bench")
    write_video_data(SynthConfig(out=out, seed=0, eval_video=ROWS), out, "system prompt")
    return out / "eval"


def _frames_on_disk(sample: EvalSample) -> int:
    return len(list(Path(sample.videos[0]).glob("*.png")))


def test_rows_round_trip_with_their_clips(lmudata: Path) -> None:
    samples = load_dataset(VIDEO_BENCHMARK, lmudata)
    assert len(samples) == ROWS and {s.category for s in samples} == set(VIDEO_TASKS)
    for sample in samples:
        assert sample.images == [] and sample.answer_type == "choice"
        assert list(sample.choices) == ["A", "B", "C", "D"] and sample.answer in sample.choices
        assert sample.required_tools == ["code"]
        (video,) = sample.videos
        assert Path(video).is_absolute() and Path(video).name == f"eval_video-{int(sample.index):05d}"
        assert len(load_video(video).frames) == _frames_on_disk(sample)


def test_missing_clip_or_no_media_is_reported_with_row_and_column(lmudata: Path, tmp_path: Path) -> None:
    rows = pd.read_csv(lmudata / f"{VIDEO_BENCHMARK}.tsv", sep="\t", dtype=str)
    rows.loc[1, "video_path"] = "../videos/nowhere"
    rows.to_csv(lmudata / "Broken.tsv", sep="\t", index=False)
    with pytest.raises(DatasetError, match=r"row 2 .*column 'video_path': video not found: .*nowhere"):
        load_dataset("Broken", lmudata)
    rows.loc[1, "video_path"] = ""
    rows.to_csv(lmudata / "Broken.tsv", sep="\t", index=False)
    with pytest.raises(DatasetError, match=r"row 2 .*no image given"):
        load_dataset("Broken", lmudata)


class ScriptedPolicy:
    """Answers each question with its scripted letter when the clip arrived whole, else ``Z``."""

    def __init__(self, script: dict[str, tuple[str, int]]):
        self.script = script

    def generate(self, messages, sampling=None) -> Generation:
        user = messages[1]
        letter, frames = next(entry for question, entry in self.script.items() if question in user.content)
        whole = len(user.videos) == 1 and len(user.videos[0].frames) == frames
        return Generation(f"<answer>{letter if whole else 'Z'}</answer>")


def _wrong(sample: EvalSample) -> str:
    return next(letter for letter in sample.choices if letter != sample.answer)


def test_scripted_policy_gets_the_known_accuracy_per_category(lmudata: Path, tmp_path: Path) -> None:
    """Through the evaluation runner: every row's clip reaches the policy whole, the records
    name it, and the per-category accuracy is the scripted one."""
    samples = load_dataset(VIDEO_BENCHMARK, lmudata)
    # right on motion and order, wrong on every frame-count question
    script = {build_question(s): (_wrong(s) if s.category == "video_count" else s.answer, _frames_on_disk(s)) for s in samples}
    config = EvalConfig(
        datasets=[VIDEO_BENCHMARK], lmudata=str(lmudata), output_dir=str(tmp_path / "out"), use_tools=False, show_progress=False, report=False
    )
    results = evaluate(config, policy=ScriptedPolicy(script))
    block = results["datasets"][VIDEO_BENCHMARK]
    accuracy = {category: entry["accuracy"] for category, entry in block["categories"].items()}
    assert accuracy == {"video_count": 0.0, "video_motion": 1.0, "video_order": 1.0}
    assert block["overall"]["accuracy"] == pytest.approx(sum(s.category != "video_count" for s in samples) / ROWS)
    records = read_jsonl(tmp_path / "out" / "trajectories" / f"{VIDEO_BENCHMARK}.jsonl")
    by_id = {s.id: s for s in samples}
    assert {r.id for r in records} == set(by_id)
    for record in records:
        sample = by_id[record.id]
        assert record.videos == [{"source": sample.videos[0], "frames": _frames_on_disk(sample)}]


def test_the_tiny_model_evaluates_video_rows_end_to_end(lmudata: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    """The evaluation stage with the real HF policy on the tiny Qwen2.5-VL: each video row's
    clip goes through the processor's video path, and its record names the frames it saw."""
    config = EvalConfig(
        model_path=str(tiny_model_dir), datasets=[VIDEO_BENCHMARK], lmudata=str(lmudata), output_dir=str(tmp_path / "out"),
        use_tools=False, show_progress=False, report=False, max_samples=2, max_new_tokens=4,
    )
    results = evaluate(config)
    assert results["datasets"][VIDEO_BENCHMARK]["overall"]["n"] == 2
    records = read_jsonl(tmp_path / "out" / "trajectories" / f"{VIDEO_BENCHMARK}.jsonl")
    by_id = {s.id: s for s in load_dataset(VIDEO_BENCHMARK, lmudata)}
    for record in records:
        assert record.videos == [{"source": by_id[record.id].videos[0], "frames": _frames_on_disk(by_id[record.id])}]
        assert len(record.turns) == 1 and record.turns[0].completion_tokens > 0
