"""The synthetic video questions: deterministic, held-out values disjoint, answers readable from the written frames.

One small video set (SFT, RL, benchmark) is written per module; every check reads the files
back. The answer check computes each answer from the decoded clip with its own colour
masks, not with the generator's code.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from deepeyes import wire
from deepeyes.data import formats
from deepeyes.data.sft_sample import from_sharegpt
from deepeyes.data.synth import SynthConfig
from deepeyes.data.synth.config import VIDEO_HELDOUT_SPLITS, VIDEO_TASKS
from deepeyes.data.synth.drawing import PALETTE
from deepeyes.data.synth.sample import is_heldout_value
from deepeyes.data.synth.video_rows import (
    VIDEO_BENCHMARK,
    build_videos,
    plan_videos,
    write_video_data,
)
from deepeyes.videos import load_video

ROWS = 6


def _config(out: Path, seed: int = 0) -> SynthConfig:
    return SynthConfig(out=out, seed=seed, video_rows=ROWS, eval_video=ROWS, workers=1)


def _write(out: Path, seed: int = 0) -> tuple[list[str], dict[str, dict[str, int]]]:
    out.mkdir(parents=True, exist_ok=True)
    return write_video_data(_config(out, seed), out, "system prompt")


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth_video")
    _write(out)
    return out


def _mask(frame: np.ndarray, colour: str) -> np.ndarray:
    return np.abs(frame.astype(int) - PALETTE[colour]).max(-1) < 40


def answer_from_frames(question: str, frames: list[np.ndarray]) -> str:
    """What the clip shows, computed from the decoded frames: a direction, a frame count or a colour."""
    colours = [c for c in re.findall(r"[a-z]+", question) if c in PALETTE]
    if "direction" in question or "Which way" in question:
        first, last = (np.argwhere(_mask(frames[i], colours[0])).mean(axis=0) for i in (0, -1))
        dy, dx = last - first
        return ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
    if "frames" in question:
        return str(sum(int(_mask(frame, colours[0]).sum() > 0) for frame in frames))
    appears = {c: next(i for i, frame in enumerate(frames) if _mask(frame, c).any()) for c in colours}
    pick = min if "first" in question else max
    return pick(appears, key=appears.get)


def _clip(root: Path, frames: list[str]) -> list[np.ndarray]:
    clip = load_video([str(root / frame) for frame in frames])
    return [np.asarray(frame) for frame in clip.frames]


def test_same_seed_same_bytes_other_seed_other_videos(video_dir: Path, tmp_path: Path) -> None:
    files, _ = _write(tmp_path / "again")
    assert files and all((video_dir / f).read_bytes() == (tmp_path / "again" / f).read_bytes() for f in files)
    other = tmp_path / "other"
    other.mkdir()
    write_video_data(SynthConfig(out=other, seed=1, eval_video=ROWS), other, "system prompt")
    tsv = f"eval/{VIDEO_BENCHMARK}.tsv"
    assert (other / tsv).read_bytes() != (video_dir / tsv).read_bytes()


def test_nothing_is_written_unless_asked(tmp_path: Path) -> None:
    config = SynthConfig(out=tmp_path)
    assert config.video_split_sizes() == {}
    assert write_video_data(config, tmp_path, "system prompt") == ([], {})
    assert list(tmp_path.iterdir()) == []


def test_held_out_values_never_appear_in_training() -> None:
    config = _config(Path("unused"), seed=3)
    planned = plan_videos(config)
    samples = build_videos(config, planned)
    sides: dict[bool, set[tuple]] = {True: set(), False: set()}
    for p in planned:
        heldout = p.split in VIDEO_HELDOUT_SPLITS
        key = samples[p.sample_id].values
        assert is_heldout_value(*key) == heldout
        sides[heldout].add(key)
    assert sides[True] and sides[False] and not sides[True] & sides[False]
    assert {p.task for p in planned} == set(VIDEO_TASKS)


def test_benchmark_answers_are_read_from_the_written_frames(video_dir: Path) -> None:
    rows = formats.read_tsv(video_dir / f"eval/{VIDEO_BENCHMARK}.tsv").to_dict("records")
    assert len(rows) == ROWS and {row["category"] for row in rows} == set(VIDEO_TASKS)
    for row in rows:
        options = {letter: str(row[letter]) for letter in "ABCD"}
        assert row["answer"] in options and len(set(options.values())) == 4
        frames = sorted(str(p.relative_to(video_dir)) for p in (video_dir / "eval" / row["video_path"]).resolve().glob("*.png"))
        assert len(frames) in (6, 8)
        assert answer_from_frames(row["question"], _clip(video_dir, frames)) == options[row["answer"]]


def test_sft_records_hold_one_video_and_an_executed_code_step(video_dir: Path) -> None:
    records = formats.read_json(video_dir / "sft/video_sharegpt.json")
    assert len(records) == ROWS
    for number, record in enumerate(records):
        sample = from_sharegpt(record, f"v{number}", "synth_video")
        (frames,) = sample.videos
        user = sample.messages[1]["content"]
        assert user.count(wire.VIDEO_PLACEHOLDER) == 1 and wire.IMAGE_PLACEHOLDER not in user and sample.images == []
        answer = re.search(r"<answer>(.*?)</answer>", sample.messages[-1]["content"], re.DOTALL).group(1).strip()
        options = dict(re.findall(r"^([A-D])\. (.+)$", user, re.MULTILINE))
        truth = answer_from_frames(user, _clip(video_dir, frames))
        assert options.get(answer, answer) == truth
        assert "video_1_frames" in sample.messages[2]["content"]  # the code reads the preloaded frames


def test_rl_rows_carry_the_clip_in_the_videos_column(video_dir: Path) -> None:
    train, val = (formats.read_parquet(video_dir / f"rl/video_{name}.parquet") for name in ("train", "val"))
    assert len(train) == ROWS and len(val) == max(1, ROWS // 5)
    for row in train + val:
        (entry,) = row["videos"]
        assert row["prompt"][1]["content"].startswith(wire.VIDEO_PLACEHOLDER + "\n")
        assert all((video_dir / frame).is_file() for frame in entry["video"])
        assert row["extra_info"]["task"] in VIDEO_TASKS and row["extra_info"]["required_tools"] == ["code"]
