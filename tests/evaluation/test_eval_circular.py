"""CircularEval: rotations re-map letters and texts together; a position-biased policy is exposed."""

from __future__ import annotations

import json
import re

import pytest

from deepeyes.evaluation.circular import rotatable, rotate, rotations
from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.datasets import EvalSample, gold_option
from deepeyes.evaluation.runner import evaluate
from deepeyes.policies.scripted import ScriptedPolicy

ANIMALS = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}


def _sample(answer: str, choices: dict[str, str] | None = ANIMALS, question: str = "Which animal is shown?") -> EvalSample:
    return EvalSample("Set", "7", 1, question, answer, "choice" if choices else "auto", "all", choices=choices)


def test_rotation_moves_texts_and_the_gold_letter_together():
    sample = _sample("B")  # gold text: dog
    first, second, third = (rotate(sample, shift) for shift in (1, 2, 3))
    assert first.choices == {"A": "dog", "B": "bird", "C": "fish", "D": "cat"} and first.answer == "A"
    assert second.choices == {"A": "bird", "B": "fish", "C": "cat", "D": "dog"} and second.answer == "D"
    assert third.choices == {"A": "fish", "B": "cat", "C": "dog", "D": "bird"} and third.answer == "C"
    for rotated in (first, second, third):
        assert rotated.choices[rotated.answer] == "dog"
    assert [r.id for r in rotations([sample])] == ["Set/7@rot1", "Set/7@rot2", "Set/7@rot3"]
    # A gold answer given as the option's text is re-lettered the same way.
    assert rotate(_sample("dog"), 1).answer == "A"


def test_rows_that_cannot_be_rotated_are_left_out():
    assert not rotatable(_sample("7", choices=None))  # open question
    assert not rotatable(_sample("E"))  # answer is none of the options
    assert gold_option(_sample("E")) is None and gold_option(_sample("(C)")) == "C"
    listed = _sample("A", question="Which animal is shown?\nChoices: cat, dog, bird, fish")  # MathVista spells them out
    assert not rotatable(listed)
    with pytest.raises(ValueError, match="rotation must be within"):
        rotate(_sample("A"), 4)
    assert rotations([_sample("7", choices=None), _sample("E")]) == []


KNOWN = {"What swims?": "fish", "What barks?": "dog"}
OPTION_LINE = re.compile(r"^([A-J])\. (.*)$", re.MULTILINE)


def biased_policy(messages) -> str:
    """Knows two answers and picks the letter that now shows that text; otherwise always says A."""
    question = next(m.content for m in messages if m.role == "user")
    for known, text in KNOWN.items():
        if known in question:
            letter = next(letter for letter, option in OPTION_LINE.findall(question) if option == text)
            return f"<answer>{letter}</answer>"
    return "<answer>A</answer>"


def test_position_bias_scores_high_plainly_and_low_circularly(make_tsv, tmp_path):
    rows = [{"index": i, "question": f"Which animal is in picture {i}?", "answer": "A", "category": "guess", **ANIMALS} for i in range(6)]
    rows += [
        {"index": 6, "question": "What swims?", "answer": "D", "category": "known", **ANIMALS},
        {"index": 7, "question": "What barks?", "answer": "B", "category": "known", **ANIMALS},
        {"index": 8, "question": "How many legs does a cat have?", "answer": "4", "category": "open"},
    ]
    lmudata = make_tsv("Biased", rows).parent
    config = EvalConfig(
        datasets=["Biased"], lmudata=str(lmudata), output_dir=str(tmp_path / "out"), use_tools=False,
        circular=True, show_progress=False, report=False,
    )
    results = evaluate(config, policy=ScriptedPolicy(biased_policy))
    overall = results["datasets"]["Biased"]["overall"]
    # Plain: the 6 gold-A rows by position, the 2 known rows by content; the open row wrong → 8 / 9.
    assert overall["accuracy"] == pytest.approx(8 / 9)
    # Circular: only the 2 known rows survive all 4 rotations, of the 8 multiple-choice rows.
    assert (overall["circular_accuracy"], overall["circular_n"]) == (0.25, 8)
    categories = results["datasets"]["Biased"]["categories"]
    assert (categories["guess"]["accuracy"], categories["guess"]["circular_accuracy"]) == (1.0, 0.0)
    assert (categories["known"]["accuracy"], categories["known"]["circular_accuracy"]) == (1.0, 1.0)
    assert categories["open"]["circular_accuracy"] is None
    assert results["overall"]["circular_accuracy"] == 0.25

    lines = (tmp_path / "out" / "circular" / "Biased.jsonl").read_text().splitlines()
    assert len(lines) == 8 * 3  # rotations 1…3 of each multiple-choice row; rotation 0 is the plain run
    records = {r["id"]: r for r in map(json.loads, lines)}
    swims = records["Biased/6@rot1"]  # gold "fish" was D; one place on it is C
    assert swims["metadata"]["rotation"] == 1 and swims["metadata"]["choices"]["C"] == "fish"
    assert swims["final_answer"] == "C" and swims["reward"]["accuracy"] == 1.0
    assert records["Biased/0@rot1"]["reward"]["accuracy"] == 0.0  # "A" is now the text of option B
    assert len((tmp_path / "out" / "trajectories" / "Biased.jsonl").read_text().splitlines()) == 9  # analysis sees the set as published
