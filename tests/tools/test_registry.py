"""The tool registry: names, aliases, collisions, and everything derived from it."""

from __future__ import annotations

import pytest

from deepeyes import wire
from deepeyes.rewards import score_response
from deepeyes.rewards.payload import reward_extra_fields
from deepeyes.rewards.scoring import compute_score
from deepeyes.tool_manager import ToolManager, ToolsConfig
from deepeyes.tools.base import BaseTool
from deepeyes.tools.registry import REGISTRY, ToolRegistry, stat_keys, tool_names
from deepeyes.trajectory import ToolCallCounts, Trajectory


def test_seed_names_are_aliases() -> None:
    assert REGISTRY.resolve(["code_execution", "text_search", "image_search", "code"]) == ["code", "search", "image_search"]
    with pytest.raises(ValueError, match="unknown tool 'browser'"):
        REGISTRY.resolve(["browser"])


def test_counts_stats_and_kinds_follow_the_registry() -> None:
    assert tool_names()[:3] == ("code", "search", "image_search")
    assert stat_keys() == (*tool_names(), "invalid", "failed", "repeated")
    assert tuple(ToolCallCounts().to_dict()) == stat_keys()
    # A record written before a tool existed still loads (its count is 0).
    assert ToolCallCounts(code=2, invalid=1).to_dict()["image_zoom_in_tool"] == 0
    with pytest.raises(ValueError, match="unknown tool"):
        ToolCallCounts(browser=1)
    # The tool_stats a caller gives are checked against the same keys.
    with pytest.raises(ValueError, match="unknown keys"):
        score_response(wire.answer_action("4"), "4", tool_stats={"browser": 1})


def test_unknown_tool_reason_lists_the_registered_call_names() -> None:
    action = wire.parse_action(wire.tool_call_action("browser", {}))
    assert action.kind == "invalid" and all(name in action.reason for name in REGISTRY.call_names())


def test_names_and_aliases_must_not_collide() -> None:
    class Clash(BaseTool):
        name, call_name, aliases = "grep", "grep", ("text_search",)

    class Reserved(BaseTool):
        name, call_name, aliases = "answer", None, ()

    registry = ToolRegistry()
    registry._loaded = True  # an empty registry: only the tools registered here
    registry.register(type("Search", (BaseTool,), {"name": "search", "call_name": "search", "aliases": ("text_search",)}))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Clash)
    with pytest.raises(ValueError, match="reserved"):
        registry.register(Reserved)


def test_disable_tools_accepts_aliases(zoom_manager: ToolManager) -> None:
    zoom_manager.disable_tools(["zoom_in", "text_search"])
    try:
        assert {"image_zoom_in_tool", "search"} <= zoom_manager.disabled_tools
    finally:
        zoom_manager.enable_tools(["image_zoom_in_tool"])
    assert "image_zoom_in_tool" not in zoom_manager.disabled_tools
    assert ToolManager(config=None).config.tools.enabled == list(tool_names())
    assert ToolsConfig(enabled=["code_execution"]).enabled == ["code_execution"]


def test_verl_extra_fields_score_on_the_trajectory_route() -> None:
    trajectory = Trajectory(id="t", question="q", images=[], final_answer="4", stop_reason="answer", ground_truth="4")
    trajectory.turns.append(wire.trajectory_from_response(wire.answer_action("4")).turns[0])
    fields = reward_extra_fields(trajectory)
    assert fields["tool_stats"] == trajectory.tool_calls.to_dict()
    # The text handed beside it is ignored when the trajectory is there.
    assert compute_score("d", "garbage", "4", extra_info=fields)["score"] == compute_score("d", wire.answer_action("4"), "4")["score"]
