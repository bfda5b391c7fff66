"""What a verl run records, so the behaviour report and the collapse alarm read it as a local run:
each trajectory's step and sample (set by our agent-loop worker), flat step metrics, the collapse
alarm live in verl's agent-loop manager, and the agent loop's trajectories running side by side
however many there are."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from deepeyes.analysis.aggregate import AnalysisConfig
from deepeyes.analysis.analyze import analyze_run
from deepeyes.paths import REPO_ROOT
from deepeyes.rl import verl_launch
from deepeyes.rl.config import load_rl_config
from deepeyes.rl.verl_agent_loop import TrajectoryThreads
from deepeyes.rl.verl_metrics import write_step_metrics
from deepeyes.rl.verl_worker import (
    DeepEyesAgentLoopManager,
    DeepEyesAgentLoopWorker,
    RolloutSlot,
    collapse_alarm_from,
    current_slot,
)
from deepeyes.trajectory import Trajectory


def test_the_worker_gives_each_trajectory_its_step_and_sample(monkeypatch: pytest.MonkeyPatch):
    """verl's worker hands ``_run_agent_loop`` the step and ``rollout_n``; ours makes them the
    trajectory's slot for exactly the time its agent loop runs, on its own task."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    async def verls_run(self, sampling_params, trajectory, *, agent_name, trace=True, **kwargs):
        await asyncio.sleep(0.01 * (3 - trajectory["rollout_n"]))  # finish out of order
        return current_slot(), agent_name, kwargs["raw_prompt"]

    monkeypatch.setattr(AgentLoopWorker, "_run_agent_loop", verls_run)
    worker = object.__new__(DeepEyesAgentLoopWorker)  # the Ray actor's state is not needed here

    async def batch():
        infos = [{"step": 7, "sample_index": 0, "rollout_n": n, "validate": False} for n in range(3)]
        return await asyncio.gather(*(worker._run_agent_loop({}, info, agent_name="deepeyes_agent", raw_prompt=[]) for info in infos))

    results = asyncio.run(batch())
    assert [slot for slot, _, _ in results] == [RolloutSlot(7, 0), RolloutSlot(7, 1), RolloutSlot(7, 2)]
    assert current_slot() is None


def _scored(step: int, sample: int, code_calls: int, score: float) -> Trajectory:
    record = Trajectory(id=f"p{sample // 2}#{sample % 2}", question="How many?", images=[], ground_truth="3").to_dict()
    record["tool_calls"]["code"] = code_calls
    record["stop_reason"], record["final_answer"] = "answer", "3"
    record["metadata"] = {"step": step, "sample": sample % 2, "prompt_uid": f"p{sample // 2}", "task": "counting"}
    record["reward"] = {"score": score, "accuracy": score, "format": 1.0, "tool_efficiency": 0.5, "task_completion": score, "judge_fallback": 0.0}
    return Trajectory.from_dict(record)


def _live_alarm_steps(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], batches: list[tuple[dict, list[int]]]) -> list[int]:
    """Where the alarm of our agent-loop manager (settings from ``environ``) fires, fed verl's
    rollout batches: (``meta_info``, each output's ``tool_call_counts``) as verl's trainer asks for them."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopManager
    from verl.protocol import DataProto

    counts = {id(meta): values for meta, values in batches}

    async def verls_rollouts(self, prompts):  # what verl's workers hand back: our loop's extra_fields
        return DataProto(non_tensor_batch={"tool_call_counts": np.array(counts[id(prompts.meta_info)], dtype=object)})

    monkeypatch.setattr(AgentLoopManager, "generate_sequences", verls_rollouts)
    monkeypatch.setattr(AgentLoopManager, "__init__", lambda self, *args, **kwargs: None)  # no Ray workers here
    for key, value in environ.items():  # what verl's processes inherit from the launch
        monkeypatch.setenv(key, value)
    manager = DeepEyesAgentLoopManager()
    for meta, _ in batches:
        manager.generate_sequences(DataProto(meta_info=meta))  # verl's trainer calls it without awaiting
    return manager.collapse_alarm.fired_at


def test_a_verl_run_gets_flat_step_metrics_and_the_collapse_alarm_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog):
    """verl's file backend and our hook's trajectories become the local engine's ``metrics.jsonl``;
    the alarm fires inside verl's run, at the step the behaviour report finds afterwards."""
    run = tmp_path / "verl"
    run.mkdir()
    calls = {1: 2, 2: 2, 3: 0, 4: 0}  # tool calls per trajectory: collapse from step 3
    with (run / "tracking.jsonl").open("w") as handle:  # as verl's FileLogger writes it
        for step in calls:
            handle.write(json.dumps({"step": step, "data": {"critic/score/mean": 0.5, "actor/pg_loss": 0.1, "timing_s/step": 2.0}}) + "\n")
    with (run / "trajectories.jsonl").open("w") as handle:  # as our reward hook appends them
        for step, count in calls.items():
            for sample in range(4):
                handle.write(_scored(step, sample, count, 1.0 if sample % 2 else 0.0).to_json() + "\n")

    path = write_step_metrics(run)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert [r["tools/calls_per_trajectory"] for r in records] == [2.0, 2.0, 0.0, 0.0]
    # The same series under verl's name, which verl's trackers log live from our agent loop's extra_fields.
    assert [(r["tool_call_counts/min"], r["tool_call_counts/mean"], r["tool_call_counts/max"]) for r in records] == [(c, c, c) for c in calls.values()]
    assert all(r["critic/score/mean"] == 0.5 and r["actor/pg_loss"] == 0.1 and r["reward/accuracy"] == 0.5 for r in records)

    # The run's config reaches verl's processes through the launch's environment; a validation
    # batch (no tool calls here) between the training steps is not counted.
    config = load_rl_config(REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml", ["trainer.collapse_fraction=0.5", "trainer.collapse_patience=2"])
    environ = verl_launch.environment(config, verl_launch.VerlPaths.plan(config))
    batches = [({"global_steps": step}, [count] * 4) for step, count in calls.items()]
    batches.insert(2, ({"global_steps": 2, "validate": True}, [0] * 4))
    with caplog.at_level("WARNING", logger="deepeyes.analysis.collapse"):
        fired_at = _live_alarm_steps(monkeypatch, environ, batches)
    assert fired_at == [4] and [r.getMessage() for r in caplog.records if "step 4" in r.getMessage()]

    summary = analyze_run("verl", run, tmp_path / "report", AnalysisConfig(collapse_fraction=0.5, collapse_patience=2))
    rl = summary["rl_steps"]
    assert rl["steps"] == [1, 2, 3, 4] and rl["n_per_step"] == [4, 4, 4, 4]
    assert rl["collapse"]["fired_at"] == fired_at
    assert rl["trainer_metrics"]["series"]["tools/calls_per_trajectory"] == [2.0, 2.0, 0.0, 0.0]


def test_every_trajectory_in_flight_gets_a_thread():
    """64 trajectories that can only finish together (a 64-party barrier): the event loop's default
    executor (``min(32, cpus + 4)`` threads) would never start the last ones; ours grows to them."""
    barrier = threading.Barrier(64, timeout=20)
    threads = TrajectoryThreads()

    async def batch():
        return await asyncio.gather(*(threads.run(barrier.wait) for _ in range(64)))

    assert sorted(asyncio.run(batch())) == list(range(64))
    assert threads.size >= 64 and threads.in_flight == 0


def test_the_alarm_settings_travel_by_environment_or_not_at_all():
    assert collapse_alarm_from({}) is None  # verl started by hand: no alarm
    with pytest.raises(ValueError):
        collapse_alarm_from({"DEEPEYES_COLLAPSE_FRACTION": "1.5", "DEEPEYES_COLLAPSE_PATIENCE": "2"})
