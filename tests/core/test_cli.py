"""Every command line: --help comes from the config dataclasses' field help, flags are snake_case,
unknown flags are refused, shell entry points answer --help without side effects, and relative
paths follow the one rule of docs/configuration.md (taken from the current directory)."""

from __future__ import annotations

import dataclasses
import os
import re
import runpy
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from deepeyes.analysis import cli as analysis_cli
from deepeyes.cli import (
    LoggingArguments,
    QuietLoggingArguments,
    build_parser,
    parse_cli,
)
from deepeyes.config import ConfigError
from deepeyes.data import sft_prepare, to_llamafactory
from deepeyes.data.synth import __main__ as synth_cli
from deepeyes.data.synth.config import SynthConfig
from deepeyes.evaluation import __main__ as eval_cli
from deepeyes.evaluation import compare, format_check, judge_audit
from deepeyes.evaluation.config import EvalConfig
from deepeyes.models import tiny
from deepeyes.paths import REPO_ROOT, resolve_path
from deepeyes.rewards import server as reward_server_cli
from deepeyes.rl.config import RLConfig, load_rl_config
from deepeyes.sandbox import server as sandbox_server
from deepeyes.search import convert_cache, sample_cache
from deepeyes.search.config import resolve_path as search_resolve_path

TRAIN_SCRIPT = REPO_ROOT / "reinforcement_learning" / "train.py"
SERVER_SCRIPT = REPO_ROOT / "reinforcement_learning" / "evaluation_server" / "server.py"
TRAIN = runpy.run_path(str(TRAIN_SCRIPT), run_name="deepeyes_train_cli")


def _infer_cli():
    from deepeyes import infer

    return infer.main, [infer.InferArguments, QuietLoggingArguments]


#: name → (main(argv), the dataclasses its flags come from)
CLIS: dict[str, Callable[[], tuple[Callable[[list[str]], object], list[type]]]] = {
    "evaluation": lambda: (eval_cli.main, [EvalConfig, QuietLoggingArguments]),
    "evaluation.compare": lambda: (compare.main, [compare.CompareArguments]),
    "evaluation.judge_audit": lambda: (judge_audit.main, [judge_audit.JudgeAuditArguments, QuietLoggingArguments]),
    "infer": _infer_cli,
    "train": lambda: (TRAIN["main"], [TRAIN["TrainArguments"], LoggingArguments]),
    "rewards.server": lambda: (reward_server_cli.main, [reward_server_cli.ServerArguments, LoggingArguments]),
    "data.synth": lambda: (synth_cli.main, [SynthConfig, synth_cli.SynthRunArguments]),
    "search.convert_cache": lambda: (convert_cache.main, [convert_cache.ConvertCacheArguments]),
    "models.tiny": lambda: (tiny.main, [tiny.TinyBuildArguments, LoggingArguments]),
    "data.sft_prepare": lambda: (sft_prepare.main, [sft_prepare.PrepareArguments]),
    "data.to_llamafactory": lambda: (to_llamafactory.main, [to_llamafactory.ToLlamaFactoryArguments]),
    "eval.format_check": lambda: (format_check.main, [format_check.FormatCheckArguments]),
    "analysis": lambda: (analysis_cli.main, [analysis_cli.AnalysisArguments, LoggingArguments]),
    "sandbox.server": lambda: (sandbox_server.main, [sandbox_server.SandboxServerArguments, LoggingArguments]),
    "search.sample_cache": lambda: (sample_cache.main, [sample_cache.SampleCacheArguments]),
}

#: The required flags of each CLI, so that an unknown flag is the only fault in the command line.
REQUIRED: dict[str, list[str]] = {
    "evaluation.compare": ["--runs", "a=b"],
    "infer": ["--image", "x.png", "--question", "q"],
    "search.convert_cache": ["--input_json", "c.json"],
    "data.sft_prepare": ["--recipe", "r.yaml", "--data", "d", "--output_dir", "o"],
    "data.to_llamafactory": ["--input", "i", "--out", "o"],
    "eval.format_check": ["--model_path", "m", "--data", "d"],
    "analysis": ["--runs", "a=b", "--out", "o"],
    "sandbox.server": ["--port", "8888"],
}


def _help_text(main: Callable[[list[str]], object], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def _flag_fields(types: list[type]) -> list[dataclasses.Field]:
    return [f for t in types for f in dataclasses.fields(t) if f.init and "help" in f.metadata]


@pytest.mark.parametrize("name", sorted(CLIS))
def test_help_lists_every_field_with_its_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    main, types = CLIS[name]()
    text = _help_text(main, capsys)
    fields = _flag_fields(types)
    assert fields, f"{name}: no field carries help"
    for f in fields:
        assert f"--{f.name}" in text, f"{name}: --{f.name} missing from --help"
        # argparse re-wraps the text (also after hyphens): compare without whitespace.
        assert re.sub(r"\s", "", f.metadata["help"]) in re.sub(r"\s", "", text), f"{name}: help of {f.name} missing"


@pytest.mark.parametrize("name", sorted(CLIS))
def test_documented_flags_are_snake_case(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    main, _ = CLIS[name]()
    usage = _help_text(main, capsys).split(" options: ")[0]
    flags = re.findall(r"--[A-Za-z0-9_-]+", usage)
    assert flags and all("-" not in flag[2:] for flag in flags), flags


def test_a_no_switch_says_it_turns_its_field_off() -> None:
    """Issue 29: ``--no_use_tools`` repeated ``--use_tools``'s help and "(default: False)"."""
    switches = []
    for name in sorted(CLIS):
        _, types = CLIS[name]()
        parser = build_parser(types, prog=name, description="")
        for action in parser._actions:
            if f"--no_{action.dest}" in action.option_strings:
                own = next(a for a in parser._actions if f"--{action.dest}" in a.option_strings)
                assert action.help == f"switch --{action.dest} off (the same as --{action.dest} false)" != own.help
                assert vars(parser.parse_args([f"--no_{action.dest}", *REQUIRED.get(name, [])]))[action.dest] is False
                assert vars(parser.parse_args(REQUIRED.get(name, [])))[action.dest] is own.default is True
                switches.append(f"{name} --no_{action.dest}")
    assert "evaluation --no_use_tools" in switches and "evaluation --no_report" in switches


@pytest.mark.parametrize("name", sorted(CLIS))
def test_unknown_flags_are_refused(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    main, _ = CLIS[name]()
    with pytest.raises(SystemExit) as exited:
        main([*REQUIRED.get(name, []), "--definitely_not_a_flag", "1"])
    assert exited.value.code == 2
    assert "--definitely_not_a_flag" in capsys.readouterr().err


def test_values_the_dataclass_rejects_exit_2_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        eval_cli.main(["--batch_size", "0"])
    assert exited.value.code == 2 and "batch_size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        compare.main(["--runs", "no-equals-sign"])
    assert exited.value.code == 2 and "NAME=PATH" in capsys.readouterr().err


def test_old_spellings_still_parse_to_the_same_config() -> None:
    new, _ = eval_cli.parse_args(["--output_dir", "o", "--no_show_progress", "--max_samples", "3", "--datasets", "A", "B"])
    old, _ = eval_cli.parse_args(["--output", "o", "--no_progress", "--max-samples", "3", "--datasets", "A,B"])
    assert new == old and new.datasets == ["A", "B"] and not new.show_progress


def test_analysis_flags_written_before_parse_cli_still_parse(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--runs", "base=a", "rl=b", "--out", "o", "--collapse_fraction", "0.4", "--collapse_patience", "2",
            "--examples_per_group", "3", "--top_paths", "6", "--validate", "--no_progress", "--log_level", "WARNING"]
    args, logging_args = parse_cli([analysis_cli.AnalysisArguments, LoggingArguments], argv, prog="a", description="")
    assert args.named_runs() == {"base": "a", "rl": "b"} and not args.progress and logging_args.log_level == "WARNING"
    config = args.analysis_config()
    assert (config.collapse_fraction, config.collapse_patience, config.examples_per_group, config.top_paths, config.full_validation) == (0.4, 2, 3, 6, True)
    with pytest.raises(SystemExit) as exited:
        analysis_cli.main(["--runs", "x=a", "x=b", "--out", "o"])
    assert exited.value.code == 2 and "unique" in capsys.readouterr().err


def test_sandbox_server_flags_written_before_parse_cli_still_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["--port", "8888", "--host", "0.0.0.0", "--redis_host", "10.0.0.2", "--redis_port", "6380", "--pool_size", "4",
            "--max_sessions", "8", "--config", str(REPO_ROOT / "tool_manager_config.yaml"), "--config_section", "sandbox",
            "--work_dir", "work", "--log_level", "DEBUG", "--exit_with_parent"]  # SandboxCluster ends with --exit_with_parent
    args, logging_args = parse_cli([sandbox_server.SandboxServerArguments, LoggingArguments], argv, prog="s", description="")
    assert (args.port, args.exit_with_parent, logging_args.log_level) == (8888, True, "DEBUG")
    config = sandbox_server.build_config(args)
    assert (config.host, config.redis_host, config.redis_port, config.pool_size, config.max_sessions) == ("0.0.0.0", "10.0.0.2", 6380, 4, 8)
    assert config.work_dir == tmp_path / "work"
    with pytest.raises(ConfigError, match="--redis_port"):
        sandbox_server.build_config(parse_cli([sandbox_server.SandboxServerArguments], ["--port", "1"], prog="s", description="")[0])


def test_repeated_list_flags_collect_every_value() -> None:
    (args,) = parse_cli([TRAIN["TrainArguments"]], ["--set", "a=1", "b=2", "--set", "c=3", "--no-progress"], prog="t", description="")
    assert args.set == ["a=1", "b=2", "c=3"] and args.progress is False and args.resume is None
    (args,) = parse_cli([TRAIN["TrainArguments"]], ["--resume"], prog="t", description="")
    assert args.resume == "auto"


def test_fields_without_a_flag_form_keep_their_defaults() -> None:
    parser = build_parser([SynthConfig], prog="synth", description="")
    assert "--training_mixture" not in parser.format_help()
    (config,) = parse_cli([SynthConfig], ["--sft", "3"], prog="synth", description="")
    assert config.sft == 3 and config.training_mixture == SynthConfig().training_mixture


@pytest.mark.parametrize("entry", [[str(SERVER_SCRIPT)], ["-m", "deepeyes.rewards.server"], [str(TRAIN_SCRIPT)]])
def test_seed_facing_entry_points_answer_help(entry: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, *entry, "--help"], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout or "--config" in result.stdout


def test_gunicorn_serves_the_factory_with_the_cli_config(tmp_path: Path) -> None:
    from gunicorn.util import import_app

    config = tmp_path / "reward.yaml"
    config.write_text("weights: [0.0, 0.0, 1.0]\n", encoding="utf-8")
    args = reward_server_cli.ServerArguments(config=str(config), workers=2)
    target = reward_server_cli.gunicorn_argv(args, "WARNING")[-1]
    assert target.startswith("deepeyes.rewards.service:create_app(")
    app = import_app(target)  # the exact string gunicorn receives
    assert app.config["SCORER"].config.weights == [0.0, 0.0, 1.0]


# ---- shell entry points -------------------------------------------------------------------

SHELL_SCRIPTS = {
    "cold_start/run_cold_start.sh": ("OUTPUT_DIR", "RECIPE", "LEARNING_RATE"),
    "evaluation/run_eval.sh": ("MODEL_PATH", "OUTPUT_REPORT", "MAX_SAMPLES"),
    "scripts/quickstart.sh": ("OUT", "EVAL_SAMPLES", "RL_STEPS"),
    "setup.sh": ("--with-vlmeval", "DEEPEYES_SKIP_APT", "PYTHON"),
}


def _tree(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.mark.parametrize("script", sorted(SHELL_SCRIPTS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_shell_help_prints_variables_and_touches_nothing(script: str, flag: str, tmp_path: Path) -> None:
    # A copy of the script in an empty checkout: whatever it would create, start or train shows up there.
    copy = tmp_path / script
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / script, copy)
    before = _tree(tmp_path)
    env = {**os.environ, "OUTPUT_DIR": str(tmp_path / "would_train_here"), "OUT": str(tmp_path / "would_run_here")}
    result = subprocess.run(["bash", str(copy), flag], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 0, result.stderr
    for variable in SHELL_SCRIPTS[script]:
        assert variable in result.stdout
    assert "set -euo" not in result.stdout  # the header only, not the code
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_the_test_runner_answers_help_without_set_up(flag: str, tmp_path: Path) -> None:
    """Other arguments go to pytest after set-up; help alone must not set anything up."""
    copy = tmp_path / "scripts" / "test.sh"
    copy.parent.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / "test.sh", copy)
    before = _tree(tmp_path)
    result = subprocess.run(["bash", str(copy), flag], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert "pytest" in result.stdout and "set -euo" not in result.stdout
    assert _tree(tmp_path) == before


def test_cold_start_help_no_longer_starts_a_training_run(tmp_path: Path) -> None:
    """The reported case: the real script, with a working .venv, used to train into OUTPUT_DIR."""
    env = {**os.environ, "OUTPUT_DIR": str(tmp_path / "cold_start")}
    script = REPO_ROOT / "cold_start" / "run_cold_start.sh"
    result = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 0 and "OUTPUT_DIR" in result.stdout
    assert "training:" not in result.stdout and not (tmp_path / "cold_start").exists()


@pytest.mark.parametrize("script", sorted(SHELL_SCRIPTS))
def test_shell_scripts_refuse_unknown_arguments(script: str, tmp_path: Path) -> None:
    copy = tmp_path / script
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / script, copy)
    before = _tree(tmp_path)
    result = subprocess.run(["bash", str(copy), "--bogus_option"], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    if script == "evaluation/run_eval.sh":
        # Its arguments go to `python -m deepeyes.evaluation`, which refuses the flag before anything runs;
        # the copy has no .venv, so here the script stops even earlier.
        assert result.returncode != 0
    else:
        assert result.returncode == 2 and "--bogus_option" in result.stderr
    assert _tree(tmp_path) == before


def test_run_eval_passes_unknown_flags_to_the_python_cli_which_refuses_them(tmp_path: Path) -> None:
    env = {**os.environ, "OUTPUT_REPORT": str(tmp_path / "eval")}
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "evaluation" / "run_eval.sh"), "--bogus_option"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "--bogus_option" in result.stderr
    assert not (tmp_path / "eval").exists()


# ---- one path rule: relative paths are taken from the current directory ---------------------


def test_relative_paths_are_taken_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_path("a/b.yaml") == tmp_path / "a" / "b.yaml"
    assert resolve_path("/abs/x") == Path("/abs/x")
    assert resolve_path("~/x") == Path.home() / "x"
    # RL: paths inside the YAML and --set values alike.
    (tmp_path / "configs").mkdir()
    config_file = tmp_path / "configs" / "rl.yaml"
    config_file.write_text("model:\n  sft_lora_path: adapters/sft\n", encoding="utf-8")
    config = load_rl_config(config_file, ["output.dir=runs/rl"])
    assert config.resolve(config.model.sft_lora_path) == tmp_path / "adapters" / "sft"  # not configs/adapters/sft
    assert config.resolve(config.output.dir) == tmp_path / "runs" / "rl"
    # Search (tool_manager_config.yaml) follows the same rule.
    assert search_resolve_path("data/corpus.jsonl") == tmp_path / "data" / "corpus.jsonl"
    # A cold-start recipe's deepspeed path too.
    recipe = tmp_path / "configs" / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"deepspeed": "ds/z3.json"}), encoding="utf-8")
    assert sft_prepare.load_recipe(recipe)["deepspeed"] == str(tmp_path / "ds" / "z3.json")


def test_convert_cache_reads_and_writes_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    (tmp_path / "cache" / "img").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "cache" / "img" / "a.png")
    (tmp_path / "cache" / "c.json").write_text(
        '{"0": {"tool_returned_web_title": ["t"], "cached_images_path": ["img/a.png"]}}', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    assert convert_cache.main(["--input_json", "cache/c.json", "--output_json", "out/c.json"]) == 0
    converted = yaml.safe_load((tmp_path / "out" / "c.json").read_text(encoding="utf-8"))
    assert converted["0"]["cached_images_path"] == [str(tmp_path / "cache" / "img" / "a.png")]


# ---- configs are not mutated after loading --------------------------------------------------


def test_loaded_configs_are_frozen() -> None:
    config = RLConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rollout.n = 3  # type: ignore[misc]
    changed = dataclasses.replace(config, rollout=dataclasses.replace(config.rollout, n=3))
    assert (changed.rollout.n, config.rollout.n) == (3, RLConfig().rollout.n)
    with pytest.raises(dataclasses.FrozenInstanceError):
        EvalConfig().max_turns = 2  # type: ignore[misc]


def test_overrides_leave_the_loaded_document_alone() -> None:
    from deepeyes.rl.config import apply_overrides

    document = {"rollout": {"n": 2}}
    merged = apply_overrides(document, ["rollout.n=8", "training.learning_rate=1e-4"])
    assert merged == {"rollout": {"n": 8}, "training": {"learning_rate": 1e-4}}
    assert document == {"rollout": {"n": 2}}


def test_a_help_that_explains_its_default_is_not_followed_by_another() -> None:
    """'(default: none here; …)' then '(default: None)' read as a contradiction in --help."""
    @dataclasses.dataclass(frozen=True)
    class Paths:
        image_root: str | None = dataclasses.field(default=None, metadata={"help": "base for relative paths (default: each input's directory)"})
        workers: int = dataclasses.field(default=1, metadata={"help": "worker processes"})

    text = " ".join(build_parser([Paths], prog="p", description="d").format_help().split())
    assert "(default: each input's directory)" in text and "(default: None)" not in text
    assert "worker processes (default: 1)" in text
