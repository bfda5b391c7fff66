"""Video SFT samples (issue 27): the ``videos`` column and ``<video>`` placeholders survive
conversion in LLaMA-Factory's format, every video is checked and counted, and each defect is
reported while the rest of the data is kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from deepeyes import wire
from deepeyes.data import sft_validation as v
from deepeyes.data import video
from deepeyes.data.to_llamafactory import (
    DATASET_INFO_FILE,
    REPORT_FILE,
    ConvertOptions,
    convert,
    main,
)

FRAME_SIZE = (64, 48)
FRAME_COUNT = 6


def _frame(step: int) -> Image.Image:
    """A white square moving right on black, ``step`` squares along."""
    image = Image.new("RGB", FRAME_SIZE)
    image.paste((255, 255, 255), (4 + 8 * step, 16, 16 + 8 * step, 28))
    return image


def _write_frames(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for step in range(FRAME_COUNT):
        path = folder / f"{step:03d}.png"
        _frame(step).save(path)
        paths.append(str(path))
    return paths


def _write_mp4(path: Path, fps: int = 4) -> None:
    """The same motion as an H.264 (or MPEG-4) file, written with PyAV, LLaMA-Factory's decoder."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = FRAME_SIZE[0], FRAME_SIZE[1], "yuv420p"
        for step in range(FRAME_COUNT):
            frame = av.VideoFrame.from_ndarray(np.asarray(_frame(step)), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _record(sample_id: str, videos: object, placeholders: int = 1) -> dict:
    """The public report's shape: a ShareGPT record with ``videos`` and ``<video>`` in the question."""
    return {
        "id": sample_id,
        "messages": [
            {"role": "user", "content": wire.VIDEO_PLACEHOLDER * placeholders + "Which way does the white square move?"},
            {"role": "assistant", "content": "<answer>right</answer>"},
        ],
        "images": [],
        "videos": videos,
    }


@pytest.fixture()
def media(tmp_path: Path) -> Path:
    """A data root with ``frames/`` (PNG frames), ``clip.mp4`` and a corrupt ``broken.mp4``."""
    root = tmp_path / "data"
    _write_frames(root / "frames")
    _write_mp4(root / "clip.mp4")
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video stream")
    return root


def _write(root: Path, records: list[dict]) -> Path:
    path = root / "video_sft.json"
    path.write_text(json.dumps(records))
    return path


def _frame_list() -> list[str]:
    return [f"frames/{step:03d}.png" for step in range(FRAME_COUNT)]


def test_the_mp4_written_by_the_test_decodes_to_every_frame(media: Path) -> None:
    with av.open(str(media / "clip.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == FRAME_COUNT


@pytest.mark.parametrize("with_model", [False, True], ids=["no-model", "model"])
@pytest.mark.parametrize("kind", ["frames", "file"])
def test_public_report_input_keeps_its_video(media: Path, tmp_path: Path, tiny_model_dir: Path, with_model: bool, kind: str) -> None:
    given, written = {
        "frames": ([_frame_list()], [[str(media / p) for p in _frame_list()]]),
        "file": (["clip.mp4"], [str(media / "clip.mp4")]),
    }[kind]
    source = _write(media, [_record("video-1", given)])
    result = convert(ConvertOptions(inputs=[source], out=tmp_path / "out", model=tiny_model_dir if with_model else None))

    (row,) = json.loads(result.dataset_file.read_text())
    assert row["videos"] == written
    assert row["messages"][0]["content"].startswith("<video>Which way")
    info = json.loads((tmp_path / "out" / DATASET_INFO_FILE).read_text())
    assert info["deepeyes_sft"]["columns"]["videos"] == "videos"
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert report["totals"] == {"read": 1, "kept": 1, "excluded": 0}
    assert report["videos"] == {"read": 1, "kept": 1, "extracted_to_frames": 0}
    assert report["length_check"]["model"] == (str(tiny_model_dir) if with_model else None)


def test_files_mixed_with_frame_lists_become_the_frames_llamafactory_samples(media: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    """Arrow cannot load a ``videos`` column mixing paths and lists, so the file becomes the
    frames LLaMA-Factory's own sampler takes from it, and the dataset loads."""
    import datasets
    from llamafactory.data.mm_plugin import get_mm_plugin

    source = _write(media, [_record("frames-1", [_frame_list()]), _record("file-1", ["clip.mp4"])])
    result = convert(ConvertOptions(inputs=[source], out=tmp_path / "out"))

    assert result.report["videos"]["extracted_to_frames"] == 1
    loaded = datasets.load_dataset("json", data_files=str(result.dataset_file), split="train")
    rows = {row["id"]: row for row in loaded}
    (extracted,) = rows["file-1"]["videos"]
    plugin = get_mm_plugin("qwen2_vl", image_token="<|image_pad|>", video_token="<|video_pad|>")
    sampled = plugin._regularize_videos([str(media / "clip.mp4")], image_max_pixels=10**6, image_min_pixels=1, video_fps=2.0, video_maxlen=128)
    expected = sampled["videos"][0]
    assert len(extracted) in (len(expected), len(expected) - 1)  # the plugin pads odd counts with the last frame
    for path, frame in zip(extracted, expected):
        assert np.abs(np.asarray(Image.open(path), dtype=int) - np.asarray(frame, dtype=int)).max() == 0


def test_video_tokens_are_counted_with_the_real_processor(media: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    """With a cutoff too small for the frames, both samples are excluded as over-long and the
    report says how many tokens the video took (the tiny processor's real video path)."""
    frames_source = _write(media, [_record("frames-1", [_frame_list()])])
    file_source = media / "file.json"
    file_source.write_text(json.dumps([_record("file-1", ["clip.mp4"])]))
    result = convert(ConvertOptions(inputs=[frames_source, file_source, _write_extra_text_sample(media)], out=tmp_path / "out", model=tiny_model_dir, cutoff_len=40))

    report = result.report
    problems = {entry["id"]: entry["problems"] for entry in report["excluded"]}
    assert set(problems) == {"frames-1", "file-1"}
    for entry in problems.values():
        (problem,) = entry
        assert problem["kind"] == v.OVER_CUTOFF
        video_tokens = int(problem["detail"].split(", ")[1].split(" video")[0])
        assert video_tokens > 0
    assert [row["id"] for row in json.loads(result.dataset_file.read_text())] == ["text-1"]


def _write_extra_text_sample(root: Path) -> Path:
    path = root / "text.json"
    path.write_text(json.dumps([{"id": "text-1", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<answer>hi</answer>"}]}]))
    return path


def test_more_frames_cost_more_video_tokens(media: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    from deepeyes.data.sft_length import SequenceLengthCounter
    from deepeyes.data.sft_sample import SftSample

    counter = SequenceLengthCounter(tiny_model_dir)
    frames = [str(media / p) for p in _frame_list()]
    messages = _record("x", [])["messages"]
    short = counter(SftSample("a", "t", messages, videos=[frames[:2]]))
    long = counter(SftSample("b", "t", messages, videos=[frames]))
    assert 0 < short.video_tokens < long.video_tokens
    assert long.total - short.total == long.video_tokens - short.video_tokens


def test_a_folder_of_frames_becomes_its_sorted_frame_list(media: Path, tmp_path: Path) -> None:
    source = _write(media, [_record("folder-1", "frames")])
    rows = json.loads(convert(ConvertOptions(inputs=[source], out=tmp_path / "out")).dataset_file.read_text())
    assert rows[0]["videos"] == [[str(media / p) for p in _frame_list()]]


@pytest.mark.parametrize("with_model", [False, True], ids=["no-model", "model"])
def test_each_video_defect_is_excluded_and_reported_and_the_rest_kept(
    media: Path, tmp_path: Path, tiny_model_dir: Path, with_model: bool
) -> None:
    (media / "frames_bad").mkdir()
    (media / "frames_bad" / "000.png").write_bytes(b"not a png")
    records = [
        _record("good", ["clip.mp4"]),
        _record("missing-file", ["absent.mp4"]),
        _record("undecodable", ["broken.mp4"]),
        _record("missing-frame", [["frames/000.png", "frames/999.png"]]),
        _record("corrupt-frame", ["frames_bad"]),
        _record("empty-folder", [[]]),
        _record("two-placeholders-one-video", ["clip.mp4"], placeholders=2),
        _record("placeholder-no-video", [], placeholders=1),
        _record("url", ["https://example.com/clip.mp4"]),
        _record("not-a-video", [3]),
    ]
    source = _write(media, records)
    result = convert(ConvertOptions(inputs=[source], out=tmp_path / "out", model=tiny_model_dir if with_model else None))

    kinds = {entry["id"]: {p["kind"] for p in entry["problems"]} for entry in result.report["excluded"]}
    assert kinds == {
        "missing-file": {video.VIDEO_MISSING},
        "undecodable": {video.VIDEO_UNREADABLE},
        "missing-frame": {video.VIDEO_MISSING},
        "corrupt-frame": {video.VIDEO_UNREADABLE},
        "empty-folder": {video.VIDEO_UNREADABLE},
        "two-placeholders-one-video": {v.PLACEHOLDER_MISMATCH},
        "placeholder-no-video": {v.PLACEHOLDER_MISMATCH},
        "url": {video.VIDEO_MISSING},
        "not-a-video": {v.UNREADABLE_RECORD},
    }
    details = {entry["id"]: entry["problems"][0]["detail"] for entry in result.report["excluded"]}
    assert "absent.mp4: no such file" in details["missing-file"]
    assert "frame 1" in details["missing-frame"] and "999.png" in details["missing-frame"]
    assert "2 <video> placeholder(s) but 1 video(s)" == details["two-placeholders-one-video"]
    assert [row["id"] for row in json.loads(result.dataset_file.read_text())] == ["good"]


def test_seed_records_with_a_video_are_reported_not_silently_stripped(media: Path, tmp_path: Path) -> None:
    seed = {"id": "seed-video", "text": "Where does it go?", "answer": "right", "videos": ["clip.mp4"], "tool_calls": []}
    source = _write(media, [seed, _record("good", ["clip.mp4"])])
    report = convert(ConvertOptions(inputs=[source], out=tmp_path / "out")).report
    (entry,) = report["excluded"]
    assert entry["id"] == "seed-video" and entry["problems"][0]["kind"] == v.UNREADABLE_RECORD
    assert "ShareGPT" in entry["problems"][0]["detail"]


def test_cli_with_model_writes_the_report_instead_of_a_traceback(
    media: Path, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write(media, [_record("frames-1", [_frame_list()]), _record("undecodable", ["broken.mp4"])])
    code = main(["--input", str(source), "--out", str(tmp_path / "out"), "--model", str(tiny_model_dir)])
    assert code == 0
    assert "1 of 2 samples written" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert report["problems_by_kind"] == {video.VIDEO_UNREADABLE: 1}


@pytest.mark.parametrize("videos", [["clip.mp4"], "mixed"], ids=["file", "frames-and-file"])
def test_llamafactory_trains_a_step_on_converted_video_samples(media: Path, tmp_path: Path, tiny_model_dir: Path, videos: object) -> None:
    """One LoRA step of ``llamafactory-cli train`` (CPU, tiny model) on the converted data: the
    example LLaMA-Factory logs carries video tokens and the step logs a finite loss."""
    records = [_record("frames-1", [_frame_list()]), _record("file-1", ["clip.mp4"])] if videos == "mixed" else [_record("file-1", videos)]
    result = convert(ConvertOptions(inputs=[_write(media, records)], out=tmp_path / "data", model=tiny_model_dir))
    assert result.report["totals"]["excluded"] == 0
    config = {
        "model_name_or_path": str(tiny_model_dir),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": 4,
        "lora_target": "all",
        "template": "qwen2_vl",
        "dataset": "deepeyes_sft",
        "dataset_dir": str(tmp_path / "data"),
        "cutoff_len": 512,
        "output_dir": str(tmp_path / "run"),
        "per_device_train_batch_size": 1,
        "max_steps": 1,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "preprocessing_num_workers": 1,
        "dataloader_num_workers": 0,
        "disable_gradient_checkpointing": True,
    }
    train_yaml = tmp_path / "train.yaml"
    train_yaml.write_text(json.dumps(config))  # JSON is YAML
    cli = Path(sys.executable).with_name("llamafactory-cli")
    done = subprocess.run([str(cli), "train", str(train_yaml)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "<|video_pad|>" in done.stdout + done.stderr
    logged = [json.loads(line) for line in (tmp_path / "run" / "trainer_log.jsonl").read_text().splitlines()]
    (step,) = [entry for entry in logged if "loss" in entry]
    assert step["current_steps"] == 1 and np.isfinite(step["loss"])


def test_frames_embedded_in_a_saved_hf_dataset_are_written_out(tmp_path: Path) -> None:
    import datasets

    frames = [_frame(step) for step in range(2)]
    saved = tmp_path / "saved"
    features = datasets.Features(
        {
            "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
            "videos": datasets.List(datasets.List(datasets.Image())),
        }
    )
    record = _record("embedded", [frames])
    datasets.Dataset.from_list([{"messages": record["messages"], "videos": record["videos"]}], features=features).save_to_disk(str(saved))
    result = convert(ConvertOptions(inputs=[saved], out=tmp_path / "out"))

    ((written,),) = [row["videos"] for row in json.loads(result.dataset_file.read_text())]
    assert len(written) == 2
    for path, frame in zip(written, frames):
        assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), np.asarray(frame))
