"""What a verl run records, so the behaviour report and the collapse alarm read it as a local run:
each trajectory's step and sample (set by our agent-loop worker), flat step metrics, and the
agent loop's trajectories running side by side however many there are."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from deepeyes.analysis.aggregate import AnalysisConfig
from deepeyes.analysis.analyze import analyze_run
from deepeyes.analysis.collapse import CollapseAlarm
from deepeyes.rl.verl_agent_loop import TrajectoryThreads
from deepeyes.rl.verl_metrics import write_step_metrics
from deepeyes.rl.verl_worker import DeepEyesAgentLoopWorker, RolloutSlot, current_slot
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


def test_a_verl_run_gets_flat_step_metrics_and_the_collapse_alarm(tmp_path: Path):
    """verl's file backend and our hook's trajectories become the local engine's ``metrics.jsonl``;
    the behaviour report then sees the same steps and fires the alarm where the run's own replay does."""
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

    alarm = CollapseAlarm(fraction=0.5, patience=2)
    path = write_step_metrics(run, alarm)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert [r["tools/calls_per_trajectory"] for r in records] == [2.0, 2.0, 0.0, 0.0]
    # The same series under verl's name, which verl's trackers log live from our agent loop's extra_fields.
    assert [(r["tool_call_counts/min"], r["tool_call_counts/mean"], r["tool_call_counts/max"]) for r in records] == [(c, c, c) for c in calls.values()]
    assert all(r["critic/score/mean"] == 0.5 and r["actor/pg_loss"] == 0.1 and r["reward/accuracy"] == 0.5 for r in records)
    assert alarm.fired_at == [4]

    summary = analyze_run("verl", run, tmp_path / "report", AnalysisConfig(collapse_fraction=0.5, collapse_patience=2))
    rl = summary["rl_steps"]
    assert rl["steps"] == [1, 2, 3, 4] and rl["n_per_step"] == [4, 4, 4, 4]
    assert rl["collapse"]["fired_at"] == alarm.fired_at
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
