"""Resume after a crash (issue 25 item 10): readers of result files skip a torn last line,
whatever byte the cut fell on, and say so naming the file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from deepeyes.evaluation.store import TrajectoryStore
from deepeyes.trajectory import Action, Trajectory, Turn, read_jsonl


def record(index: int, question: str = "q") -> Trajectory:
    turn = Turn(0, "<answer>北京</answer>", Action("answer", "北京"))
    return Trajectory(id=f"t{index}", question=question, images=[], turns=[turn], final_answer="北京", stop_reason="answer")


def lines(count: int) -> bytes:
    return b"".join(record(i).to_json().encode() + b"\n" for i in range(count))


def torn(text: str, inside: str) -> bytes:
    """The line of ``text`` cut one byte into the multi-byte character ``inside``."""
    raw = text.encode()
    return raw[: raw.index(inside.encode()) + 1]


CUTS = {
    "inside a multi-byte character": lambda: torn(record(9, "北京在哪里？").to_json(), "在"),
    "inside a string": lambda: record(9).to_json().encode()[:40],
    "after the closing brace, before the newline": lambda: record(9).to_json().encode(),
}


@pytest.mark.parametrize("cut", list(CUTS))
def test_resume_skips_the_torn_line_says_so_and_appends_cleanly(tmp_path: Path, cut: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "SetA.jsonl"
    path.write_bytes(lines(3) + CUTS[cut]())
    store = TrajectoryStore(path)
    with caplog.at_level(logging.WARNING, logger="deepeyes.evaluation.store"):
        finished = store.load_finished()  # raised UnicodeDecodeError for a cut inside a character
    complete = cut.startswith("after")  # the record itself is whole: it counts, only the newline was lost
    assert sorted(finished) == ["t0", "t1", "t2", *(["t9"] if complete else [])]
    if not complete:
        assert f"{path} line 4 skipped, that sample will be re-run: torn last line" in caplog.text
    store.append(record(5))
    assert [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()] == sorted(finished) + ["t5"]


def test_the_strict_reader_skips_only_a_torn_last_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "trajectories.jsonl"
    path.write_bytes(lines(2) + CUTS["inside a multi-byte character"]())
    with caplog.at_level(logging.WARNING, logger="deepeyes.trajectory"):
        assert [t.id for t in read_jsonl(path)] == ["t0", "t1"]  # raised UnicodeDecodeError before
    assert f"{path} line 3 skipped: torn last line" in caplog.text
    path.write_bytes(lines(1) + b"\xe5\x8c\n" + lines(1))  # a bad line in the middle is not a crash's tear
    with pytest.raises(ValueError, match=r"trajectories\.jsonl:2: not JSON"):
        read_jsonl(path)
