"""Frame-tool use and video share per category, read from the records' own counters.

The frame-selection tool's counter (``select_frames``) is added to hand-made records after
they are built, as a record of a stage with that tool carries it: the analysis must count it
per category without knowing the tool's name in advance.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import NUMERIC_CODE, trajectory, turn

from deepeyes.analysis.aggregate import AnalysisConfig, RunAggregator
from deepeyes.analysis.report import _tool_table


def _video_record(id: str, category: str, frame_calls: int, accuracy: float) -> dict[str, Any]:
    record = trajectory(id, category, [turn(0, "code", NUMERIC_CODE), turn(1, "answer", "left")], accuracy)
    record["tool_calls"]["select_frames"] = frame_calls
    record["videos"] = [{"source": f"videos/{id}", "frames": 8}]
    return record


def _summary() -> dict[str, Any]:
    aggregator = RunAggregator(AnalysisConfig())
    for record in (
        _video_record("v1", "video_motion", frame_calls=2, accuracy=1.0),
        _video_record("v2", "video_motion", frame_calls=0, accuracy=0.0),
        _video_record("v3", "video_order", frame_calls=1, accuracy=1.0),
        trajectory("i1", "counting", [turn(0, "code", NUMERIC_CODE), turn(1, "answer", "3")], 1.0),
    ):
        aggregator.add(record)
    return aggregator.summary()


def test_frame_tool_use_is_counted_per_category() -> None:
    summary = _summary()
    assert "select_frames" in summary["tools"]
    motion, order, counting = (summary["categories"][c] for c in ("video_motion", "video_order", "counting"))
    assert motion["counts"]["calls"]["select_frames"] == 2 and motion["tool_use_rate"]["select_frames"] == 0.5
    assert motion["calls_per_trajectory"]["select_frames"] == 1.0
    assert order["tool_use_rate"]["select_frames"] == 1.0
    assert counting["counts"]["calls"]["select_frames"] == 0 and counting["tool_use_rate"]["select_frames"] == 0.0
    assert summary["overall"]["counts"]["trajectories_using"]["select_frames"] == 2


def test_video_share_per_category_and_in_the_tool_table() -> None:
    summary = _summary()
    assert summary["overall"]["video_rate"] == pytest.approx(3 / 4)
    assert summary["categories"]["video_motion"]["video_rate"] == 1.0 and summary["categories"]["counting"]["video_rate"] == 0.0
    html = _tool_table({**summary, "browser": {"groups": {}}})
    assert "<th>with video</th>" in html and "<th>uses select_frames</th>" in html


def test_runs_without_videos_keep_their_table() -> None:
    aggregator = RunAggregator(AnalysisConfig())
    aggregator.add(trajectory("i1", "counting", [turn(0, "answer", "3")], 1.0))
    summary = aggregator.summary()
    assert summary["overall"]["video_rate"] == 0.0
    assert "with video" not in _tool_table({**summary, "browser": {"groups": {}}})
