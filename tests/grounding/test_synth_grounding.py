"""The opt-in grounding category of the synthetic world, and the default data left as it was."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepeyes import wire
from deepeyes.data import formats
from deepeyes.data.synth import SynthConfig, generate
from deepeyes.data.synth.config import GENERATOR_VERSION
from deepeyes.data.synth.drawing import PALETTE
from deepeyes.data.synth.pipeline import plan
from deepeyes.rewards import score_response
from deepeyes.rewards.grounding import is_grounding_source

SMALL = {"sft": 8, "rl_train": 8, "rl_val": 4, "eval_visual": 6, "eval_search": 4, "distractor_entities": 10, "workers": 1}
#: sha256 of the manifest (every file's hash, the counts, the sizes) that ``SMALL`` with seed 0
#: gives. Recorded from the generator before the grounding task existed (commit 2d57607) and
#: unchanged by it. If the default curriculum is changed on purpose, bump GENERATOR_VERSION and
#: record the new digest here.
#: Version 5: search trajectories read the answer from a quote (data/README.md).
#: Version 6: arithmetic code copies the question's words, counting code names its colour
#: (the palette is CSS's named colours), and an image search says first what is asked.
DEFAULT_DIGEST = {"6": "fa38d30e9747705eff433d07ca8bed822e3ce20e732ceeb56143035b258759f0"}
EXPRESSION = re.compile(r"the (\w+) (circle|square|triangle) (left of|right of|above|below) the (\w+) (circle|square|triangle)")


def _digest(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module")
def default_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("default") / "s"
    return out, generate(SynthConfig(out=out, seed=0, **SMALL), show_progress=False)


@pytest.fixture(scope="module")
def grounding_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("grounding") / "s"
    config = SynthConfig(out=out, seed=0, grounding_share=0.6, eval_grounding=6, **SMALL)
    return out, generate(config, show_progress=False)


def test_grounding_is_not_in_the_default_mix_and_the_default_data_is_unchanged(default_dir) -> None:
    out, manifest = default_dir
    assert "grounding" not in SynthConfig().training_mixture
    assert all(p.task != "grounding" for p in plan(SynthConfig()))
    assert not (out / "eval/DeepEyesMini_Grounding.tsv").exists() and "eval_grounding" not in manifest["sizes"]
    assert GENERATOR_VERSION in DEFAULT_DIGEST, "the generator version changed: record the new default digest"
    assert _digest(manifest) == DEFAULT_DIGEST[GENERATOR_VERSION], "the default synthetic data changed for the same seed"


def test_a_grounding_benchmark_alone_leaves_every_other_file_as_it_was(default_dir, tmp_path: Path) -> None:
    out, manifest = default_dir
    with_benchmark = generate(SynthConfig(out=tmp_path / "s", seed=0, eval_grounding=3, **SMALL), show_progress=False)
    added = set(with_benchmark["files"]) - set(manifest["files"])
    assert {name for name in added if not name.startswith("images/eval_grounding-")} == {"eval/DeepEyesMini_Grounding.tsv"}
    assert all(with_benchmark["files"][name] == digest for name, digest in manifest["files"].items())


def test_grounding_rows_in_sft_rl_and_evaluation(grounding_dir) -> None:
    out, manifest = grounding_dir
    assert manifest["counts"]["eval_grounding"] == {"grounding": 6}
    seeds = [s for s in formats.read_jsonl(out / "sft/seed.jsonl") if s["task"] == "grounding"]
    rows = [r for r in formats.read_parquet(out / "rl/train.parquet") if r["extra_info"]["task"] == "grounding"]
    tsv = formats.read_tsv(out / "eval/DeepEyesMini_Grounding.tsv")
    assert seeds and rows and len(tsv) == 6
    for seed in seeds:
        # The code located the target by colour and printed the answer's box (checked at generation).
        (call,) = seed["tool_calls"]
        assert call["tool"] == "code_execution" and "ndimage.label" in call["input"]
        assert call["output"] == f"box: {json.loads(seed['answer'])}\n"
        assert "[x1, y1, x2, y2]" in seed["text"]
    for row in rows:
        assert row["data_source"] == "deepeyes_synth_grounding" and is_grounding_source(row["data_source"])
        assert row["extra_info"]["answer_type"] == "box" and row["ability"] == "perception"
        truth = row["reward_model"]["ground_truth"]
        # The answer the SFT data teaches scores 1 on the RL row's ground truth; a shifted box does not.
        right = score_response(wire.think("t") + wire.answer_action(truth), truth, data_source=row["data_source"])
        x1, y1, x2, y2 = json.loads(truth)
        shifted = json.dumps([x1 + (x2 - x1), y1, x2 + (x2 - x1), y2])
        wrong = score_response(wire.think("t") + wire.answer_action(shifted), truth, data_source=row["data_source"])
        assert (right["accuracy"], wrong["accuracy"]) == (1.0, 0.0)
    assert set(tsv["category"]) == {"grounding"} and all(json.loads(a) for a in tsv["answer"])
    # Images by path (not base64), so trajectories name a file the viewer and the report can draw on.
    assert "image" not in tsv.columns
    for relative, answer in zip(tsv["image_path"], tsv["answer"], strict=True):
        with Image.open(out / "eval" / relative) as image:
            assert image.size == (224, 224)
            x1, y1, x2, y2 = json.loads(answer)
            assert 0 <= x1 < x2 <= 224 and 0 <= y1 < y2 <= 224


def test_the_box_is_the_named_shape_and_values_are_disjoint_across_splits(grounding_dir) -> None:
    out, _ = grounding_dir
    seeds = [s for s in formats.read_jsonl(out / "sft/seed.jsonl") if s["task"] == "grounding"]
    train_rows = [r for r in formats.read_parquet(out / "rl/train.parquet") if r["extra_info"]["task"] == "grounding"]
    tsv = formats.read_tsv(out / "eval/DeepEyesMini_Grounding.tsv")
    def key(text: str) -> tuple:
        return EXPRESSION.search(text).groups()

    for seed in seeds:
        target_color, kind, relation, anchor_color, _ = key(seed["text"])
        pixels = np.asarray(Image.open(out / seed["image"]).convert("RGB")).astype(int)
        x1, y1, x2, y2 = json.loads(seed["answer"])
        inside = np.abs(pixels[y1:y2, x1:x2] - PALETTE[target_color]).max(-1) < 40
        assert inside.mean() > 0.4  # the box holds the named colour
        anchor = np.argwhere(np.abs(pixels - PALETTE[anchor_color]).max(-1) < 40)
        (ay, ax) = anchor.mean(0)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        assert {"left of": cx < ax, "right of": cx > ax, "above": cy < ay, "below": cy > ay}[relation]
    trained = {key(s["text"]) for s in seeds} | {key(r["extra_info"]["question"]) for r in train_rows}
    held_out = {key(q) for q in tsv["question"]}
    assert trained and held_out and not trained & held_out
