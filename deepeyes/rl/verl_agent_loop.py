"""Our agent loop inside verl's trainer, through verl's agent-loop extension point.

verl's rollout workers instantiate the class named in
``actor_rollout_ref.rollout.agent.agent_loop_config_path`` for every prompt and await its
``run``. :class:`DeepEyesAgentLoop` runs the shared :class:`~deepeyes.agent.AgentLoop`
(same parser, tools and wire format as the local engine, evaluation and the demo) with a
policy that generates through verl's inference servers.

Token-in, token-out: the policy keeps the token stream of the conversation itself. The
ids the server sampled are appended as they came (with their log-probs when the server
returns them), each observation is tokenized once when it arrives (its images resized
and expanded once) through verl's Continuous Token builder, and the stream — never a
re-encoding of decoded text — is what verl trains on. The trajectory the loop built goes
to verl's reward hook in ``extra_fields["trajectory"]`` (:mod:`deepeyes.rl.verl_reward`), which
scores it and logs it.

Videos go the way verl's own ``ToolAgentLoop`` sends them: each clip the loop decoded
(:mod:`deepeyes.videos`) becomes the ``(frames tensor, metadata)`` pair ``qwen_vl_utils``
makes of a frame list (what verl's ``RLHFDataset.process_vision_info`` gives), rendered into
the prompt by verl's builder, sent to the server as ``video_data`` (SGLang gets the processor
output instead, verl's ``build_sglang_video_payload``) and returned in
``multi_modal_data["videos"]``, from which verl computes ``pixel_values_videos``,
``video_grid_thw`` and ``second_per_grid_ts`` for the update: the same frames, at the same
sampled fps, in rollout and training.

The row is read by :func:`deepeyes.rl.data.read_row`, the local engine's reader, and the
trajectory carries the step and sample verl's worker is on
(:mod:`deepeyes.rl.verl_worker`), so both engines record the same fields. Each output's
``extra_fields["tool_call_counts"]`` is the trajectory's tool calls, which verl's
``compute_data_metrics`` logs as ``tool_call_counts/*`` while the run trains (the local engine
logs the same figure under the same name, :func:`deepeyes.rl.metrics.rollout_metrics`).

Our agent loop is synchronous (it is shared with the local engine, evaluation, the demo and the
service), so each trajectory runs on a thread while verl's worker awaits it. verl runs all of a
worker's trajectories at once (``AgentLoopWorker.generate_sequences`` gathers one task per
sample); the threads come from :class:`TrajectoryThreads`, which grows with the trajectories in
flight, not from the event loop's default executor, whose ``min(32, cpus + 4)`` threads would
run the rest in waves.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from PIL import Image
from qwen_vl_utils import fetch_video
from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
)

from deepeyes import wire
from deepeyes.agent import AgentConfig, AgentLoop
from deepeyes.chat import Message
from deepeyes.images import prepare_for_qwen
from deepeyes.policies.base import Generation, SamplingParams
from deepeyes.policies.hf import trim_turn
from deepeyes.rewards.payload import reward_extra_fields
from deepeyes.rl.data import read_row
from deepeyes.rl.masking import TOOL_STOPS
from deepeyes.rl.verl_worker import current_slot
from deepeyes.tool_manager import ToolManager
from deepeyes.videos import VideoClip
from deepeyes.wire import IM_END

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: A video as verl's agent loop carries it: frames ``(T, C, H, W)`` and ``qwen_vl_utils``' metadata.
VerlVideo = tuple[torch.Tensor, dict[str, Any]]


def verl_video(clip: VideoClip, min_pixels: int, max_pixels: int, image_patch_size: int = 14) -> VerlVideo:
    """``clip`` as verl's dataset makes a frame-list video: ``qwen_vl_utils.fetch_video`` over its
    frames at the clip's sampled fps (each frame resized to the patch grid within
    ``[min_pixels, max_pixels]``, the model's video limits; an odd count padded with the last
    frame), with the metadata whose ``sampled_fps`` the processor turns into ``second_per_grid_ts``."""
    element = {"video": list(clip.frames), "sample_fps": clip.sampled_fps, "min_pixels": min_pixels, "max_pixels": max_pixels}
    frames, metadata = fetch_video(element, image_patch_size=image_patch_size, return_video_metadata=True)
    return frames, metadata


@functools.lru_cache(maxsize=4)
def shared_tool_manager(config_path: str | None) -> ToolManager:
    """One tool manager per worker process (it starts lazily on the first tool call)."""
    manager = ToolManager.from_config(config_path) if config_path else ToolManager()
    atexit.register(manager.close)
    return manager


class TrajectoryThreads:
    """Threads for blocking trajectories, as many as are in flight: one event loop's executor.

    The pool is replaced by a larger one (double the size, at least the number in flight) when
    every thread is taken; the old pool finishes the trajectories it holds and its threads then
    exit. A worker's pool thus settles at its batch size, and no trajectory waits for a thread.
    Used from one event loop at a time (verl's worker), so the counters need no lock.
    """

    def __init__(self, name: str = "deepeyes-trajectory"):
        self.name = name
        self.size = 0
        self.in_flight = 0
        self._pool: ThreadPoolExecutor | None = None

    def _grow(self) -> ThreadPoolExecutor:
        if self._pool is None or self.in_flight > self.size:
            old = self._pool
            self.size = max(2 * self.size, self.in_flight)
            self._pool = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix=self.name)
            if old is not None:
                old.shutdown(wait=False)
        return self._pool

    async def run(self, function: Callable[[], T]) -> T:
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._grow(), function)
        finally:
            self.in_flight -= 1


#: The process's trajectory threads (verl runs one agent-loop worker, one event loop, per process).
TRAJECTORY_THREADS = TrajectoryThreads()


def cut_at_tool_stop(text: str) -> str:
    """Keep text up to and including the first ``</code>`` / ``</tool_call>`` (servers may run past it)."""
    ends = [text.find(stop) + len(stop) for stop in TOOL_STOPS if stop in text]
    return text[: min(ends)] if ends else text


def sampled_turn_length(token_ids: list[int], tokenizer: Any) -> int:
    """How many of the sampled ids make up the turn: through ``<|im_end|>``, or through the
    token that completes the first ``</code>`` / ``</tool_call>``, whichever comes first.

    Servers honouring stop strings return exactly that; one that ran past it (a stand-in,
    or a backend without stop-string support) has the rest dropped, never re-encoded.
    """
    end_id = tokenizer.convert_tokens_to_ids(IM_END)
    limit = token_ids.index(end_id) + 1 if end_id in token_ids else len(token_ids)

    def has_stop(count: int) -> bool:
        text = tokenizer.decode(token_ids[:count], skip_special_tokens=False)
        return any(stop in text for stop in TOOL_STOPS)

    if not has_stop(limit):
        return limit
    low, high = 1, limit  # smallest prefix that contains a stop (containment grows with the prefix)
    while low < high:
        middle = (low + high) // 2
        if has_stop(middle):
            high = middle
        else:
            low = middle + 1
    return low


@dataclass
class TokenStream:
    """The token ids of one conversation as verl will train on them.

    ``ids[:prompt_length]`` is verl's prompt (system and question, up to the first
    assistant header); the rest is the response, with ``mask`` 1 on sampled tokens and 0
    on observation and template tokens, and ``logprobs`` aligned with it (``None`` once
    any turn came back without log-probs).
    """

    ids: list[int]
    prompt_length: int
    images: list[Image.Image]
    #: The question's videos (tools return images only), as verl's server and update take them.
    videos: list[VerlVideo] = field(default_factory=list)
    #: What SGLang gets instead of raw frames (verl's ``build_sglang_video_payload``); None without videos.
    video_payload: list[dict[str, Any]] | None = None
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] | None = field(default_factory=list)
    #: Per assistant turn, the ids the server returned that the conversation kept.
    sampled: list[list[int]] = field(default_factory=list)

    @property
    def response_ids(self) -> list[int]:
        return self.ids[self.prompt_length :]


class ServerPolicy:
    """A :class:`~deepeyes.policies.base.Policy` whose turns come from verl's server manager.

    The agent loop runs in a worker thread; each turn is one ``generate`` coroutine
    submitted to the event loop verl's worker runs on, which stays free meanwhile.
    The policy owns the conversation's :class:`TokenStream`: each call appends only what
    is new since the last one (the observation the agent loop added), so sampled ids are
    kept exactly and every image is resized and processed once.
    """

    def __init__(
        self,
        server_manager: Any,
        builder: Any,
        tokenizer: Any,
        loop: asyncio.AbstractEventLoop,
        sampling_params: dict[str, Any],
        max_new_tokens: int,
        min_pixels: int,
        max_pixels: int,
        max_prompt_tokens: int,
        video_pixels: tuple[int, int] = (128 * 28 * 28, 768 * 28 * 28),
    ):
        self.server_manager = server_manager
        self.builder = builder  # verl's Continuous Token builder for the model family
        self.tokenizer = tokenizer
        self.loop = loop
        self.sampling_params = {
            **sampling_params,
            "stop": list(TOOL_STOPS),
            "include_stop_str_in_output": True,
            "max_new_tokens": max_new_tokens,
        }
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.video_pixels = video_pixels  # (min, max) area of a video frame
        self.max_prompt_tokens = max_prompt_tokens
        self.request_id = uuid.uuid4().hex  # sticky: all turns of a trajectory go to one server
        self.im_end_id = tokenizer.convert_tokens_to_ids(IM_END)
        self.stream: TokenStream | None = None
        self._chat: list[dict[str, Any]] = []  # what the stream encodes, in verl's message form
        self._encoded = 0  # how many of the agent loop's messages the stream holds
        self.generation_s = 0.0
        self._lock = threading.Lock()

    def _chat_message(self, message: Message) -> tuple[dict[str, Any], list[Image.Image], list[VerlVideo]]:
        """One message in the OpenAI-style form verl's builder renders, with its images resized
        and its videos made verl's frame tensors once."""
        images = [prepare_for_qwen(image, self.min_pixels, self.max_pixels) for image in message.images]
        videos = [verl_video(clip, *self.video_pixels) for clip in message.videos]
        parts: list[dict[str, Any]] = []
        resized, converted = iter(images), iter(videos)
        for piece in message.segments():
            if isinstance(piece, str):
                parts.append({"type": "text", "text": piece})
            elif isinstance(piece, VideoClip):
                parts.append({"type": "video", "video": next(converted)})
            else:
                parts.append({"type": "image", "image": next(resized)})
        return {"role": message.role, "content": parts}, images, videos

    def _extend(self, messages: list[Message]) -> TokenStream:
        """Bring the stream up to ``messages``: the first call renders the prompt, later ones the new observations."""
        if self.stream is None:
            chat, images, videos = zip(*(self._chat_message(m) for m in messages), strict=True)
            self._chat = list(chat)
            all_images = [image for group in images for image in group]
            all_videos = [video for group in videos for video in group]
            processed: dict[str, Any] = {}
            ids = self.builder.build_initial_tokens(
                self._chat, images=all_images or None, videos=all_videos or None, mm_inputs_out=processed
            )
            if (all_images or all_videos) and len(ids) > self.max_prompt_tokens:
                raise ValueError(
                    f"the prompt is {len(ids)} tokens with its images and videos, over rollout.prompt_length={self.max_prompt_tokens}; "
                    "images and videos cannot be cut, so raise the limit or lower max_pixels (or the video's frame count)"
                )
            self.stream = TokenStream(
                ids=list(ids),
                prompt_length=len(ids),
                images=all_images,
                videos=all_videos,
                video_payload=AgentLoopBase.build_sglang_video_payload(all_videos, processed),
            )
        else:
            stream = self.stream
            new = messages[self._encoded :]
            if not new or new[0].role != "assistant":
                raise ValueError("the agent loop must append this policy's turn before asking for the next one")
            if stream.ids[-1] != self.im_end_id:  # cut by a stop string: the template closes the turn
                self._append_context([self.im_end_id])
            self._chat.append({"role": "assistant", "content": new[0].content})
            appended, images, _ = zip(*(self._chat_message(m) for m in new[1:]), strict=True) if len(new) > 1 else ((), (), ())
            updated = self._chat + list(appended)
            merged = self.builder.merge_context_tokens(self._chat, updated, stream.ids)
            stream.mask, stream.logprobs = self.builder.align_response_metadata(merged, stream.mask, stream.logprobs)
            stream.ids = merged.token_ids
            stream.images += [image for group in images for image in group]
            self._chat = updated
        self._encoded = len(messages)
        return self.stream

    def _append_context(self, ids: list[int]) -> None:
        stream = self.stream
        assert stream is not None
        stream.ids += ids
        stream.mask += [0] * len(ids)
        if stream.logprobs is not None:
            stream.logprobs += [0.0] * len(ids)

    def turn_sampling(self, sampling: SamplingParams | None) -> dict[str, Any]:
        """verl's sampling parameters for one turn: the trainer's, or the request's settings over them."""
        if sampling is None:
            return dict(self.sampling_params)
        return {**self.sampling_params, "temperature": sampling.temperature, "top_p": sampling.top_p, "max_new_tokens": sampling.max_new_tokens}

    def generate(self, messages: list[Message], sampling: SamplingParams | None = None) -> Generation:
        """The next turn from verl's server; ``sampling`` (the request's) replaces the trainer's
        temperature, top_p and per-turn token limit for this turn (RL requests carry none)."""
        stream = self._extend(messages)
        prompt_tokens = len(stream.ids)
        params = self.turn_sampling(sampling)
        started = time.perf_counter()
        coroutine = self.server_manager.generate(
            request_id=self.request_id,
            prompt_ids=list(stream.ids),
            sampling_params=params,
            image_data=list(stream.images) or None,
            video_data=list(stream.videos) or None,
            mm_processor_output=stream.video_payload,
        )
        output = asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()
        with self._lock:
            self.generation_s += time.perf_counter() - started
        kept = list(output.token_ids[: sampled_turn_length(list(output.token_ids), self.tokenizer)])
        logprobs = list(output.log_probs[: len(kept)]) if output.log_probs is not None and stream.logprobs is not None else None
        if logprobs is None:
            stream.logprobs = None
        merged = self.builder.merge_assistant_tokens(stream.ids, kept)
        stream.mask, stream.logprobs = self.builder.align_response_metadata(
            merged, stream.mask, stream.logprobs, assistant_logprobs=logprobs
        )
        stream.ids = merged.token_ids
        stream.sampled.append(kept)
        text = cut_at_tool_stop(trim_turn(self.tokenizer.decode(kept, skip_special_tokens=False)))
        # Cut at max_new_tokens: the server returned the whole allowance and the turn never ended.
        ended = (kept and kept[-1] == self.im_end_id) or any(stop in text for stop in TOOL_STOPS)
        cut = not ended and len(output.token_ids) >= params["max_new_tokens"]
        return Generation(text=text, prompt_tokens=prompt_tokens, completion_tokens=len(kept), finish_reason="length" if cut else "stop")


def _cut_whole_images(ids: list[int], limit: int, images: list[Any], tokenizer: Any) -> tuple[int, list[Any]]:
    """Where to cut a sequence at ``limit`` tokens without splitting an image or a video, and
    the images kept (videos sit in the prompt, which is never cut)."""
    if len(ids) <= limit:
        return len(ids), list(images)
    vision_start = tokenizer.convert_tokens_to_ids(wire.VISION_START)
    vision_end = tokenizer.convert_tokens_to_ids(wire.VISION_END)
    image_pad = tokenizer.convert_tokens_to_ids(wire.IMAGE_PAD)
    starts = [i for i, token in enumerate(ids) if token == vision_start]
    ends = [i for i, token in enumerate(ids) if token == vision_end]
    end = limit
    for start, stop in zip(starts, ends, strict=False):
        if start < end <= stop:
            end = start
    image_starts = [start for start in starts if start + 1 < len(ids) and ids[start + 1] == image_pad]
    return end, list(images[: sum(1 for start in image_starts if start < end)])


def _multi_modal_data(images: list[Image.Image], videos: list[VerlVideo]) -> dict[str, Any]:
    """verl's ``multi_modal_data``: the kept images under ``images``, the videos under ``videos``
    (the keys verl's ``_compute_multi_modal_inputs`` reads); a key only when it has items."""
    data: dict[str, Any] = {}
    if images:
        data["images"] = images
    if videos:
        data["videos"] = videos
    return data


class DeepEyesAgentLoop(AgentLoopBase):
    """verl agent loop running DeepEyes' multi-turn tool loop (registered as ``deepeyes_agent``).

    Extra keys of the agent-loop config entry arrive as keyword arguments:
    ``tool_manager_config`` (a ``tool_manager_config.yaml``), ``max_turns``,
    ``max_context_tokens`` and ``max_new_tokens`` (per turn). ``tool_manager`` and
    ``threads`` replace the process-wide ones (tests, benchmarks).
    """

    def __init__(
        self,
        *args: Any,
        tool_manager_config: str | None = None,
        max_turns: int = 8,
        max_context_tokens: int = 16384,
        max_new_tokens: int = 1024,
        tool_manager: ToolManager | None = None,
        threads: TrajectoryThreads | None = None,
        **kwargs: Any,
    ):
        kwargs.pop("name", None)
        kwargs.pop("tools", None)  # verl's own tool list: our tools come from the tool manager
        super().__init__(*args, **kwargs)
        self.tool_manager = tool_manager or shared_tool_manager(tool_manager_config)
        self.agent = AgentLoop(self.tool_manager, AgentConfig(max_turns=max_turns, max_context_tokens=max_context_tokens))
        self.max_new_tokens = max_new_tokens
        self.threads = threads or TRAJECTORY_THREADS
        size = self.processor.image_processor.size
        self.min_pixels, self.max_pixels = int(size["shortest_edge"]), int(size["longest_edge"])
        video_size = self.processor.video_processor.size
        # A frame's area bounds are the video processor's (as HFPolicy's); a row's max_pixels was
        # applied to its clips when the request was made (RLPrompt.request).
        self.video_min_pixels, self.video_max_pixels = int(video_size["shortest_edge"]), int(video_size["longest_edge"])

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        loop = asyncio.get_running_loop()
        # The launch copied the rows with absolute image paths; the reader checks each is a file.
        prompt = read_row(kwargs, f"verl dataset row (data_source={kwargs.get('data_source')}, index={kwargs.get('index')})")
        slot = current_slot()
        sample, step = (slot.sample, slot.step) if slot else (0, None)
        policy = ServerPolicy(
            self.server_manager,
            self.continuous_token_builder,
            self.tokenizer,
            loop,
            sampling_params,
            self.max_new_tokens,
            self.min_pixels,
            self.max_pixels,
            self.rollout_config.prompt_length,
            video_pixels=(self.video_min_pixels, self.video_max_pixels),
        )
        # The request is made on the trajectory's thread: decoding the row's videos blocks, and verl's event loop must not.
        rollout = await self.threads.run(lambda: self.agent.rollout(policy, prompt.request(sample, step)))
        stream = policy.stream
        assert stream is not None  # the agent loop always generates at least once
        end, images = _cut_whole_images(stream.ids, stream.prompt_length + self.rollout_config.response_length, stream.images, self.tokenizer)
        response_end = end - stream.prompt_length
        trajectory = rollout.trajectory
        return AgentLoopOutput(
            prompt_ids=stream.ids[: stream.prompt_length],
            response_ids=stream.response_ids[:response_end],
            response_mask=stream.mask[:response_end],
            response_logprobs=stream.logprobs[:response_end] if stream.logprobs is not None else None,
            multi_modal_data=_multi_modal_data(images, stream.videos),
            num_turns=len(rollout.messages) - 1,
            metrics=AgentLoopMetrics(generate_sequences=policy.generation_s, tool_calls=trajectory.timing.get("tools_s", 0.0)),
            extra_fields={
                **reward_extra_fields(trajectory),
                "turn_scores": [],
                "tool_rewards": [],
                # verl's data metrics read this key: tool_call_counts/{min,max,mean} in every tracker, live.
                "tool_call_counts": trajectory.tool_calls.total,
            },
        )
