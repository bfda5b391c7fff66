"""Run benchmarks through the shared agent loop, score with the shared reward, write the outputs.

Per dataset: read the TSV, skip the samples whose trajectories are already in
``OUTPUT_REPORT/trajectories/<dataset>.jsonl`` (resume), run the rest concurrently through
:class:`~deepeyes.agent.AgentLoop` (``batch_size × num_workers`` in flight), score each
trajectory with :class:`~deepeyes.rewards.RewardScorer` as it finishes and append it to
the file. Then compute the metrics over the selected samples and write
``eval_results.json`` and the HTML/PDF report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest
from deepeyes.config import to_dict
from deepeyes.evaluation import metrics
from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.datasets import EvalSample, dataset_path, load_dataset
from deepeyes.evaluation.factory import build_policy, build_tool_manager
from deepeyes.evaluation.profiles import profile_for
from deepeyes.evaluation.store import TrajectoryStore
from deepeyes.evaluation.templates import build_question
from deepeyes.policies.base import Policy
from deepeyes.rewards import JudgeConfig, RewardConfig, RewardScorer, load_reward_config
from deepeyes.rewards.payload import request_from_trajectory
from deepeyes.tool_manager import ToolManager
from deepeyes.trajectory import Trajectory

logger = logging.getLogger(__name__)

RESULTS_FILE = "eval_results.json"
RUN_FILE = "run_config.json"
REPORT_HTML = "eval_report.html"
REPORT_PDF = "eval_report.pdf"
TRAJECTORY_DIR = "trajectories"


class ResumeMismatchError(RuntimeError):
    """OUTPUT_REPORT holds trajectories of a run with different settings."""


@dataclass
class DatasetOutcome:
    name: str
    records: list[dict[str, Any]]  # one per selected sample, in TSV order
    resumed: int  # samples taken from an earlier run


def evaluate(config: EvalConfig, policy: Policy | None = None, tool_manager: ToolManager | None = None) -> dict[str, Any]:
    """Run every configured dataset and write all outputs; returns the ``eval_results.json`` content.

    ``policy`` / ``tool_manager`` replace the ones the config describes (tests pass a
    ``ScriptedPolicy``); a tool manager built here is closed here.
    """
    started = time.perf_counter()
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    _check_resumable(config)
    datasets = {name: load_dataset(name, config.lmudata, config.max_samples) for name in config.datasets}
    if config.overwrite:  # every dataset's earlier trajectories, not only this run's datasets
        for stale in (out / TRAJECTORY_DIR).glob("*.jsonl"):
            stale.unlink()
    stores = {name: TrajectoryStore(out / TRAJECTORY_DIR / f"{name}.jsonl") for name in datasets}
    finished = {name: store.load_finished() for name, store in stores.items()}
    pending = sum(1 for name, samples in datasets.items() for s in samples if s.id not in finished[name])

    own_tools = tool_manager is None and config.use_tools and pending > 0
    if own_tools:
        tool_manager = build_tool_manager(config)
    if pending and policy is None:
        policy = build_policy(config)
    base_reward = _reward_config(config)
    outcomes = []
    try:
        for name, samples in datasets.items():
            outcomes.append(_run_dataset(name, samples, finished[name], stores[name], config, policy, tool_manager, base_reward))
    finally:
        if own_tools and tool_manager is not None:
            tool_manager.close()

    results = _results(config, outcomes, time.perf_counter() - started)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if config.report:
        from deepeyes.evaluation.report import (
            write_reports,  # matplotlib only once there is something to plot
        )

        write_reports(results, {o.name: o.records for o in outcomes}, out / REPORT_HTML, out / REPORT_PDF)
    return results


def _check_resumable(config: EvalConfig) -> None:
    """Refuse to mix trajectories of different models/settings in one OUTPUT_REPORT."""
    run_file = config.output / RUN_FILE
    identity = config.identity()
    if run_file.is_file() and not config.overwrite:
        previous = json.loads(run_file.read_text(encoding="utf-8"))
        changed = sorted(key for key in identity if previous.get(key) != identity[key])
        if changed:
            details = ", ".join(f"{key}: {previous.get(key)!r} → {identity[key]!r}" for key in changed)
            raise ResumeMismatchError(
                f"{config.output} holds results of a run with other settings ({details}); "
                "use another OUTPUT_REPORT, or OVERWRITE=1 to start it afresh"
            )
    run_file.write_text(json.dumps(identity, indent=2) + "\n", encoding="utf-8")


def _reward_config(config: EvalConfig) -> RewardConfig:
    reward = load_reward_config(config.reward_config)
    if config.judge_api_base:
        reward.judge = JudgeConfig(enabled=True, api_base=config.judge_api_base, model=config.judge_model)
    return reward


def _run_dataset(
    name: str,
    samples: list[EvalSample],
    finished: dict[str, dict[str, Any]],
    store: TrajectoryStore,
    config: EvalConfig,
    policy: Policy | None,
    tool_manager: ToolManager | None,
    base_reward: RewardConfig,
) -> DatasetOutcome:
    todo = [sample for sample in samples if sample.id not in finished]
    resumed = len(samples) - len(todo)
    if resumed:
        logger.info("%s: %d of %d samples already done, resuming", name, resumed, len(samples))
    overrides = profile_for(name).reward_overrides
    scorer = RewardScorer(dataclasses.replace(base_reward, **overrides) if overrides else base_reward)
    records = dict(finished)
    correct = sum(finished[s.id].get("reward", {}).get("accuracy", 0.0) for s in samples if s.id in finished)
    done = resumed
    lock = threading.Lock()
    bar = tqdm(total=len(samples), initial=resumed, desc=name, unit="sample", disable=not config.show_progress)

    def run_one(loop: AgentLoop, sample: EvalSample) -> None:
        nonlocal correct, done
        trajectory = _rollout(loop, policy, sample)
        trajectory.reward = scorer.score(
            request_from_trajectory(trajectory, sample.answer, answer_type=sample.answer_type, choices=sample.choices)
        )
        record = store.append(trajectory)
        with lock:
            records[sample.id] = record
            correct += record["reward"]["accuracy"]
            done += 1
            bar.update(1)
            bar.set_postfix(acc=f"{correct / done:.3f}")

    try:
        if todo:
            if policy is None:
                raise ValueError("samples are pending but no policy was given")
            loop = AgentLoop(
                tool_manager if config.use_tools else None,
                AgentConfig(max_turns=config.max_turns, use_tools=config.use_tools),
            )
            workers = min(len(todo), config.batch_size * config.num_workers)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"eval-{name}") as pool:
                for future in [pool.submit(run_one, loop, sample) for sample in todo]:
                    future.result()
    finally:
        bar.close()
    return DatasetOutcome(name, [records[s.id] for s in samples], resumed)


def _rollout(loop: AgentLoop, policy: Policy, sample: EvalSample) -> Trajectory:
    """One sample through the agent loop; a failure becomes an ``error`` trajectory, not a crash.

    A failed sample still counts (wrong, not completed) so that a flaky endpoint cannot
    silently raise the accuracy, and a resumed run retries it.
    """
    request = AgentRequest(
        question=build_question(sample),
        images=list(sample.images),
        id=sample.id,
        ground_truth=sample.answer,
        data_source=sample.dataset,
        sample_index=sample.sample_index,
        metadata={
            "dataset": sample.dataset,
            "index": sample.index,
            "row": sample.row,
            "category": sample.category,
            "answer_type": sample.answer_type,
            "choices": sample.choices,
            **({"required_tools": sample.required_tools} if sample.required_tools is not None else {}),
        },
    )
    try:
        trajectory = loop.rollout(policy, request).trajectory
    except Exception as exc:  # policy/tool infrastructure: record it, keep the run going
        logger.exception("%s failed", sample.id)
        trajectory = Trajectory(
            id=sample.id,
            question=request.question,
            images=[],
            stop_reason="error",
            ground_truth=sample.answer,
            data_source=sample.dataset,
            metadata={**request.metadata, "error": f"{type(exc).__name__}: {exc}"},
        )
    trajectory.images = list(sample.image_sources)
    return trajectory


def _results(config: EvalConfig, outcomes: list[DatasetOutcome], elapsed_s: float) -> dict[str, Any]:
    everything = [record for outcome in outcomes for record in outcome.records]
    settings = to_dict(config)
    for transient in ("show_progress", "report"):
        settings.pop(transient)
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": settings,
        "overall": metrics.aggregate([metrics.outcome(record) for record in everything]),
        "datasets": {
            outcome.name: {
                "tsv": str(dataset_path(config.lmudata, outcome.name)),
                "trajectories": str(Path(TRAJECTORY_DIR) / f"{outcome.name}.jsonl"),
                "resumed": outcome.resumed,
                **metrics.dataset_metrics(outcome.records),
            }
            for outcome in outcomes
        },
        "outputs": {"results": RESULTS_FILE, "report_html": REPORT_HTML, "report_pdf": REPORT_PDF},
        "elapsed_s": round(elapsed_s, 3),
    }
