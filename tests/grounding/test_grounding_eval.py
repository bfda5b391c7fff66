"""A scripted policy through evaluation: the known Acc@0.5 and mean IoU per category in eval_results.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from deepeyes import wire
from deepeyes.data import formats
from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.runner import evaluate
from deepeyes.policies.base import Generation
from deepeyes.policies.scripted import ScriptedPolicy

TRUTH = [0, 0, 100, 100]
#: row → (category, the policy's answer, its IoU with TRUTH)
ANSWERS = {
    0: ("near", "[0, 0, 100, 100]", 1.0),
    1: ("near", '{"bbox_2d": [0, 0, 100, 80], "label": "object 1"}', 0.8),
    2: ("near", '```json\n[{"bbox_2d": [0, 0, 100, 60], "label": "object 2"}]\n```', 0.6),
    3: ("near", "[0.0, 0.0, 100.0, 50.0]", 0.5),  # exactly at the threshold: counts
    4: ("far", "[0, 0, 100, 45]", 0.45),
    5: ("far", "[0, 0, 100, 20]", 0.2),
    6: ("far", "[0, 0, 100]", 0.0),  # malformed
    7: ("far", "no idea", 0.0),  # no box
}


@pytest.fixture()
def lmudata(tmp_path: Path) -> Path:
    png = formats.png_bytes(Image.new("RGB", (224, 224), (250, 250, 250)))
    rows = [
        {"index": i, "image": formats.png_base64(png), "question": f"Where is object {i}?", "answer": json.dumps(TRUTH), "category": category}
        for i, (category, _, _) in ANSWERS.items()
    ]
    formats.write_tsv(rows, ["index", "image", "question", "answer", "category"], tmp_path / "lmu" / "DeepEyesMini_Grounding.tsv")
    return tmp_path / "lmu"


def answer_for(messages) -> str:
    question = messages[1].content
    assert "Answer with its box [x1, y1, x2, y2]" in question  # posed as the synthetic data poses it
    index = int(re.search(r"object (\d+)", question).group(1))
    return wire.think("I look at the image.") + wire.answer_action(ANSWERS[index][1])


def test_scripted_policy_gives_the_known_acc_at_05(lmudata: Path, tmp_path: Path) -> None:
    config = EvalConfig(
        datasets=["DeepEyesMini_Grounding"], lmudata=str(lmudata), output_dir=str(tmp_path / "out"),
        use_tools=False, show_progress=False, report=True,
    )
    results = evaluate(config, policy=ScriptedPolicy(answer_for))
    written = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    dataset = written["datasets"]["DeepEyesMini_Grounding"]
    grounding = dataset["grounding"]
    assert grounding["n"] == 8 and grounding["acc@0.5"] == pytest.approx(4 / 8)
    assert grounding["mean_iou"] == pytest.approx(sum(v for _, _, v in ANSWERS.values()) / 8, abs=1e-5)
    near, far = grounding["categories"]["near"], grounding["categories"]["far"]
    assert {k: near[k] for k in ("n", "acc@0.5", "mean_iou")} == pytest.approx({"n": 4, "acc@0.5": 1.0, "mean_iou": (1.0 + 0.8 + 0.6 + 0.5) / 4}, abs=1e-5)
    assert {k: far[k] for k in ("n", "acc@0.5", "mean_iou")} == pytest.approx({"n": 4, "acc@0.5": 0.0, "mean_iou": (0.45 + 0.2) / 4}, abs=1e-5)
    # 95 % intervals: Wilson for the 0/1 hits (4 of 8: [21.5 %, 78.5 %]), bootstrap for the IoUs,
    # each holding its estimate and within the observed range.
    assert grounding["acc@0.5_ci"] == pytest.approx([0.2152, 0.7848], abs=1e-3)
    assert near["acc@0.5_ci"][1] == 1.0 and near["acc@0.5_ci"][0] == pytest.approx(0.5101, abs=1e-3)
    low, high = grounding["mean_iou_ci"]
    assert 0.0 <= low < grounding["mean_iou"] < high <= 1.0
    assert far["mean_iou_ci"][0] >= 0.0 and far["mean_iou_ci"][1] <= 0.45
    # The reward's accuracy is the same thresholded IoU, so the usual accuracy agrees.
    assert dataset["overall"]["accuracy"] == pytest.approx(0.5)
    assert results["datasets"]["DeepEyesMini_Grounding"]["grounding"] == grounding
    # The report shows the same figures: one grounding row per group, with n and both intervals.
    page = (tmp_path / "out" / "eval_report.html").read_text()
    table = page[page.index("Grounding: box answers by IoU") :]
    assert "<th>Acc@0.5</th>" in table and "<th>mean IoU</th>" in table
    assert "<td>all</td><td>8</td><td>50.0%</td><td>[21.5, 78.5]</td><td>0.444</td>" in table
    assert "<td>near</td><td>4</td><td>100.0%</td>" in table and "<td>far</td><td>4</td><td>0.0%</td>" in table
    assert (tmp_path / "out" / "eval_report.pdf").read_bytes().startswith(b"%PDF")


def test_datasets_without_boxes_get_no_grounding_block() -> None:
    from deepeyes.evaluation.metrics import dataset_metrics

    record = {"id": "a", "turns": [], "final_answer": "3", "stop_reason": "answer", "metadata": {"category": "c"}, "reward": {"accuracy": 1.0, "score": 1.0, "details": {}}}
    assert "grounding" not in dataset_metrics([record])
