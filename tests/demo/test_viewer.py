"""Loading and filtering trajectory files for the viewer page."""

from __future__ import annotations

import json
from pathlib import Path

from deepeyes import wire
from deepeyes.demo.viewer import (
    TrajectoryFilter,
    correctness_of,
    facets,
    load_trajectories,
    tools_used,
)
from deepeyes.trajectory import Action, Observation, Trajectory, Turn, write_jsonl


def _trajectory(i: int, dataset: str, category: str, kinds: list[str], accuracy: float | None) -> Trajectory:
    turns = [Turn(n, "x", Action(kind, "c"), Observation(wire.tool_response("ok"), 0, "success", 0.0)) for n, kind in enumerate(kinds)]  # type: ignore[arg-type]
    reward = None if accuracy is None else {"accuracy": accuracy, "score": accuracy}
    return Trajectory(id=f"t{i}", question="q", images=[], turns=turns, data_source=dataset, reward=reward, metadata={"category": category})


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.jsonl"
    write_jsonl(
        path,
        [
            _trajectory(0, "Visual", "counting", ["code"], 1.0),
            _trajectory(1, "Visual", "chart", ["code", "search"], 0.0),
            _trajectory(2, "Search", "text_search", ["search"], 1.0),
            _trajectory(3, "demo", "", [], None),
        ],
        append=False,
    )
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n{broken\n")
        handle.write(json.dumps({"id": 1, "question": "q"}) + "\n")
    return path


def test_bad_lines_are_reported_by_number_and_the_rest_load(tmp_path: Path) -> None:
    loaded = load_trajectories(_file(tmp_path))
    assert [t.id for t in loaded.trajectories] == ["t0", "t1", "t2", "t3"]
    assert loaded.errors[0].startswith("line 6: not JSON") and loaded.errors[1].startswith("line 7: not a trajectory record")


def test_filters_combine_dataset_category_result_and_tools(tmp_path: Path) -> None:
    trajectories = load_trajectories(_file(tmp_path)).trajectories
    assert [correctness_of(t) for t in trajectories] == ["correct", "incorrect", "correct", "unscored"]
    assert tools_used(trajectories[1]) == {"code", "search"} and tools_used(trajectories[3]) == {"none"}
    assert TrajectoryFilter().apply(trajectories) == [0, 1, 2, 3]
    assert TrajectoryFilter(datasets=["Visual"]).apply(trajectories) == [0, 1]
    assert TrajectoryFilter(datasets=["Visual"], correctness="incorrect").apply(trajectories) == [1]
    assert TrajectoryFilter(tools=["search"]).apply(trajectories) == [1, 2]
    assert TrajectoryFilter(tools=["none"], correctness="unscored").apply(trajectories) == [3]
    assert TrajectoryFilter(categories=["chart", "counting"], tools=["search"]).apply(trajectories) == [1]
    found = facets(trajectories)
    assert found["datasets"] == ["Search", "Visual", "demo"] and found["categories"] == ["chart", "counting", "none", "text_search"]
    assert found["tools"][-1] == "none" and "code" in found["tools"]


def test_an_uploaded_file_shows_images_only_from_the_allowed_folders(tmp_path: Path) -> None:
    """Issue 30: an uploaded trajectory naming a server-side path must not show that file."""
    from PIL import Image

    from deepeyes.demo.render import render_trajectory
    from deepeyes.demo.viewer import image_reader

    allowed, private = tmp_path / "samples", tmp_path / "private"
    allowed.mkdir()
    private.mkdir()
    Image.new("RGB", (8, 8), "red").save(allowed / "ok.png")
    Image.new("RGB", (8, 8), "blue").save(private / "secret.png")
    sources = [str(allowed / "ok.png"), str(private / "secret.png"), str(allowed / ".." / "private" / "secret.png"), "/etc/shadow"]
    (allowed / "link.png").symlink_to(private / "secret.png")
    sources.append(str(allowed / "link.png"))
    path = tmp_path / "upload.jsonl"
    write_jsonl(path, [Trajectory(id="up", question="q", images=sources)], append=False)
    trajectory = load_trajectories(path).trajectories[0]
    html = render_trajectory(trajectory, may_read=image_reader([allowed]))
    assert html.count('class="de-input"') == 1  # ok.png only
    assert html.count("not shown: outside the folders") == 4
    assert str(private) not in html  # not even the folder's name is echoed
    assert render_trajectory(trajectory, may_read=image_reader([])).count('class="de-input"') == 0
    assert render_trajectory(trajectory).count('class="de-input"') == 4  # the chat page's own runs: any readable path


def test_a_grounding_file_shows_the_boxes_drawn_on_its_image_within_the_allowed_folders(tmp_path: Path) -> None:
    """An evaluation file of a grounding set, opened in the viewer: the page holds the drawn image."""
    from PIL import Image

    from deepeyes.analysis.figures import PREDICTED_RGB, TRUTH_RGB
    from deepeyes.demo.render import render_trajectory
    from deepeyes.demo.viewer import image_reader
    from deepeyes.evaluation.config import EvalConfig
    from deepeyes.evaluation.runner import evaluate
    from deepeyes.policies.scripted import ScriptedPolicy

    lmudata = tmp_path / "lmu"
    lmudata.mkdir()
    Image.new("RGB", (224, 224), (200, 200, 200)).save(lmudata / "grey.png")
    tsv = "index\timage_path\tquestion\tanswer\tcategory\n0\tgrey.png\tWhere is the box?\t[20, 40, 120, 140]\tgrounding\n"
    (lmudata / "refcoco_val.tsv").write_text(tsv, encoding="utf-8")
    config = EvalConfig(datasets=["refcoco_val"], lmudata=str(lmudata), output_dir=str(tmp_path / "eval"), use_tools=False, show_progress=False, report=False)
    evaluate(config, policy=ScriptedPolicy(["<answer>[30, 40, 130, 140]</answer>"]))
    (path,) = (tmp_path / "eval").rglob("*.jsonl")
    trajectory = load_trajectories(path).trajectories[0]

    page = render_trajectory(trajectory, may_read=image_reader([lmudata]))
    assert page.count('class="de-boxes-image"') == 1 and "IoU" not in page.split("de-boxes")[0]
    import base64
    import io
    import re

    (encoded,) = re.findall(r'class="de-boxes-image" src="data:image/png;base64,([^"]+)"', page)
    picture = Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB")
    scale = 320 / 224
    assert picture.getpixel((round(20 * scale) + 1, round(90 * scale))) == TRUTH_RGB
    assert picture.getpixel((round(30 * scale) + 1, round(90 * scale))) == PREDICTED_RGB
    # Outside the allowed folders the image is not read, and the page says so.
    refused = render_trajectory(trajectory, may_read=image_reader([tmp_path / "elsewhere"]))
    assert "de-boxes-image" not in refused and "boxes not drawn: the image is not readable here" in refused
