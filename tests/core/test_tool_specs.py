"""The tool specs are the one list: the record's schema, its counts and the parser agree with them.

Whether a record is valid depends on these static lists alone, never on what a process
registered at run time.
"""

from __future__ import annotations

import dataclasses
import typing

import jsonschema
import pytest

from deepeyes import tool_specs
from deepeyes.tool_specs import STAT_KEYS, TOOL_NAMES, ObservationStatus
from deepeyes.trajectory import Action, ActionKind, ToolCallCounts, Trajectory, Turn, schema, validate
from deepeyes.wire.parse import TURN_VIOLATIONS


def _enum(*path: str) -> list[str]:
    node: typing.Any = schema()
    for key in path:
        node = node[key]
    return node["enum"]


def test_the_schema_lists_what_the_specs_declare() -> None:
    assert list(schema()["properties"]["tool_calls"]["properties"]) == list(STAT_KEYS)
    turn = ("$defs", "turn", "properties")
    assert _enum(*turn, "action", "properties", "kind") == [*TOOL_NAMES, "answer", "invalid"]
    kinds = tuple(kind for literal in typing.get_args(ActionKind) for kind in typing.get_args(literal))
    assert tuple(_enum(*turn, "action", "properties", "kind")) == kinds
    observation = schema()["$defs"]["turn"]["properties"]["observation"]["oneOf"][1]["properties"]
    assert tuple(observation["status"]["enum"]) == typing.get_args(ObservationStatus)
    assert tuple(schema()["$defs"]["turn"]["properties"]["violations"]["items"]["enum"]) == TURN_VIOLATIONS


def test_counts_have_one_field_per_stat_key() -> None:
    assert tuple(field.name for field in dataclasses.fields(ToolCallCounts)) == STAT_KEYS


def test_validity_is_static() -> None:
    record = Trajectory(id="t", question="q", images=[], turns=[Turn(0, "x", Action("invalid"), violations=["no_action"])]).to_dict()
    validate(record)
    for broken in ({**record["tool_calls"], "browser": 1}, {"code": 1}):
        with pytest.raises(jsonschema.ValidationError):
            validate({**record, "tool_calls": broken})
    with pytest.raises(jsonschema.ValidationError):
        validate({**record, "turns": [{**record["turns"][0], "action": {"kind": "browser", "content": ""}}]})
    # A record written before violations were recorded, or before a tool existed, still loads.
    old = {**record, "tool_calls": {"code": 0, "invalid": 1, "failed": 0, "repeated": 0}}
    old["turns"] = [{k: v for k, v in record["turns"][0].items() if k != "violations"}]
    loaded = Trajectory.from_dict(old)
    assert loaded.turns[0].violations == [] and loaded.tool_calls.image_zoom_in_tool == 0


def test_lookups() -> None:
    assert tool_specs.spec("zoom_in") is tool_specs.IMAGE_ZOOM_IN
    assert tool_specs.read_call("search", {"query": " q "}) == ("search", "q")
    assert tool_specs.read_call("code", {}) is None  # code is a <code> block, not a tool call
    with pytest.raises(tool_specs.ToolArgumentError, match="no arguments"):
        tool_specs.read_call("image_search", {"x": 1})
    assert set(tool_specs.accepted_names()) == {
        "code", "code_execution", "search", "text_search", "image_search", "image_zoom_in_tool", "zoom_in",
        "select_frames", "frames",
    }
