"""Run benchmarks through the shared agent loop, score with the shared reward, write the outputs.

Per dataset: read the TSV and check it (:mod:`deepeyes.evaluation.guards`), skip the samples
whose trajectories are already in ``OUTPUT_REPORT/trajectories/<dataset>.jsonl`` (resume),
run the rest concurrently through :class:`~deepeyes.agent.AgentLoop` (``batch_size ×
num_workers`` in flight), score each trajectory with :class:`~deepeyes.rewards.RewardScorer`
as it finishes and append it to the file. Optional passes follow the same way into their own
folders: CircularEval's rotations (``circular/``) and the model baselines (``baselines/``).
Then compute the metrics with their intervals, the baselines and flags over the selected
samples and write ``eval_results.json`` and the HTML/PDF report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest
from deepeyes.config import to_dict
from deepeyes.evaluation import baselines, circular, metrics
from deepeyes.evaluation.circular import CIRCULAR_DIR
from deepeyes.evaluation.config import BASELINE_RUNS, EvalConfig
from deepeyes.evaluation.datasets import EvalSample, dataset_path, load_dataset
from deepeyes.evaluation.factory import build_policy, build_tool_manager
from deepeyes.evaluation.guards import data_guards
from deepeyes.evaluation.profiles import profile_for
from deepeyes.evaluation.store import TrajectoryStore
from deepeyes.evaluation.templates import build_question
from deepeyes.policies.base import Policy
from deepeyes.rewards import JudgeConfig, RewardConfig, RewardScorer, load_reward_config
from deepeyes.rewards.payload import request_from_trajectory
from deepeyes.tool_manager import ToolManager
from deepeyes.trajectory import Trajectory
from deepeyes.utils import stats

logger = logging.getLogger(__name__)

RESULTS_FILE = "eval_results.json"
RUN_FILE = "run_config.json"
REPORT_HTML = "eval_report.html"
REPORT_PDF = "eval_report.pdf"
TRAJECTORY_DIR = "trajectories"
#: Model baselines' trajectories: ``baselines/<no_image|no_tools>/<dataset>.jsonl``.
BASELINE_DIR = "baselines"
REPEATS_DIR = "repeats"


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
    ``ScriptedPolicy``); a tool manager built here is closed here. With ``repeats`` K > 1 the
    whole evaluation runs K times (seeds ``seed`` … ``seed + K − 1``; runs 2…K in
    ``OUTPUT_REPORT/repeats/seed_<s>/``) and the first run's results carry a ``repeats`` block
    with the mean and spread of every accuracy.
    """
    resources = _Resources(config, policy, tool_manager)
    try:
        if config.repeats == 1:
            return _evaluate_once(config, resources)
        if config.temperature == 0:
            logger.warning("repeats=%d at temperature 0: greedy decoding repeats itself, expect no spread", config.repeats)
        others = []
        for seed in range(config.seed + 1, config.seed + config.repeats):
            folder = config.output / REPEATS_DIR / f"seed_{seed}"
            logger.info("repeat with seed %d into %s", seed, folder)
            others.append(_evaluate_once(dataclasses.replace(config, seed=seed, repeats=1, output_dir=str(folder), report=False), resources))
        return _evaluate_once(config, resources, others)
    finally:
        resources.close()


class _Resources:
    """The policy and tool manager, built on first need and shared by every pass and repeat."""

    def __init__(self, config: EvalConfig, policy: Policy | None, tool_manager: ToolManager | None):
        self.config = config
        self._policy = policy
        self._tool_manager = tool_manager
        self._own_tools = False

    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = build_policy(self.config)
        return self._policy

    def tool_manager(self) -> ToolManager:
        if self._tool_manager is None:
            self._tool_manager = build_tool_manager(self.config)
            self._own_tools = True
        return self._tool_manager

    def close(self) -> None:
        if self._own_tools and self._tool_manager is not None:
            self._tool_manager.close()


@dataclass(frozen=True)
class _Pass:
    """One sweep of the model over a dataset's rows: the plain evaluation, CircularEval's rotations, or a baseline."""

    name: str
    folder: str  # under OUTPUT_REPORT
    use_tools: bool


def _seed(seed: int) -> None:
    """Seed Python's, numpy's and (when loaded) torch's generators: sampling draws from torch's."""
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def _evaluate_once(config: EvalConfig, resources: _Resources, repeats: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    _check_resumable(config)
    datasets = {name: load_dataset(name, config.lmudata, config.max_samples) for name in config.datasets}
    data_checks = {name: data_guards(samples) for name, samples in datasets.items()}
    for name, block in data_checks.items():
        for flag in block["flags"]:
            logger.warning("%s: data guard: %s", name, flag)
    if config.overwrite:  # every dataset's earlier trajectories, not only this run's datasets
        for folder in (TRAJECTORY_DIR, CIRCULAR_DIR, *(f"{BASELINE_DIR}/{b}" for b in BASELINE_RUNS)):
            for stale in (out / folder).glob("*.jsonl"):
                stale.unlink()
    base_reward = _reward_config(config)

    plain = _Pass("plain", TRAJECTORY_DIR, config.use_tools)
    outcomes = [_run_pass(plain, name, samples, config, resources, base_reward) for name, samples in datasets.items()]
    rotated: dict[str, dict[str, dict[str, Any]]] = {}
    if config.circular:
        circular_pass = _Pass("circular", CIRCULAR_DIR, config.use_tools)
        for name, samples in datasets.items():
            variants = circular.rotations(samples)
            done = _run_pass(circular_pass, name, variants, config, resources, base_reward)
            rotated[name] = {sample.id: record for sample, record in zip(variants, done.records, strict=True)}
    model_baselines: dict[str, dict[str, dict[str, float]]] = {}
    for baseline in config.baseline_runs:
        if baseline == "no_tools" and not config.use_tools:
            logger.info("baseline no_tools skipped: the run itself uses no tools")
            continue
        baseline_pass = _Pass(baseline, f"{BASELINE_DIR}/{baseline}", config.use_tools and baseline != "no_tools")
        for name, samples in datasets.items():
            variants = [_without_image(s) for s in samples] if baseline == "no_image" else samples
            done = _run_pass(baseline_pass, name, variants, config, resources, base_reward)
            model_baselines.setdefault(name, {})[baseline] = {r["id"]: _accuracy(r) for r in done.records}

    results = _results(config, datasets, outcomes, data_checks, rotated, model_baselines, time.perf_counter() - started)
    if repeats:
        results["repeats"] = _repeat_block(config, [results, *repeats])
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if config.report:
        from deepeyes.evaluation.report import (
            write_reports,  # matplotlib only once there is something to plot
        )

        write_reports(results, {o.name: o.records for o in outcomes}, out / REPORT_HTML, out / REPORT_PDF)
    return results


def _accuracy(record: dict[str, Any]) -> float:
    return float((record.get("reward") or {}).get("accuracy", 0.0))


def _without_image(sample: EvalSample) -> EvalSample:
    """The question alone: no image or video, and no image-search key (it would look the image up)."""
    return dataclasses.replace(sample, images=[], image_sources=[], sample_index=None, videos=[])


def _repeat_block(config: EvalConfig, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread of the overall and per-dataset accuracies over the repeated runs (this one first)."""
    seeds = [run["config"]["seed"] for run in runs]
    return {
        "k": len(runs),
        "seeds": seeds,
        "folders": ["."] + [f"{REPEATS_DIR}/seed_{seed}" for seed in seeds[1:]],
        "accuracy": stats.spread([run["overall"]["accuracy"] for run in runs]),
        "datasets": {
            name: {"accuracy": stats.spread([run["datasets"][name]["overall"]["accuracy"] for run in runs])}
            for name in config.datasets
        },
    }


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


def _run_pass(
    run: _Pass,
    name: str,
    samples: list[EvalSample],
    config: EvalConfig,
    resources: _Resources,
    base_reward: RewardConfig,
) -> DatasetOutcome:
    """One pass over ``samples``, resuming from ``OUTPUT_REPORT/<run.folder>/<name>.jsonl``."""
    store = TrajectoryStore(config.output / run.folder / f"{name}.jsonl")
    finished = store.load_finished()
    todo = [sample for sample in samples if sample.id not in finished]
    resumed = len(samples) - len(todo)
    label = name if run.name == "plain" else f"{name} ({run.name})"
    if resumed:
        logger.info("%s: %d of %d samples already done, resuming", label, resumed, len(samples))
    overrides = profile_for(name).reward_overrides
    scorer = RewardScorer(dataclasses.replace(base_reward, **overrides) if overrides else base_reward)
    records = dict(finished)
    correct = sum(finished[s.id].get("reward", {}).get("accuracy", 0.0) for s in samples if s.id in finished)
    done = resumed
    lock = threading.Lock()
    bar = tqdm(total=len(samples), initial=resumed, desc=label, unit="sample", disable=not config.show_progress)

    def run_one(loop: AgentLoop, policy: Policy, sample: EvalSample) -> None:
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
            _seed(config.seed)
            policy = resources.policy()
            loop = AgentLoop(
                resources.tool_manager() if run.use_tools else None,
                AgentConfig(max_turns=config.max_turns, use_tools=run.use_tools),
            )
            workers = min(len(todo), config.batch_size * config.num_workers)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"eval-{name}") as pool:
                for future in [pool.submit(run_one, loop, policy, sample) for sample in todo]:
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
        videos=list(sample.videos),
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
            **({"rotation": sample.rotation} if sample.rotation else {}),
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


def _results(
    config: EvalConfig,
    datasets: dict[str, list[EvalSample]],
    outcomes: list[DatasetOutcome],
    data_checks: dict[str, dict[str, Any]],
    rotated: dict[str, dict[str, dict[str, Any]]],
    model_baselines: dict[str, dict[str, dict[str, float]]],
    elapsed_s: float,
) -> dict[str, Any]:
    settings = to_dict(config)
    for transient in ("show_progress", "report"):
        settings.pop(transient)
    blocks: dict[str, Any] = {}
    everything = []
    flags: list[str] = []
    for outcome in outcomes:
        samples = datasets[outcome.name]
        by_id = {sample.id: record for sample, record in zip(samples, outcome.records, strict=True)}
        accuracy = {sample_id: _accuracy(record) for sample_id, record in by_id.items()}
        passed = circular.circular_outcomes(samples, by_id, rotated[outcome.name]) if outcome.name in rotated else {}
        everything += [metrics.outcome(record, passed.get(record["id"])) for record in outcome.records]
        found = baselines.trivial_baselines(samples, accuracy)
        for name, values in model_baselines.get(outcome.name, {}).items():
            found[name] = baselines.model_baseline(samples, accuracy, values)
        baseline_flags = baselines.flags(outcome.name, found)
        flags += [f"{outcome.name}: {flag}" for flag in data_checks[outcome.name]["flags"]] + baseline_flags
        blocks[outcome.name] = {
            "tsv": str(dataset_path(config.lmudata, outcome.name)),
            "trajectories": str(Path(TRAJECTORY_DIR) / f"{outcome.name}.jsonl"),
            "resumed": outcome.resumed,
            **metrics.dataset_metrics(outcome.records, passed),
            "baselines": found,
            "baseline_flags": baseline_flags,
            "data_guards": data_checks[outcome.name],
            **({"circular_trajectories": str(Path(CIRCULAR_DIR) / f"{outcome.name}.jsonl")} if outcome.name in rotated else {}),
            # Per-sample accuracy by row index: what `compare` pairs two runs by.
            "sample_accuracy": {sample.index: accuracy[sample.id] for sample in samples},
        }
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": settings,
        "overall": metrics.aggregate(everything),
        "datasets": blocks,
        "flags": flags,
        "outputs": {"results": RESULTS_FILE, "report_html": REPORT_HTML, "report_pdf": REPORT_PDF},
        "elapsed_s": round(elapsed_s, 3),
    }
