"""DAPO dynamic sampling (``algorithm.filter_groups``): which groups are dropped, how the batch
is refilled from the next prompts, the cap on rounds, what a step logs, config and verl keys."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from deepeyes.agent import Rollout
from deepeyes.config import ConfigError
from deepeyes.paths import REPO_ROOT
from deepeyes.rl import verl_launch
from deepeyes.rl.checkpoint import TrainerState
from deepeyes.rl.config import FilterGroupsConfig, RLSetupError, load_rl_config
from deepeyes.rl.data import PromptSchedule, RLPrompt
from deepeyes.rl.dynamic_sampling import PromptStream, constant_groups, fill_batch
from deepeyes.rl.local_engine import (
    STREAM_FILE,
    LocalTrainer,
    _Scored,
    _stream_position,
)
from deepeyes.trajectory import Trajectory, read_jsonl

CONFIG_DIR = REPO_ROOT / "reinforcement_learning" / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "deepeyes_rl.yaml"
ON = FilterGroupsConfig(enable=True, metric="score", max_num_gen_batches=5)


def _prompts(count: int) -> list[RLPrompt]:
    return [RLPrompt(f"p{i}", f"question {i}?", [], str(i), None, None, {}) for i in range(count)]


def _result(score: float, accuracy: float = 0.0) -> dict[str, float]:
    return {"score": score, "accuracy": accuracy, "format": 1.0, "tool_efficiency": 0.0, "task_completion": 0.0}


class FakeRollouts:
    """Stands in for rollout + reward: each prompt's ``n`` results come from a table."""

    def __init__(self, table: dict[str, list[dict[str, float]]]):
        self.table = table
        self.calls: list[list[str]] = []

    def __call__(self, prompts: list[RLPrompt]) -> list[tuple[str, dict[str, float]]]:
        self.calls.append([p.uid for p in prompts])
        return [(p.uid, result) for p in prompts for result in self.table[p.uid]]


def _values(batch: list[tuple[str, dict[str, float]]], metric: str) -> tuple[list[str], list[float]]:
    return [uid for uid, _ in batch], [result[metric] for _, result in batch]


# -- the filter ----------------------------------------------------------------------------------


def test_groups_whose_values_are_all_equal_are_the_constant_ones():
    groups = ["all-right"] * 4 + ["all-wrong"] * 4 + ["mixed"] * 4 + ["alone"]
    values = [1.0] * 4 + [-0.225] * 4 + [0.0, 1.0, 0.0, 0.0] + [0.5]
    # A single sample cannot show a spread: kept, as verl keeps it.
    assert constant_groups(groups, values) == {"all-right", "all-wrong"}
    # Equal to the last bit: 0.1 three times sums to 0.30000000000000004, whose mean is not 0.1.
    assert constant_groups(["g"] * 3, [0.1, 0.1, 0.1]) == {"g"}
    assert constant_groups(["g"] * 2, [0.1, 0.1 + 1e-12]) == set()
    with pytest.raises(ValueError, match="2 group ids for 3 values"):
        constant_groups(["a", "b"], [1.0, 2.0, 3.0])


def test_the_metric_decides_which_groups_are_dropped():
    # Scores differ (format, tools) while every answer is wrong: signal on score, none on accuracy.
    table = {"p0": [_result(0.3, 0.0), _result(-0.2, 0.0)], "p1": [_result(1.0, 1.0), _result(0.2, 0.0)]}
    batch = FakeRollouts(table)(_prompts(2))
    for metric, dropped in (("score", set()), ("accuracy", {"p0"})):
        filled = fill_batch(2, FilterGroupsConfig(enable=True, metric=metric, max_num_gen_batches=1), lambda k: _prompts(2)[:k], lambda _: batch, _values)
        assert filled.rounds[0].dropped == dropped


# -- the loop ------------------------------------------------------------------------------------


def test_the_batch_is_refilled_from_the_next_prompts_until_full():
    prompts = _prompts(8)
    stream = PromptStream(PromptSchedule(prompts, batch_size=2, seed=0, shuffle=False))
    constant, spread = [_result(0.0)] * 2, [_result(0.0), _result(1.0)]
    generate = FakeRollouts({"p0": constant, "p1": spread, "p2": constant, "p3": constant, "p4": spread, "p5": spread})
    filled = fill_batch(2, ON, stream.take, generate, _values)
    # Round 1: p0 dropped, p1 kept; round 2 draws one prompt (p2, dropped); round 3 the next (p3, dropped); then p4.
    assert generate.calls == [["p0", "p1"], ["p2"], ["p3"], ["p4"]]
    assert [r.kept for r in filled.rounds] == [{"p1"}, set(), set(), {"p4"}]
    assert filled.metrics() == {"filter_groups/kept": 2.0, "filter_groups/dropped": 3.0, "filter_groups/gen_rounds": 4.0}
    assert stream.position == 5  # the next step starts at p5: nothing repeated, nothing skipped


def test_rounds_stop_at_the_cap_with_what_was_kept(caplog: pytest.LogCaptureFixture):
    stream = PromptStream(PromptSchedule(_prompts(8), batch_size=2, seed=0, shuffle=False))
    generate = FakeRollouts({f"p{i}": [_result(-0.225)] * 4 for i in range(8)} | {"p1": [_result(0.0), _result(1.0)]})
    with caplog.at_level(logging.WARNING):
        filled = fill_batch(2, FilterGroupsConfig(enable=True, max_num_gen_batches=3), stream.take, generate, _values)
    assert len(filled.rounds) == 3 and filled.kept_groups == 1 and filled.dropped_groups == 3
    assert stream.position == 4
    assert "1 of 2 groups have signal after 3 generation rounds" in caplog.text


def test_without_filtering_one_round_keeps_every_group():
    stream = PromptStream(PromptSchedule(_prompts(4), batch_size=2, seed=0, shuffle=False))
    generate = FakeRollouts({f"p{i}": [_result(0.0)] * 2 for i in range(4)})
    filled = fill_batch(2, FilterGroupsConfig(enable=False), stream.take, generate, _values)
    assert generate.calls == [["p0", "p1"]] and filled.rounds[0].kept == {"p0", "p1"} and filled.dropped_groups == 0


def test_the_stream_reads_the_schedules_batches_and_resumes_at_its_position():
    schedule = PromptSchedule(_prompts(7), batch_size=2, seed=3)
    stream = PromptStream(schedule)
    drawn = [p.uid for step in range(5) for p in stream.take(2)]
    assert drawn == [p.uid for step in range(5) for p in schedule.batch(step)]  # without refills: the old order
    uneven = PromptStream(schedule)
    assert [p.uid for k in (3, 1, 4, 2) for p in uneven.take(k)] == drawn
    resumed = PromptStream(schedule, position=3)
    assert [p.uid for p in resumed.take(4)] == drawn[3:7]
    first_epoch = drawn[: 2 * schedule.steps_per_epoch]
    assert len(set(first_epoch)) == len(first_epoch)


# -- the engine's step ---------------------------------------------------------------------------


def _scored(prompts: list[RLPrompt], table: dict[str, list[float]]) -> _Scored:
    rollouts, results = [], []
    for prompt in prompts:
        for sample, score in enumerate(table[prompt.uid]):
            trajectory = Trajectory(id=f"{prompt.uid}#{sample}", question=prompt.question, images=[], metadata={"prompt_uid": prompt.uid})
            rollouts.append(Rollout(trajectory, []))
            results.append(_result(score))
    return _Scored(rollouts, results, 2.0, 0.5)


def _engine(tmp_path: Path, table: dict[str, list[float]], *overrides: str) -> tuple[LocalTrainer, list[list[str]]]:
    config = load_rl_config(DEFAULT_CONFIG, [f"output.dir={tmp_path}", "rollout.n=2", "data.batch_size=2", *overrides])
    trainer = LocalTrainer(config, show_progress=False)
    trainer.output_dir.mkdir(parents=True, exist_ok=True)
    updated: list[list[str]] = []
    trainer._roll_out = lambda prompts: _scored(prompts, table)  # type: ignore[method-assign]

    def update(scored: _Scored) -> dict[str, float]:
        updated.append(scored.group_ids())
        return {"actor/pg_loss": 0.0}

    trainer._update = update  # type: ignore[method-assign]
    return trainer, updated


def test_a_step_trains_on_kept_groups_and_logs_kept_and_dropped(tmp_path: Path):
    table = {"p0": [0.0, 0.0], "p1": [0.0, 1.0], "p2": [1.0, 1.0], "p3": [0.5, 0.0]}
    trainer, updated = _engine(tmp_path, table)
    stream = PromptStream(PromptSchedule(_prompts(4), batch_size=2, seed=0, shuffle=False))
    metrics = trainer._train_step(0, stream)
    assert updated == [["p1", "p1", "p3", "p3"]]  # the update sees the kept groups only
    assert (metrics["filter_groups/kept"], metrics["filter_groups/dropped"], metrics["filter_groups/gen_rounds"]) == (2, 2, 3)
    assert metrics["critic/score/mean"] == pytest.approx(3.5 / 8)  # rollout metrics: every rollout of the step
    assert metrics["timing_s/gen"] == 6.0  # three rounds' generation
    logged = read_jsonl(tmp_path / "trajectories.jsonl")
    assert {t.metadata["prompt_uid"]: t.metadata["filter_groups"] for t in logged} == {"p0": "dropped", "p1": "kept", "p2": "dropped", "p3": "kept"}
    assert {t.metadata["step"] for t in logged} == {1}


def test_a_step_without_any_signal_skips_the_update(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    trainer, updated = _engine(tmp_path, {f"p{i}": [-0.225, -0.225] for i in range(8)}, "algorithm.filter_groups.max_num_gen_batches=2")
    stream = PromptStream(PromptSchedule(_prompts(8), batch_size=2, seed=0, shuffle=False))
    with caplog.at_level(logging.WARNING):
        metrics = trainer._train_step(0, stream)
    assert updated == [] and "actor/pg_loss" not in metrics
    assert (metrics["filter_groups/kept"], metrics["filter_groups/dropped"], metrics["filter_groups/gen_rounds"]) == (0, 4, 2)
    assert "no update" in caplog.text


def test_with_filtering_off_the_step_trains_on_its_batch_and_logs_no_filter_metrics(tmp_path: Path):
    trainer, updated = _engine(tmp_path, {"p0": [0.0, 0.0], "p1": [0.0, 1.0]}, "algorithm.filter_groups.enable=false")
    metrics = trainer._train_step(0, PromptStream(PromptSchedule(_prompts(2), batch_size=2, seed=0, shuffle=False)))
    assert updated == [["p0", "p0", "p1", "p1"]]
    assert not any(key.startswith("filter_groups/") for key in metrics)


def test_resume_reads_the_prompt_position_from_the_checkpoint(tmp_path: Path):
    filtering = {"algorithm": {"name": "grpo", "filter_groups": {"enable": True}}}
    (tmp_path / STREAM_FILE).write_text(json.dumps({"position": 11}), encoding="utf-8")
    assert _stream_position(tmp_path, TrainerState(step=4, config=filtering), batch_size=2) == 11
    (tmp_path / STREAM_FILE).unlink()
    # Older checkpoints, and runs without filtering, drew step × batch_size prompts.
    assert _stream_position(tmp_path, TrainerState(step=4, config={"algorithm": "grpo"}), batch_size=2) == 8
    with pytest.raises(RLSetupError, match=STREAM_FILE):
        _stream_position(tmp_path, TrainerState(step=4, config=filtering), batch_size=2)


# -- config and verl -----------------------------------------------------------------------------


def test_the_default_run_filters_groups_and_the_verl_recipes_show_the_keys():
    settings = load_rl_config(DEFAULT_CONFIG).algorithm.filter_groups
    assert settings.enable and settings.metric == "score" and settings.max_num_gen_batches >= 2
    for name in ("deepeyes_rl_cluster.yaml", "deepeyes_rl_verl_cpu.yaml"):
        config = load_rl_config(CONFIG_DIR / name)
        assert config.algorithm.name == "grpo" and not config.algorithm.filter_groups.enable


def test_filter_group_settings_are_checked(tmp_path: Path):
    config = load_rl_config(DEFAULT_CONFIG, ["algorithm.filter_groups.metric=accuracy", "algorithm.filter_groups.max_num_gen_batches=7"])
    assert (config.algorithm.filter_groups.metric, config.algorithm.filter_groups.max_num_gen_batches) == ("accuracy", 7)
    with pytest.raises(ConfigError, match="max_num_gen_batches must be >= 1"):
        load_rl_config(DEFAULT_CONFIG, ["algorithm.filter_groups.max_num_gen_batches=0"])
    with pytest.raises(ConfigError, match="algorithm.filter_groups.metric"):
        load_rl_config(DEFAULT_CONFIG, ["algorithm.filter_groups.metric=acc"])
    with pytest.raises(ConfigError, match="algorithm.filter_groups.enabled"):
        load_rl_config(DEFAULT_CONFIG, ["algorithm.filter_groups.enabled=true"])
    # The short spelling from before the section existed, in a file and as an override.
    path = tmp_path / "rl.yaml"
    path.write_text("algorithm: ppo\n", encoding="utf-8")
    assert load_rl_config(path).algorithm.name == "ppo" and not load_rl_config(path).algorithm.filter_groups.enable
    switched = load_rl_config(DEFAULT_CONFIG, ["algorithm=ppo"])
    assert switched.algorithm.name == "ppo" and switched.algorithm.filter_groups.enable  # the section's other keys stay


def test_verl_receives_its_own_filter_group_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    config = load_rl_config(DEFAULT_CONFIG, ["trainer.engine=verl", f"output.dir={tmp_path}", "algorithm.filter_groups.metric=accuracy"])
    paths = verl_launch.VerlPaths.plan(config)
    with caplog.at_level(logging.WARNING):
        overrides = verl_launch.build_overrides(config, paths, "http://127.0.0.1:1")
    for key in ("algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=accuracy", "algorithm.filter_groups.max_num_gen_batches=4"):
        assert key in overrides
    assert "does not filter groups" in caplog.text  # the classic trainer ignores them
    caplog.clear()
    v1 = load_rl_config(DEFAULT_CONFIG, ["trainer.engine=verl", f"output.dir={tmp_path}", "verl.extra_overrides=[trainer.use_v1=true]"])
    with caplog.at_level(logging.WARNING):
        verl_launch.build_overrides(v1, paths, "http://127.0.0.1:1")
    assert "does not filter groups" not in caplog.text
