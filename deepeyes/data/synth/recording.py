"""Run a sample's plan for real and record it as a seed SFT record.

Code steps run in a fresh interpreter (:mod:`executor`) and must print exactly what the
task expected; text-search steps query the corpus through the project's search tool
(:mod:`text_search_hook`); image-search steps return the sample's cache entry. Images a
step shows back (zoomed crops, thumbnails) are saved and referenced by relative path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepeyes import wire
from deepeyes.data.formats import save_png
from deepeyes.data.synth.executor import execute_code
from deepeyes.data.synth.sample import Observation, SynthError, TaskSample, ToolStep
from deepeyes.data.synth.text_search_hook import CorpusSearch


def _run_code(step: ToolStep, image_path: Path, sample_id: str) -> Observation:
    result = execute_code(step.input, image_path)
    if not result.ok:
        raise SynthError(f"{sample_id}: code step failed (exit {result.returncode}):\n{result.stderr}")
    if step.expected_stdout is not None and result.stdout != step.expected_stdout:
        raise SynthError(f"{sample_id}: code printed {result.stdout!r} but the ground truth implies {step.expected_stdout!r}")
    return Observation(text=result.stdout, images=result.images, stderr=result.stderr)


def record_seed(
    sample_id: str,
    sample: TaskSample,
    out: Path,
    image_rel: str,
    search: CorpusSearch,
    thumbnail_rels: list[str],
) -> dict[str, Any]:
    """Execute ``sample``'s plan and return its seed record (paths relative to ``out``)."""
    calls: list[dict[str, Any]] = []
    observations: list[Observation] = []
    shown = 0
    for step in sample.steps:
        call: dict[str, Any] = {"tool": step.tool, "input": step.input}
        if step.tool == "code_execution":
            observation = _run_code(step, out / image_rel, sample_id)
            call["output"] = observation.text
            call["images"] = []
            for png in observation.images:
                rel = f"images/{sample_id}_obs{shown}.png"
                (out / rel).write_bytes(png)
                call["images"].append(rel)
                shown += 1
        elif step.tool == "text_search":
            observation = search.search(step.input)
            call["output"] = wire.text_search_body(observation.results)
        else:
            if sample.image_search is None:
                raise SynthError(f"{sample_id}: image-search step without a cache entry")
            call["output"] = wire.image_search_body(sample.image_search.titles)
            call["images"] = list(thumbnail_rels)
            observation = Observation(text=call["output"])
        observations.append(observation)
        calls.append(call)
    return {
        "id": sample_id,
        "task": sample.task,
        "required_tools": sample.required_tools,
        "image": image_rel,
        "text": sample.question,
        "thoughts": [step.thought for step in sample.steps] + [sample.final_thought(observations)],
        "tool_calls": calls,
        "answer": sample.answer,
    }


def save_thumbnails(sample_id: str, sample: TaskSample, out: Path) -> list[str]:
    """Write an image-search entry's thumbnails; paths are relative to ``out``."""
    if sample.image_search is None:
        return []
    rels = []
    for rank, thumbnail in enumerate(sample.image_search.thumbnails):
        rel = f"image_search/images/{sample_id}_{rank}.png"
        save_png(thumbnail, out / rel)
        rels.append(rel)
    return rels
