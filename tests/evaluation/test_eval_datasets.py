"""Reading benchmark TSVs: typing rows, resolving images, and errors that name the column and row."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from deepeyes.evaluation.datasets import DatasetError, load_dataset
from deepeyes.evaluation.templates import build_question


def test_rows_are_typed_by_their_columns(make_tsv):
    path = make_tsv(
        "Mixed",
        [
            {"index": 0, "question": "Which colour?", "answer": "B", "category": "colour", "A": "red", "B": "blue"},
            {"index": 1, "question": "How many?", "answer": "3", "category": "count", "A": "", "B": ""},
        ],
    )
    choice, free = load_dataset("Mixed", path.parent)
    assert (choice.answer_type, choice.choices, choice.category) == ("choice", {"A": "red", "B": "blue"}, "colour")
    assert (free.answer_type, free.choices, free.category) == ("auto", None, "count")
    assert choice.id == "Mixed/0" and choice.row == 1 and free.row == 2
    assert Image.open(io.BytesIO(choice.images[0])).size == (56, 56)
    question = build_question(choice)
    assert "Which colour?" in question and "A. red\nB. blue" in question and "letter" in question
    assert "Options" not in build_question(free)


def test_max_samples_takes_the_first_rows(make_tsv):
    path = make_tsv("Five", [{"index": i, "question": f"q{i}", "answer": str(i)} for i in range(5)])
    assert [s.index for s in load_dataset("Five", path.parent, max_samples=2)] == ["0", "1"]


def test_image_reference_list_and_path_columns(make_tsv, png, tmp_path):
    shared = png("blue", (30, 20))
    path = make_tsv(
        "Refs",
        [
            {"index": 10, "question": "q", "answer": "a", "image": shared},
            {"index": 11, "question": "q", "answer": "a", "image": "10"},  # VLMEvalKit: same image as row index 10
            {"index": 12, "question": "q", "answer": "a", "image": str([png("red"), png("green")])},
        ],
    )
    first, reference, multi = load_dataset("Refs", path.parent)
    assert reference.images == first.images
    assert len(multi.images) == 2 and multi.image_sources == ["Refs.tsv#index=12/0", "Refs.tsv#index=12/1"]

    image_file = tmp_path / "lmu" / "pics" / "one.png"
    image_file.parent.mkdir()
    Image.new("RGB", (40, 40), "white").save(image_file)
    by_path = make_tsv("ByPath", [{"index": 0, "question": "q", "answer": "a", "image_path": "pics/one.png"}], columns=["index", "image_path", "question", "answer"])
    (sample,) = load_dataset("ByPath", by_path.parent)
    assert sample.image_sources == [str(image_file)] and sample.images == [image_file.read_bytes()]


def test_known_benchmark_profiles(make_tsv):
    path = make_tsv(
        "MathVista_MINI",
        [
            {"index": 1, "question": "Which?", "answer": "blue", "question_type": "multi_choice", "answer_type": "text", "choices": "['red', 'blue']", "task": "figure QA"},
            {"index": 2, "question": "How long?", "answer": "2.5", "question_type": "free_form", "answer_type": "float", "choices": "", "task": "geometry"},
        ],
    )
    choice, number = load_dataset("MathVista_MINI", path.parent)
    assert (choice.answer_type, choice.choices, choice.category) == ("choice", {"A": "red", "B": "blue"}, "figure QA")
    assert (number.answer_type, number.category) == ("number", "geometry")


def _error(make_tsv, name: str, rows, columns=None) -> str:
    path = make_tsv(name, rows, columns)
    with pytest.raises(DatasetError) as caught:
        load_dataset(name, path.parent)
    return str(caught.value)


def test_missing_required_column_is_named(make_tsv):
    message = _error(make_tsv, "NoAnswer", [{"index": 0, "question": "q"}])
    assert "missing required column(s) ['answer']" in message and "NoAnswer.tsv" in message


def test_bad_base64_names_row_and_column(make_tsv):
    rows = [{"index": 0, "question": "q", "answer": "a"}, {"index": 7, "question": "q", "answer": "a", "image": "not*base64" * 10}]
    message = _error(make_tsv, "BadImage", rows)
    assert "row 2 (line 3, index='7'), column 'image'" in message and "base64" in message


def test_undecodable_image_names_row_and_column(make_tsv):
    import base64

    rows = [{"index": 3, "question": "q", "answer": "a", "image": base64.b64encode(b"definitely not a png" * 5).decode()}]
    message = _error(make_tsv, "NotImage", rows)
    assert "row 1 (line 2, index='3'), column 'image'" in message and "not a decodable image" in message


def test_empty_answer_names_row_and_column(make_tsv):
    rows = [{"index": 0, "question": "q", "answer": "a"}, {"index": 1, "question": "q", "answer": ""}]
    assert "row 2 (line 3, index='1'), column 'answer': empty" in _error(make_tsv, "EmptyAnswer", rows)


def test_multiple_choice_benchmark_without_options(make_tsv):
    rows = [{"index": 0, "question": "q", "answer": "A", "A": "x", "B": "y"}, {"index": 1, "question": "q", "answer": "B", "A": "", "B": ""}]
    assert "row 2 (line 3, index='1'), column 'A'" in _error(make_tsv, "VStarBench", rows)


def test_option_gap_and_duplicate_index(make_tsv):
    gap = [{"index": 0, "question": "q", "answer": "A", "A": "x", "B": "", "C": "z"}]
    assert "column 'C': option columns must be filled from A without gaps" in _error(make_tsv, "Gap", gap)
    twice = [{"index": 5, "question": "q", "answer": "a"}, {"index": 5, "question": "q", "answer": "b"}]
    assert "row 2 (line 3), column 'index': duplicate index '5'" in _error(make_tsv, "Twice", twice)


def test_ragged_tsv_names_the_line(make_tsv):
    path = make_tsv("Ragged", [{"index": 0, "question": "q", "answer": "a"}])
    with path.open("a") as handle:
        handle.write("1\tx\tq\ta\textra\n")
    with pytest.raises(DatasetError, match=r"Ragged\.tsv: not a well-formed TSV: .*line 3"):
        load_dataset("Ragged", path.parent)


def test_missing_file_lists_what_is_there(make_tsv):
    path = make_tsv("Present", [{"index": 0, "question": "q", "answer": "a"}])
    with pytest.raises(DatasetError, match=r"Absent\.tsv.*LMUDATA.*Present"):
        load_dataset("Absent", path.parent)
    with pytest.raises(DatasetError, match="image_path"):
        load_dataset("X", Path(_only_text(make_tsv)).parent)


def _only_text(make_tsv) -> Path:
    return make_tsv("X", [{"index": 0, "question": "q", "answer": "a"}], columns=["index", "question", "answer"])


def test_required_tools_column_is_read_when_present(make_tsv):
    rows = [
        {"index": 0, "question": "q0", "answer": "1", "required_tools": "code"},
        {"index": 1, "question": "q1", "answer": "2", "required_tools": "search,image_search"},
        {"index": 2, "question": "q2", "answer": "3", "required_tools": ""},
        {"index": 3, "question": "q3", "answer": "4", "required_tools": "none"},
    ]
    path = make_tsv("WithTools", rows)
    samples = load_dataset("WithTools", path.parent)
    assert [s.required_tools for s in samples] == [["code"], ["search", "image_search"], [], []]
    plain = make_tsv("WithoutTools", [{"index": 0, "question": "q", "answer": "a"}])
    assert load_dataset("WithoutTools", plain.parent)[0].required_tools is None  # no column: unknown, not "none"
