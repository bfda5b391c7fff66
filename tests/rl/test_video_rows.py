"""RL rows with videos: verl's ``videos`` column read by the one row reader, for both engines.

A row names a video file, a frame folder or a list of frames (relative paths under
``data.image_root``, as images), with ``<video>`` placeholders in its prompt; the prompt's
request carries the videos and the row's sampling, a missing or undecodable video stops the
run naming the row and the file, and the copies made for verl give the agent loop's reader
the same prompt back from the items verl's own dataset makes of them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import verl.trainer.config as verl_config
from hydra import compose, initialize_config_dir
from video_media import write_frames, write_mp4

from deepeyes.paths import REPO_ROOT
from deepeyes.prompts import system_prompt, user_prompt
from deepeyes.rl import verl_launch
from deepeyes.rl.config import RLConfig, load_rl_config
from deepeyes.rl.data import (
    RLDataError,
    fit_prompt_budget,
    load_prompts,
    prompt_budget,
    read_row,
    run_prompts,
)
from deepeyes.videos import VideoSampling

DEFAULT_CONFIG = REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml"


def _row(question: str, videos: list, truth: str = "right", index: int = 0) -> dict:
    placeholders = "<video>" * len(videos)
    return {
        "data_source": "synthetic_video",
        "prompt": [{"role": "user", "content": f"{placeholders}\n{question}"}],
        "videos": videos,
        "reward_model": {"ground_truth": truth, "style": "rule"},
        "extra_info": {"index": index, "question": question},
    }


def _media(root: Path) -> None:
    write_mp4(root / "clips" / "moving.mp4", count=8, fps=4)
    write_frames(root / "clips" / "frames", count=6)


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _config(tmp_path: Path, tiny_model_dir: Path, data: Path, *extra: str) -> RLConfig:
    return load_rl_config(
        DEFAULT_CONFIG,
        [f"model.base_model={tiny_model_dir}", "model.sft_lora_path=null", f"data.rl_data_path={data}", "tool.search_cache_path=null",
         f"output.dir={tmp_path / 'out'}", *extra],
    )


def test_rows_name_files_folders_and_frames_under_the_image_root(tmp_path: Path) -> None:
    media = tmp_path / "media"
    _media(media)
    frames = [f"clips/frames/{i:03d}.png" for i in range(6)]
    data = _write(tmp_path / "rl" / "train.parquet", [
        _row("Which way does the square move?", [{"video": "clips/moving.mp4", "fps": 4.0, "max_frames": 6}], index=0),
        _row("How many frames show the square?", [{"video": "clips/frames"}], truth="6", index=1),
    ])
    # Frame lists in a file of their own: a parquet column cannot mix strings and lists.
    listed = _write(tmp_path / "rl" / "frames.parquet", [_row("Compare the two.", [{"video": frames}, {"video": frames[:2]}], truth="same")])
    first, second = load_prompts(data, image_root=media, video_sampling=VideoSampling(fps=1.0, max_frames=3))
    (third,) = load_prompts(listed, image_root=media)

    assert first.videos == [media / "clips" / "moving.mp4"] and first.question == "Which way does the square move?"
    assert first.video_sampling == VideoSampling(fps=4.0, max_frames=6)  # the row's own settings win
    assert second.videos == [media / "clips" / "frames"] and second.video_sampling == VideoSampling(fps=1.0, max_frames=3)
    assert third.videos == [[media / p for p in frames], [media / p for p in frames[:2]]]
    assert [len(clip.frames) for clip in third.load_videos()] == [6, 2]

    # The request carries the row's clip decoded with the row's sampling: 2 s of video at 4 fps,
    # 6 frames at most: six frames, from the first to the last.
    request = first.request(sample=1, step=2)
    (clip,) = request.videos
    assert clip.source == str(first.videos[0]) and request.video_sampling == first.video_sampling
    assert len(clip.frames) == 6 and clip.timestamps[0] == 0.0 and clip.timestamps[-1] == pytest.approx(1.75)
    assert [len(clip.frames) for clip in second.load_videos()] == [3]
    # A row's max_pixels scales its frames down before the loop sees them (64x48 is over 1 000 pixels).
    (small,) = replace(first, video_sampling=VideoSampling(fps=4.0, max_frames=6, max_pixels=1000)).request(sample=0).videos
    width, height = small.frames[0].size
    assert width * height <= 1000 and len(small.frames) == 6


def test_a_missing_video_names_the_row_and_the_file(tmp_path: Path) -> None:
    data = _write(tmp_path / "rl" / "train.parquet", [_row("q?", [{"video": "clips/gone.mp4"}])])
    with pytest.raises(RLDataError, match=rf"{re.escape(str(data))}: row 0: video 'clips/gone\.mp4' not found under .*data\.image_root"):
        load_prompts(data)
    # verl's items carry the video as a message part: the same reader, the same error.
    item = {
        "raw_prompt": [{"role": "user", "content": [{"type": "video", "video": str(tmp_path / "gone.mp4")}, {"type": "text", "text": "q?"}]}],
        "reward_model": {"ground_truth": "3"},
    }
    with pytest.raises(RLDataError, match=r"verl item 4: video '.*gone\.mp4' not found$"):
        read_row(item, "verl item 4")


def test_a_row_whose_videos_disagree_on_sampling_is_refused(tmp_path: Path) -> None:
    _media(tmp_path / "rl")
    data = _write(tmp_path / "rl" / "train.parquet", [_row("q?", [{"video": "clips/frames", "fps": 1.0}, {"video": "clips/moving.mp4", "fps": 2.0}])])
    with pytest.raises(RLDataError, match=r"row 0: its videos ask for different sampling"):
        load_prompts(data)


def test_an_undecodable_video_stops_the_run_naming_the_row_and_the_file(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = tmp_path / "rl" / "clips" / "broken.mp4"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a video at all")
    data = _write(tmp_path / "rl" / "train.parquet", [_row("q?", [{"video": "clips/broken.mp4"}])])
    config = _config(tmp_path, tiny_model_dir, data)
    with pytest.raises(RLDataError, match=rf"{re.escape(str(data))}: row 0: {re.escape(str(broken))}: cannot decode"):
        run_prompts(config, config.data.rl_data_path, prompt_budget(config))


def test_video_tokens_count_against_the_prompt_budget(tmp_path: Path, tiny_model_dir: Path) -> None:
    _media(tmp_path / "rl")
    data = _write(tmp_path / "rl" / "train.parquet", [
        _row("Which clip?", [{"video": "clips/frames", "max_frames": 2}], index=0),
        _row("Which clip?", [{"video": "clips/frames", "max_frames": 6}], index=1),
    ])
    config = _config(tmp_path, tiny_model_dir, data)
    budget = prompt_budget(config)
    short, long = load_prompts(data)
    cells = budget.video_tokens(short.load_videos()[0])
    assert cells > 0 and budget.video_tokens(long.load_videos()[0]) == 3 * cells  # 6 frames: 3 temporal patches of 2
    text = budget.count_text_tokens(system_prompt() + "\n" + user_prompt("Which clip?", 0, 1))
    # A budget that holds the two-frame clip but not the six-frame one: the long row is dropped.
    kept = fit_prompt_budget([short, long], replace(budget, max_prompt_length=text + 2 * cells), "data.rl_data_path")
    assert [p.uid for p in kept] == [short.uid]


def test_verl_gets_absolute_videos_with_their_sampling_and_reads_back_the_same_prompt(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoProcessor
    from verl.utils.dataset.rl_dataset import RLHFDataset

    _media(tmp_path / "rl")
    data = _write(tmp_path / "rl" / "train.parquet", [
        _row("Which way?", [{"video": "clips/moving.mp4", "max_frames": 4}], index=0),
        _row("How many?", [{"video": "clips/frames"}], truth="6", index=1),
    ])
    config = _config(tmp_path, tiny_model_dir, data, "trainer.engine=verl", "data.video_fps=3.0", "data.video_max_pixels=5000")
    local = run_prompts(config, config.data.rl_data_path, prompt_budget(config))
    paths = verl_launch.VerlPaths.plan(config)
    verl_launch.prepare(config, paths)
    overrides = verl_launch.build_overrides(config, paths, "http://127.0.0.1:1")
    # Our reader measured the videos; verl's filter would try to decode them with readers it may lack.
    assert paths.has_videos and "data.filter_overlong_prompts=false" in overrides and "data.video_key=videos" in overrides
    with initialize_config_dir(config_dir=str(Path(verl_config.__file__).parent), version_base=None):
        composed = compose(config_name="ppo_trainer", overrides=overrides)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    dataset = RLHFDataset(data_files=[str(f) for f in paths.train_files], tokenizer=processor.tokenizer, config=composed.data, processor=processor)
    items = [dataset[i] for i in range(len(dataset))]
    parts = [part for item in items for m in item["raw_prompt"] for part in m["content"] if part["type"] == "video"]
    assert [Path(part["video"]).is_absolute() for part in parts] == [True, True]
    verl = sorted((read_row(item, f"verl item {i}") for i, item in enumerate(items)), key=lambda p: p.uid)
    local = sorted(local, key=lambda p: p.uid)
    assert [(p.uid, p.question, p.videos, p.video_sampling) for p in verl] == [(p.uid, p.question, p.videos, p.video_sampling) for p in local]
    assert local[0].video_sampling == VideoSampling(fps=3.0, max_frames=4, max_pixels=5000)
    assert local[1].video_sampling == VideoSampling(fps=3.0, max_frames=16, max_pixels=5000)
