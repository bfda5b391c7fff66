"""REC data: VLM-R1's JSON + rec.yaml and the RefCOCO layout → SFT, RL and evaluation rows, offline."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from deepeyes import wire
from deepeyes.data import formats
from deepeyes.data.rec import FrameSettings, RecDataError, main, read_rec_json, read_rec_yaml, read_refcoco
from deepeyes.images import ImageFrame
from deepeyes.paths import REPO_ROOT
from deepeyes.rewards import score_response
from deepeyes.rewards.grounding import iou
from deepeyes.rl.data import load_prompts

from .refcoco_fixture import IMAGES, build, file_name

TINY = {"min_pixels": 56 * 56, "max_pixels": 224 * 224}


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("rec"))


def test_refcoco_layout_reads_one_record_per_sentence_in_xyxy(layout) -> None:
    train = read_refcoco(layout["refer_root"], "refcoco", "unc", "train")
    assert [r.expression for r in train] == ["red box on the left", "the red one", "blue box bottom right"]
    assert train[0].box == (100.0, 60.0, 300.0, 200.0) and train[2].box == (400.0, 250.0, 600.0, 450.0)
    assert {r.source for r in train} == {"refcoco"} and train[0].image == file_name(9)
    (test_a,) = read_refcoco(layout["refer_root"], "refcoco", "unc", "testA")
    assert test_a.source == "refcoco_testA" and test_a.box == (200.0, 100.0, 420.0, 260.0)


def test_a_refs_pickle_that_references_code_is_refused(layout, tmp_path: Path) -> None:
    root = tmp_path / "refer" / "refcoco"
    root.mkdir(parents=True)
    (root / "instances.json").write_text((layout["refer_root"] / "refcoco/instances.json").read_text())
    (root / "refs(unc).p").write_bytes(pickle.dumps([{"evil": subprocess.Popen}]))
    with pytest.raises(RecDataError, match="only plain containers"):
        read_refcoco(tmp_path / "refer")


def test_vlm_r1_json_and_rec_yaml(layout) -> None:
    records = read_rec_json(layout["vlmr1"] / "refcoco_train.json")
    assert [r.box for r in records] == [(100.0, 60.0, 300.0, 200.0), (400.0, 250.0, 600.0, 450.0)]
    assert records[0].source == "refcoco_train" and records[0].question.startswith("Please provide the bounding box")
    listed = read_rec_yaml(layout["rec_yaml"])  # refcoco_train (all) + refcocog_val (first:1)
    assert [r.source for r in listed] == ["refcoco_train", "refcoco_train", "refcocog_val"]
    bad = layout["vlmr1"] / "bad.json"
    for solution, reason in (([1, 2, 3], "box"), ([10, 10, 5, 20], "inverted"), ([5, 5, 5, 9], "degenerate"), (["a", 1, 2, 3], "box")):
        bad.write_text(json.dumps([{"image": "x.jpg", "problem": "p", "solution": solution}]))
        with pytest.raises(RecDataError, match=reason):
            read_rec_json(bad)


def test_conversion_writes_sft_rl_and_eval_rows_in_the_right_frames(layout, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["--refcoco_root", str(layout["refer_root"]), "--image_root", str(layout["image_root"]), "--out", str(out), "--name", "rec",
            "--max_pixels", str(TINY["max_pixels"]), "--min_pixels", str(TINY["min_pixels"])]
    assert main(argv) == 0
    seeds = formats.read_jsonl(out / "sft/rec.jsonl")
    rows = formats.read_parquet(out / "rl/rec.parquet")
    tsv = formats.read_tsv(out / "eval/rec.tsv")
    assert len(seeds) == len(rows) == len(tsv) == 3
    frames = FrameSettings(**TINY)
    size = IMAGES[9][0]
    for seed, row, (_, cell) in zip(seeds, rows, tsv.iterrows(), strict=True):
        truth = tuple(row["reward_model"]["ground_truth"])
        assert json.loads(cell["answer"]) == list(truth) and Path(cell["image_path"]).is_file()
        assert row["data_source"] == "refcoco" and row["extra_info"]["answer_type"] == "box"
        # SFT answers are in the frame the SFT model sees (LLaMA-Factory's pre-resize, then the processor's).
        answer = json.loads(seed["answer"])
        sft_frame = frames.sft_frame(size)
        assert iou(sft_frame.to_original(tuple(answer["bbox_2d"])), truth) > 0.97
        assert answer["label"] in seed["thoughts"][0]
        # RL rows carry the policy's frame: a box written in it scores 1 there, and 0 without it.
        frame = ImageFrame.from_dict(row["extra_info"]["image_frame"])
        assert frame == frames.policy_frame(size) and frame.processed == (252, 168)
        model_box = [round(v) for v in frame.to_processed(truth)]
        response = wire.think("look") + wire.answer_action(json.dumps({"bbox_2d": model_box, "label": "x"}))
        scored = score_response(response, row["reward_model"]["ground_truth"], data_source=row["data_source"], image_frame=row["extra_info"]["image_frame"])
        assert scored["accuracy"] == 1.0 and scored["details"]["iou"] > 0.97
        unframed = score_response(response, row["reward_model"]["ground_truth"], data_source=row["data_source"])
        assert unframed["accuracy"] == 0.0
    # The RL reader keeps the frame as trajectory metadata, where the reward reads it.
    prompts = load_prompts(out / "rl/rec.parquet", image_root=layout["image_root"])
    assert prompts[0].metadata["image_frame"] == rows[0]["extra_info"]["image_frame"] and prompts[0].ground_truth.startswith("[100.0, 60.0")


def test_cli_help_and_bad_input(layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--rec_yaml" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--image_root", "x", "--out", "y"])  # no source
    assert exit_info.value.code == 2
    assert main(["--rec_yaml", str(layout["rec_yaml"]), "--image_root", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "cannot be read" in capsys.readouterr().err


@pytest.mark.slow  # loads the processor for SFT's length check and verl for the launch plan (minutes on 2 busy cores)
def test_the_documented_recipes_run_offline_on_the_miniature(layout, tmp_path: Path, tiny_model_dir: Path) -> None:
    """docs/grounding.md: convert, then SFT's data step and the GRPO launch plan on the REC rows."""
    out = tmp_path / "rec"
    assert main(["--rec_yaml", str(layout["rec_yaml"]), "--image_root", str(layout["image_root"]), "--out", str(out), "--name", "rec",
                 "--max_pixels", str(TINY["max_pixels"]), "--image_max_pixels", str(TINY["max_pixels"])]) == 0
    # SFT: the conversion + validation step of cold_start/run_cold_start.sh, on the REC seed records.
    sft = subprocess.run(
        [sys.executable, "-m", "deepeyes.data.sft_prepare", "--recipe", str(REPO_ROOT / "cold_start/recipes/tiny_cpu_full.yaml"),
         "--data", str(out / "sft/rec.jsonl"), "--image_root", str(layout["image_root"]), "--output_dir", str(tmp_path / "sft"), "--strict"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=600, env={**os.environ, "MODEL_NAME_OR_PATH": str(tiny_model_dir)},
    )
    assert sft.returncode == 0, sft.stderr[-2000:]
    converted = json.loads((tmp_path / "sft" / "sft_data" / "deepeyes_sft.json").read_text())
    assert len(converted) == 3 and "bbox_2d" in converted[0]["messages"][-1]["content"]
    # GRPO: the RL entry point with the grounding reward config plans verl's run on the REC rows.
    plan = subprocess.run(
        [sys.executable, "reinforcement_learning/train.py", "--config", "reinforcement_learning/configs/rec_grpo.yaml",
         "--set", f"data.rl_data_path={out / 'rl/rec.parquet'}", "--set", f"data.image_root={layout['image_root']}",
         "--set", "trainer.engine=verl", "--dry_run"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=600,
    )
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "rec.parquet" in plan.stdout and "custom_reward_function" in plan.stdout
