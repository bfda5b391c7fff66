"""Replaying every sample SFT trajectory through the agent loop and the real tools reproduces it.

The assistant turns of each ShareGPT record are fed back by a ScriptedPolicy; the live
sandbox, BM25 search and image search must return exactly the recorded observation text
and images. This is what makes the SFT data "real" and the tools deterministic.

The sample holds 240 records per task (1 200), each task's records one shape (its tool, one
call) with other values; replaying every one took ~8 min of a 2-core machine. Every tenth
record of each task (24 per task, spread over the generation order) keeps each task and tool.
"""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest, Rollout
from deepeyes.data import formats
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.tool_manager import ToolManager

#: Every STRIDE-th record of each task is replayed.
STRIDE = 10


def every_tenth_per_task(records: list[dict], seeds: list[dict]) -> list[tuple[dict, dict]]:
    """(record, seed) pairs: every :data:`STRIDE`-th of each task's records, in sample order."""
    by_task: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for record, seed in zip(records, seeds, strict=True):
        by_task[seed["task"]].append((record, seed))
    return [pair for pairs in by_task.values() for pair in pairs[::STRIDE]]


def test_sft_trajectories_of_every_task_replay_to_their_recorded_observations(tool_manager: ToolManager, sample_dir: Path) -> None:
    records = json.loads((sample_dir / "sft/sharegpt.json").read_text(encoding="utf-8"))
    seeds = formats.read_jsonl(sample_dir / "sft/seed.jsonl")
    assert len(records) == len(seeds) >= 100
    chosen = every_tenth_per_task(records, seeds)
    assert {seed["task"] for _, seed in chosen} == {seed["task"] for seed in seeds}
    loop = AgentLoop(tool_manager, AgentConfig(max_turns=10))

    def replay(pair: tuple[dict, dict]) -> tuple[dict, Rollout]:
        record, seed = pair
        turns = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        request = AgentRequest(seed["text"], [sample_dir / record["images"][0]], id=seed["id"], sample_index=seed["id"])
        return record, loop.rollout(ScriptedPolicy(turns), request)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(replay, chosen))

    mismatches = []
    for record, rollout in results:
        recorded_turns = record["messages"][1:]  # drop the system prompt; both start with the question
        live_turns = rollout.messages[1:]
        recorded_images = [Image.open(sample_dir / p).convert("RGB").tobytes() for p in record["images"]]
        live_images = [image.convert("RGB").tobytes() for m in live_turns for image in m.images]
        texts_match = [m["content"] for m in recorded_turns] == [m.content for m in live_turns]
        if not (texts_match and live_images == recorded_images and rollout.trajectory.stop_reason == "answer"):
            mismatches.append(rollout.trajectory.id)
    assert mismatches == [], f"{len(mismatches)} of {len(results)} trajectories did not replay: {mismatches[:10]}"
