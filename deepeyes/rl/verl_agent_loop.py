"""Our agent loop inside verl's trainer, through verl's agent-loop extension point.

verl's rollout workers instantiate the class named in
``actor_rollout_ref.rollout.agent.agent_loop_config_path`` for every prompt and await its
``run``. :class:`DeepEyesAgentLoop` runs the shared :class:`~deepeyes.agent.AgentLoop`
(same parser, tools and wire format as the local engine, evaluation and the demo) with a
policy that generates through verl's inference servers, then hands verl the token ids of
the whole conversation with the generated-token mask of :mod:`deepeyes.rl.masking`, the
images (inputs and tool figures) and the tool statistics its reward function scores with.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
)

from deepeyes import wire
from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest
from deepeyes.chat import Message
from deepeyes.policies.base import Generation
from deepeyes.policies.hf import trim_turn
from deepeyes.rl.masking import TOOL_STOPS, generation_prompt, tokenize_conversation
from deepeyes.tool_manager import ToolManager
from deepeyes.trajectory import write_jsonl

logger = logging.getLogger(__name__)

@functools.lru_cache(maxsize=4)
def shared_tool_manager(config_path: str | None) -> ToolManager:
    """One tool manager per worker process (it starts lazily on the first tool call)."""
    manager = ToolManager.from_config(config_path) if config_path else ToolManager()
    atexit.register(manager.close)
    return manager


def cut_at_tool_stop(text: str) -> str:
    """Keep text up to and including the first ``</code>`` / ``</tool_call>`` (servers may run past it)."""
    ends = [text.find(stop) + len(stop) for stop in TOOL_STOPS if stop in text]
    return text[: min(ends)] if ends else text


class ServerPolicy:
    """A :class:`~deepeyes.policies.base.Policy` whose turns come from verl's server manager.

    The agent loop runs in a worker thread; each turn is one ``generate`` coroutine
    submitted to the event loop verl's worker runs on, which stays free meanwhile.
    """

    def __init__(
        self,
        server_manager: Any,
        processor: Any,
        loop: asyncio.AbstractEventLoop,
        sampling_params: dict[str, Any],
        max_new_tokens: int,
        min_pixels: int,
        max_pixels: int,
    ):
        self.server_manager = server_manager
        self.processor = processor
        self.loop = loop
        self.sampling_params = {
            **sampling_params,
            "stop": list(TOOL_STOPS),
            "include_stop_str_in_output": True,
            "max_new_tokens": max_new_tokens,
        }
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.request_id = uuid.uuid4().hex  # sticky: all turns of a trajectory go to one server
        self.generation_s = 0.0
        self._lock = threading.Lock()

    def generate(self, messages: list[Message]) -> Generation:
        prompt_ids, images = generation_prompt(self.processor, messages, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        started = time.perf_counter()
        coroutine = self.server_manager.generate(
            request_id=self.request_id,
            prompt_ids=prompt_ids,
            sampling_params=dict(self.sampling_params),
            image_data=images or None,
        )
        output = asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()
        with self._lock:
            self.generation_s += time.perf_counter() - started
        text = cut_at_tool_stop(trim_turn(self.processor.tokenizer.decode(output.token_ids, skip_special_tokens=False)))
        return Generation(text=text, prompt_tokens=len(prompt_ids), completion_tokens=len(output.token_ids))


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def request_from_row(row: dict[str, Any], images: list[Any]) -> AgentRequest:
    """An agent request from one verl dataset row (our RL parquet conventions)."""
    extra = {k: _plain(v) for k, v in dict(row.get("extra_info") or {}).items()}
    reward_model = dict(row.get("reward_model") or {})
    question = extra.get("question")
    if not question:
        users = [m for m in row["raw_prompt"] if m.get("role") == "user"]
        content = users[-1]["content"] if users else ""
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        question = "".join(p.get("text", "") for p in parts if p.get("type") == "text").replace(wire.IMAGE_PLACEHOLDER, "").strip()
    return AgentRequest(
        question=question,
        images=list(images),
        id=str(extra.get("id") or extra.get("index") or uuid.uuid4().hex[:12]),
        ground_truth=str(_plain(reward_model.get("ground_truth"))) if reward_model.get("ground_truth") is not None else None,
        data_source=str(row.get("data_source")) if row.get("data_source") is not None else None,
        sample_index=str(extra.get("sample_index") or extra.get("id") or "") or None,
        metadata={k: extra[k] for k in ("task", "answer_type", "choices") if extra.get(k) is not None},
    )


def _cut_whole_images(ids: list[int], limit: int, images: list[Any], tokenizer: Any) -> tuple[int, list[Any]]:
    """Where to cut a sequence at ``limit`` tokens without splitting an image, and the images kept."""
    if len(ids) <= limit:
        return len(ids), list(images)
    vision_start = tokenizer.convert_tokens_to_ids("<|vision_start|>")
    vision_end = tokenizer.convert_tokens_to_ids("<|vision_end|>")
    starts = [i for i, token in enumerate(ids) if token == vision_start]
    ends = [i for i, token in enumerate(ids) if token == vision_end]
    end = limit
    for start, stop in zip(starts, ends, strict=False):
        if start < end <= stop:
            end = start
    return end, list(images[: sum(1 for start in starts if start < end)])


class DeepEyesAgentLoop(AgentLoopBase):
    """verl agent loop running DeepEyes' multi-turn tool loop (registered as ``deepeyes_agent``).

    Extra keys of the agent-loop config entry arrive as keyword arguments:
    ``tool_manager_config`` (a ``tool_manager_config.yaml``), ``max_turns``,
    ``max_context_tokens``, ``max_new_tokens`` (per turn) and ``trajectory_dir`` (write
    every trajectory there as JSONL).
    """

    def __init__(
        self,
        *args: Any,
        tool_manager_config: str | None = None,
        max_turns: int = 8,
        max_context_tokens: int = 16384,
        max_new_tokens: int = 1024,
        trajectory_dir: str | None = None,
        tool_manager: ToolManager | None = None,
        **kwargs: Any,
    ):
        kwargs.pop("name", None)
        kwargs.pop("tools", None)  # verl's own tool list: our tools come from the tool manager
        super().__init__(*args, **kwargs)
        self.tool_manager = tool_manager or shared_tool_manager(tool_manager_config)
        self.agent = AgentLoop(self.tool_manager, AgentConfig(max_turns=max_turns, max_context_tokens=max_context_tokens))
        self.max_new_tokens = max_new_tokens
        self.trajectory_dir = Path(trajectory_dir) if trajectory_dir else None
        size = self.processor.image_processor.size
        self.min_pixels, self.max_pixels = int(size["shortest_edge"]), int(size["longest_edge"])

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        loop = asyncio.get_running_loop()
        multi_modal = await self.process_multi_modal_info(list(kwargs["raw_prompt"]))
        request = request_from_row(kwargs, multi_modal.get("images") or [])
        policy = ServerPolicy(
            self.server_manager, self.processor, loop, sampling_params, self.max_new_tokens, self.min_pixels, self.max_pixels
        )
        rollout = await loop.run_in_executor(None, lambda: self.agent.rollout(policy, request))
        tokenized = await loop.run_in_executor(
            None,
            lambda: tokenize_conversation(self.processor, rollout.messages, min_pixels=self.min_pixels, max_pixels=self.max_pixels),
        )
        ids = tokenized.input_ids.tolist()
        mask = tokenized.loss_mask.tolist()
        prompt_end = mask.index(1) if 1 in mask else len(ids)
        end, images = _cut_whole_images(ids, prompt_end + self.rollout_config.response_length, tokenized.images, self.tokenizer)
        trajectory = rollout.trajectory
        if self.trajectory_dir is not None:
            write_jsonl(self.trajectory_dir / "trajectories.jsonl", [trajectory])
        counts = trajectory.tool_calls
        return AgentLoopOutput(
            prompt_ids=ids[:prompt_end],
            response_ids=ids[prompt_end:end],
            response_mask=mask[prompt_end:end],
            multi_modal_data={"images": images} if images else {},
            num_turns=len(rollout.messages) - 1,
            metrics=AgentLoopMetrics(generate_sequences=policy.generation_s, tool_calls=trajectory.timing.get("tools_s", 0.0)),
            extra_fields={
                "tool_stats": {k: getattr(counts, k) for k in ("code", "search", "image_search", "invalid", "failed", "repeated")},
                "stop_reason": trajectory.stop_reason,
                "question": trajectory.question,
                "turn_scores": [],
                "tool_rewards": [],
            },
        )
