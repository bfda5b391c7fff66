"""The trajectory renderer: each observation shape of DESIGN §4 read back and shown, text always escaped."""

from __future__ import annotations

from PIL import Image

from deepeyes import wire
from deepeyes.demo.render import (
    TrajectoryMedia,
    render_trajectory,
    render_turn,
    thumbnail_url,
)
from deepeyes.trajectory import Action, Observation, Trajectory, Turn


def _turn(kind: str, content: str, observation_text: str, image_count: int = 0, status: str = "success", model_text: str = "") -> Turn:
    return Turn(0, model_text or wire.think("why") + "call", Action(kind, content), Observation(observation_text, image_count, status, 0.25))  # type: ignore[arg-type]


def test_code_output_shows_stdout_stderr_and_says_when_figures_are_not_stored() -> None:
    text = wire.code_observation("mean 3.5\n", "Warning: <careful>\n", 2)
    html = render_turn(_turn("code", "print(x)", text, image_count=2), images=["data:image/png;base64,AAAA"])
    assert '<pre class="de-stdout">mean 3.5</pre>' in html
    assert '<pre class="de-stderr">Warning: &lt;careful&gt;</pre>' in html
    assert html.count('class="de-figure"') == 1 and "1 image(s) returned; not stored" in html
    assert "Thinking" in html and "250 ms" in html


def test_text_search_entries_become_titled_links_with_dates_and_snippets() -> None:
    body = wire.text_search_body(
        [
            {"title": "Lighthouse <b>", "link": "https://example.org/a", "snippet": "It was lit in 1986.", "date": "2019-11-03"},
            {"title": "Local note", "link": "corpus://7", "snippet": "No web link."},
        ]
    )
    html = render_turn(_turn("search", "lighthouse city", wire.tool_response(body)))
    assert '<div class="de-query">lighthouse city</div>' in html
    assert '<a href="https://example.org/a" target="_blank" rel="noopener">Lighthouse &lt;b&gt;</a>' in html
    assert '<div class="de-date">2019-11-03</div>' in html and "It was lit in 1986." in html
    assert 'href="corpus://7"' not in html and "Local note" in html  # only http(s) links are clickable


def test_image_search_results_pair_thumbnails_with_titles() -> None:
    thumbs = [thumbnail_url(Image.new("RGB", (600, 300), (0, 90, 200)), side=64)]
    text = wire.tool_response(wire.image_search_body(["Blue tower", "Second hit"]))
    html = render_turn(_turn("image_search", "", text, image_count=2), images=thumbs)
    assert html.count('class="de-image-result"') == 2
    assert html.count('class="de-thumb"') == 1 and "(thumbnail not stored)" in html
    assert "Blue tower" in html and "with the original image" in html


def test_errors_and_raw_model_text_are_escaped() -> None:
    error = render_turn(_turn("search", "q", wire.error_response("search failed", "backend <down>"), status="error"))
    assert '<div class="de-error"><b>search failed</b>: backend &lt;down&gt;</div>' in error
    raw = Turn(0, "<script>alert(1)</script>", Action("none"))
    html = render_turn(raw)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_trajectory_has_question_images_answer_and_a_footer() -> None:
    trajectory = Trajectory(id="t1", question="How many?", images=["/nowhere/img.png"], final_answer="5", stop_reason="answer", ground_truth="5", data_source="DeepEyesMini_Visual")
    trajectory.turns.append(Turn(0, wire.answer_action("5"), Action("answer", "5")))
    html = render_trajectory(trajectory)
    assert "How many?" in html and '<div class="de-answer">' in html and "ground truth <b>5</b>" in html
    assert "image_1: /nowhere/img.png" in html  # an input image not on this machine is named, not dropped
    assert "answered · 1 turn(s)" in html
    TrajectoryMedia(inputs=[thumbnail_url(Image.new("RGB", (10, 10)))]).store(trajectory)
    assert html != render_trajectory(trajectory) and 'class="de-input"' in render_trajectory(trajectory)
    assert "The model is working" in render_trajectory(trajectory, running=True)


def _grounding_trajectory(image: str, answer: str = "[30, 40, 130, 140]") -> Trajectory:
    """A grounding row scored by the real reward: its details hold ``box``, ``true_box`` and ``iou``."""
    from deepeyes.rewards import score_response

    text = wire.think("The box.") + wire.answer_action(answer)
    reward = score_response(text, "[20, 40, 120, 140]", data_source="refcoco_val")
    trajectory = Trajectory(
        id="g1", question="Where is the box?", images=[image], final_answer=answer, stop_reason="answer", ground_truth="[20, 40, 120, 140]", reward=reward
    )
    trajectory.turns.append(Turn(0, text, Action("answer", answer)))
    return trajectory


def _drawn(html: str) -> Image.Image:
    import base64
    import io
    import re

    (url,) = re.findall(r'<img class="de-boxes-image" src="data:image/png;base64,([^"]+)"', html)
    return Image.open(io.BytesIO(base64.b64decode(url))).convert("RGB")


def test_a_grounding_row_shows_its_image_with_the_predicted_and_the_true_box(tmp_path) -> None:
    from deepeyes.analysis.figures import OVERLAY_SIDE, PREDICTED_RGB, TRUTH_RGB

    path = tmp_path / "grey.png"
    Image.new("RGB", (448, 224), (200, 200, 200)).save(path)  # wide: shown at 320 x 160
    picture = _drawn(render_trajectory(_grounding_trajectory(str(path))))
    scale = OVERLAY_SIDE / 448
    assert picture.size[0] == OVERLAY_SIDE and picture.size[1] > 160
    middle = round(90 * scale)
    assert picture.getpixel((round(20 * scale) + 1, middle)) == TRUTH_RGB
    assert picture.getpixel((round(130 * scale) - 1, middle)) == PREDICTED_RGB
    assert picture.getpixel((round(200 * scale), middle)) == (200, 200, 200)
    legend = [picture.getpixel((x, 160 + 11)) for x in range(picture.width)]
    assert PREDICTED_RGB in legend and TRUTH_RGB in legend


def test_boxes_that_are_no_region_are_not_drawn_and_other_rows_get_no_picture(tmp_path) -> None:
    from deepeyes.analysis.figures import PREDICTED_RGB, TRUTH_RGB

    path = tmp_path / "grey.png"
    Image.new("RGB", (224, 224), (200, 200, 200)).save(path)
    html = render_trajectory(_grounding_trajectory(str(path), answer="[130, 40, 30, 140]"))  # inverted
    picture = _drawn(html)
    colours = {picture.getpixel((x, y)) for x in range(0, 320, 2) for y in range(0, 320, 2)}
    assert TRUTH_RGB in colours and PREDICTED_RGB not in colours  # the truth from the row's ground truth
    missing = render_trajectory(_grounding_trajectory("/nowhere/img.png"))
    assert "boxes not drawn: cannot read img.png" in missing and "de-boxes-image" not in missing
    plain = Trajectory(id="t", question="q", images=[str(path)], reward={"accuracy": 1.0, "score": 1.0, "details": {}})
    assert "de-boxes" not in render_trajectory(plain)
