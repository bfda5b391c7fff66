"""The tool specs and the runtimes paired with them: names, aliases, collisions, and what is derived from them."""

from __future__ import annotations

import typing

import pytest

from deepeyes import tool_specs, wire
from deepeyes.rewards import score_response
from deepeyes.rewards.payload import reward_extra_fields
from deepeyes.rewards.scoring import compute_score
from deepeyes.tool_manager import ToolManager, ToolsConfig
from deepeyes.tool_specs import CALL_NAMES, STAT_KEYS, TOOL_NAMES, ToolCall, ToolName, ToolSpec
from deepeyes.tools.base import BaseTool
from deepeyes.tools.registry import REGISTRY, ToolRegistry
from deepeyes.trajectory import ToolCallCounts, Trajectory


def test_seed_names_are_aliases() -> None:
    assert tool_specs.resolve(["code_execution", "text_search", "image_search", "code"]) == ["code", "search", "image_search"]
    with pytest.raises(ValueError, match="unknown tool 'browser'"):
        tool_specs.resolve(["browser"])


def test_counts_stats_and_kinds_follow_the_specs() -> None:
    assert TOOL_NAMES == typing.get_args(ToolName) == ("code", "search", "image_search", "image_zoom_in_tool", "select_frames")
    assert STAT_KEYS == (*TOOL_NAMES, "invalid", "failed", "repeated")
    assert tuple(ToolCallCounts().to_dict()) == STAT_KEYS
    # A record written before a tool existed still loads (its count is 0).
    assert ToolCallCounts.from_dict({"code": 2, "invalid": 1}).to_dict()["image_zoom_in_tool"] == 0
    with pytest.raises(ValueError, match="unknown tool"):
        ToolCallCounts.from_dict({"browser": 1})
    # The tool_stats a caller gives are checked against the same keys.
    with pytest.raises(ValueError, match="unknown keys"):
        score_response(wire.answer_action("4"), "4", tool_stats={"browser": 1})


def test_counts_are_typed_fields() -> None:
    counts = ToolCallCounts(code=2, image_zoom_in_tool=1, failed=1)
    assert (counts.code, counts.search, counts.image_zoom_in_tool, counts.total) == (2, 0, 1, 3)
    assert counts.calls() == {"code": 2, "search": 0, "image_search": 0, "image_zoom_in_tool": 1, "select_frames": 0}
    with pytest.raises(AttributeError):
        counts.browser  # noqa: B018 - no attribute is made up for an unknown name


def test_unknown_tool_reason_lists_the_call_names() -> None:
    action = wire.parse_action(wire.tool_call_action("browser", {}))
    assert action.kind == "invalid" and all(name in action.reason for name in CALL_NAMES)
    # Code is written as a <code> block: a tool call by its name is unknown.
    assert wire.parse_action(wire.tool_call_action("code", {"code": "1"})).kind == "invalid"


def test_names_and_aliases_must_not_collide() -> None:
    search = ToolSpec("search", ("text_search",), ToolCall("search", str))
    with pytest.raises(ValueError, match="already taken"):
        tool_specs.index_names([search, ToolSpec("code", ("text_search",), None)])
    with pytest.raises(ValueError, match="reserved"):
        tool_specs.index_names([ToolSpec("code", ("answer",), None)])


def test_one_runtime_per_spec_in_order() -> None:
    assert tuple(tool.spec for tool in REGISTRY.tools()) == tool_specs.TOOL_SPECS
    with pytest.raises(ValueError, match="one runtime per tool spec"):
        ToolRegistry(REGISTRY.tools()[:2])
    assert all(issubclass(tool, BaseTool) for tool in REGISTRY.tools())


def test_disable_tools_accepts_aliases(zoom_manager: ToolManager) -> None:
    zoom_manager.disable_tools(["zoom_in", "text_search"])
    try:
        assert {"image_zoom_in_tool", "search"} <= zoom_manager.disabled_tools
    finally:
        zoom_manager.enable_tools(["image_zoom_in_tool"])
    assert "image_zoom_in_tool" not in zoom_manager.disabled_tools
    assert ToolManager(config=None).config.tools.enabled == list(TOOL_NAMES)
    assert ToolsConfig(enabled=["code_execution"]).enabled == ["code_execution"]


def test_verl_extra_fields_score_on_the_trajectory_route() -> None:
    trajectory = Trajectory(id="t", question="q", images=[], final_answer="4", stop_reason="answer", ground_truth="4")
    trajectory.turns.append(wire.trajectory_from_response(wire.answer_action("4")).turns[0])
    fields = reward_extra_fields(trajectory)
    assert fields["tool_stats"] == trajectory.tool_calls.to_dict()
    # The text handed beside it is ignored when the trajectory is there.
    assert compute_score("d", "garbage", "4", extra_info=fields)["score"] == compute_score("d", wire.answer_action("4"), "4")["score"]
