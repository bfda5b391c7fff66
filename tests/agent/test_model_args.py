"""One pair of model and tool argument groups and one factory: CLI flags, environment names and old spellings agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.factory import model_arguments
from deepeyes.model_args import (
    ENV_NAMES,
    ModelArguments,
    ToolArguments,
    arguments,
    build_policy,
    build_tool_manager,
    parse_args,
    settings_from_env,
)


def _cli(*argv: str) -> tuple[ModelArguments, ToolArguments]:
    return parse_args(list(argv), prog="test", description="")


def test_cli_flags_environment_names_and_old_spellings_give_the_same_arguments(tmp_path: Path) -> None:
    tools_yaml = str(tmp_path / "tools.yaml")
    flags = _cli(
        "--api_base", "http://127.0.0.1:9/v1", "--served_model", "up", "--adapter_path", "lora", "--max_new_tokens", "77",
        "--temperature", "0.3", "--top_p", "0.9", "--tool_manager_config", tools_yaml, "--use_tools", "false",
        "--disable_tools", "text_search,code_execution", "--max_turns", "3",
    )
    old = _cli(
        "--api_base", "http://127.0.0.1:9/v1", "--upstream_model", "up", "--adapter", "lora", "--max_tokens", "77",
        "--temperature", "0.3", "--top_p", "0.9", "--tool_manager_config", tools_yaml, "--no_tools",
        "--disable_tools", "search", "code", "--max_turns", "3",
    )
    environ = {
        "API_BASE": "http://127.0.0.1:9/v1", "SERVED_MODEL": "up", "ADAPTER_PATH": "lora", "MAX_NEW_TOKENS": "77",
        "TEMPERATURE": "0.3", "TOP_P": "0.9", "TOOL_MANAGER_CONFIG": tools_yaml, "USE_TOOLS": "false",
        "DISABLE_TOOLS": "text_search,code_execution", "MAX_TURNS": "3", "DEVICE": "",  # empty: the default
    }
    from_env = arguments(settings_from_env(environ))
    assert flags == old == from_env
    model, tools = flags
    assert (model.served_model, model.max_new_tokens, tools.disable_tools, tools.use_tools) == ("up", 77, ["search", "code"], False)
    policies = [build_policy(m) for m, _ in (flags, old, from_env)]
    assert all(p.config == policies[0].config for p in policies)  # the same client, built the same way
    assert (policies[0].config.model, policies[0].sampling.max_new_tokens, policies[0].sampling.top_p) == ("up", 77, 0.9)
    assert build_tool_manager(tools) is None  # use_tools false: no services at all


def test_the_local_model_is_built_from_any_spelling_with_the_same_settings(tiny_model_dir: Path) -> None:
    by_flag = build_policy(_cli("--model_path", str(tiny_model_dir), "--max_new_tokens", "9", "--tool_call_threshold", "0.2")[0])
    by_env = build_policy(arguments(settings_from_env({"MODEL_PATH": str(tiny_model_dir), "MAX_NEW_TOKENS": "9", "TOOL_CALL_THRESHOLD": "0.2"}))[0])
    assert by_flag.config == by_env.config and by_flag.sampling == by_env.sampling
    assert by_flag.config.tool_call_threshold == 0.2 and by_flag.sampling.max_new_tokens == 9


def test_every_field_has_one_environment_name_and_evaluation_reads_the_same_fields() -> None:
    fields = [*ModelArguments.__dataclass_fields__, *ToolArguments.__dataclass_fields__]
    assert sorted(ENV_NAMES.values()) == sorted(fields) and all(name == field.upper() for name, field in ENV_NAMES.items())
    config = EvalConfig(model_path="m", adapter_path="a", api_base="http://h/v1", served_model="s", max_new_tokens=33, temperature=0.2, device="cuda")
    assert model_arguments(config) == _cli("--model_path", "m", "--adapter", "a", "--api_base", "http://h/v1", "--served_model", "s",
                                           "--max_new_tokens", "33", "--temperature", "0.2", "--device", "cuda")[0]


def test_bad_settings_are_refused_naming_the_field() -> None:
    with pytest.raises(TypeError, match="max_tokens"):
        arguments({"max_tokens": 5})  # an old spelling is a flag alias only, not a second field name
    with pytest.raises(ValueError, match="disable_tools"):
        ToolArguments(disable_tools=["telepathy"])
    with pytest.raises(ValueError, match="top_p"):
        ModelArguments(top_p=1.5)
    with pytest.raises(SystemExit) as exit_info:
        settings_from_env({"MAX_TURNS": "many"})
    assert exit_info.value.code == 2
