"""The one multi-turn agent loop used by RL rollouts, evaluation, the demo and inference.

policy writes a turn → the parser makes it an action → the tool manager runs it → the
observation goes back as a user turn; until an answer (``length`` instead of ``answer`` when
the answering turn was cut at the policy's token limit), ``max_turns`` or the context budget
(``token_budget``). Every turn is recorded in a :class:`~deepeyes.trajectory.Trajectory`.

The context budget is kept before each request, not after: the first prompt (system prompt,
question, images) is measured before it is sent and a run whose first prompt is over
``max_context_tokens`` ends at once with ``token_budget`` and no turn (issue 30: a 2 MB question
had run the model out of memory); each observation is measured in tokens and cut to what the
conversation has left (:mod:`deepeyes.tools.budget`), and a prompt that would still not fit
is never sent, so no server is asked for more than ``max_context_tokens``.

What varies per request travels with the :class:`AgentRequest`, so one loop, one policy and
one tool manager serve every front end: the tools this request may not use, ``force_no_tool``
(no tools at all, the no-tool prompt, one turn), the sampling settings handed to
``Policy.generate`` and a cancel event, checked before each generation and each tool call.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from deepeyes.chat import Message
from deepeyes.images import QWEN_DEFAULT_MAX_PIXELS, QWEN_FACTOR, load_image
from deepeyes.policies.base import Policy, SamplingParams
from deepeyes.prompts import (
    no_tool_system_prompt,
    system_prompt,
    user_prompt,
    video_system_prompt,
)
from deepeyes.tool_manager import ObservationBudget, ToolManager, ToolSession
from deepeyes.tool_specs import TOOL_NAMES
from deepeyes.tool_specs import resolve as resolve_tools
from deepeyes.tools.budget import (
    TokenCounter,
    image_tokens,
    tokenizer_counter,
    utf8_length,
)
from deepeyes.trajectory import StopReason, Trajectory, Turn
from deepeyes.videos import VideoClip, VideoInput, VideoSampling, load_video
from deepeyes.wire import escape_placeholders, final_answer, parse_turn

logger = logging.getLogger(__name__)


#: Tokens the chat template adds around an observation (closing the model's turn, the user
#: turn's header and end, the next assistant header), with room for how its text joins them.
TURN_OVERHEAD_TOKENS = 16
#: Frames one video token spans in time (Qwen2.5-VL's ``temporal_patch_size``).
VIDEO_TEMPORAL_PATCH = 2
#: Tokens the chat template adds around one message (``<|im_start|>role\n`` … ``<|im_end|>\n``), with room to spare.
MESSAGE_OVERHEAD_TOKENS = 8


class ContextLengthExceeded(ValueError):
    """A prompt holds more tokens than the context budget allows; it was not sent.

    ``prompt_tokens`` (at most, as :func:`prompt_tokens` counts) and ``max_context_tokens``
    say by how much. The inference service answers it with OpenAI's 400 ``context_length_exceeded``.
    """

    def __init__(self, prompt_tokens: int, max_context_tokens: int) -> None:
        super().__init__(
            f"the prompt holds {prompt_tokens} tokens, more than the context budget of {max_context_tokens} tokens "
            "(max_context_tokens); shorten the question or send fewer or smaller images"
        )
        self.prompt_tokens = prompt_tokens
        self.max_context_tokens = max_context_tokens


def prompt_tokens(messages: list[Message], count_tokens: TokenCounter, max_pixels: int | None = None) -> int:
    """At most how many tokens ``messages`` take as a prompt.

    Text by ``count_tokens`` (the policy's tokenizer, or UTF-8 bytes, an upper bound), images
    by Qwen2.5-VL's 28-px grid cells after the processor's downscale to ``max_pixels``
    (default: Qwen's own limit), videos as their frames' cells over pairs of frames
    (Qwen2.5-VL's temporal patch spans :data:`VIDEO_TEMPORAL_PATCH` frames), plus
    :data:`MESSAGE_OVERHEAD_TOKENS` per message.
    """
    cells_cap = (max_pixels or QWEN_DEFAULT_MAX_PIXELS) // (QWEN_FACTOR * QWEN_FACTOR) + 2
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS + sum(min(image_tokens(image), cells_cap) for image in message.images)
        total += sum(
            math.ceil(len(video.frames) / VIDEO_TEMPORAL_PATCH) * min(image_tokens(video.frames[0]), cells_cap)
            for video in message.videos
        )
        total += count_tokens(message.content)
    return total


class RunCancelled(RuntimeError):
    """The request's cancel event was set; the run stopped between steps, its tool session closed.

    ``trajectory`` holds the turns done so far (``stop_reason`` left as it was: the run did
    not end by itself), for a front end that shows what was done before the stop.
    """

    def __init__(self, trajectory: Trajectory) -> None:
        super().__init__(f"trajectory {trajectory.id} cancelled after {len(trajectory.turns)} turn(s)")
        self.trajectory = trajectory


@dataclass
class AgentConfig:
    """What every run of one loop shares; what varies per request is on :class:`AgentRequest`."""

    max_turns: int = 8
    #: The most tokens a prompt sent to the policy may hold (system prompt, question, images,
    #: turns and observations); observations are cut to fit it. The server's context must
    #: hold this plus the policy's per-turn ``max_new_tokens``.
    max_context_tokens: int = 16384
    #: ``False``: one turn, no tools, the no-tool system prompt (plain VQA evaluation).
    use_tools: bool = True
    #: Trajectories run at once by :meth:`AgentLoop.run_batch`.
    concurrency: int = 8
    system_prompt_path: str | None = None  # None: the bundled prompt for the mode


@dataclass
class AgentRequest:
    """One question, with everything about its run that may differ from the next request's."""

    question: str
    images: list[Image.Image | str | Path | bytes]
    id: str | None = None
    ground_truth: str | None = None
    data_source: str | None = None
    sample_index: str | None = None  # key into the image-search cache, when the sample has one
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Tools this request may not use (names or aliases): a call gets the 'disabled'
    #: observation and the tool never runs. The tool manager's own disabled tools stay off too.
    disabled_tools: Collection[str] = frozenset()
    #: The seed's ``force_no_tool``: every tool off for this request; the model answers
    #: directly, in one turn, under the no-tool system prompt (as ``AgentConfig.use_tools=False``).
    force_no_tool: bool = False
    #: Sampling of every turn of this request; None: the policy's own defaults.
    sampling: SamplingParams | None = None
    #: Turn limit of this request; None: ``AgentConfig.max_turns``.
    max_turns: int | None = None
    #: Set from any thread to stop the run before its next generation or tool call
    #: (:class:`RunCancelled`); a generation or tool call in flight finishes first.
    cancel: threading.Event | None = None
    #: Videos beside the images (files, frame folders, frame lists; :mod:`deepeyes.videos`),
    #: decoded once when the run starts and shown to the model after the images.
    videos: list[VideoInput] = field(default_factory=list)
    #: How frames are sampled from this request's video files (fps, frame count, pixels per frame).
    video_sampling: VideoSampling = field(default_factory=VideoSampling)

    def __post_init__(self) -> None:
        # Unknown names fail here, before anything runs (ValueError naming the tool).
        self.disabled_tools = frozenset(resolve_tools(self.disabled_tools))
        if self.max_turns is not None and self.max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {self.max_turns}")


@dataclass
class Rollout:
    """A trajectory plus the exact conversation the policy saw (images included), for RL."""

    trajectory: Trajectory
    messages: list[Message]


#: Called after each turn with the trajectory so far, the turn, and the images its tool call
#: returned (the record keeps only their count; the demo shows them). May raise to end the run.
TurnCallback = Callable[[Trajectory, Turn, list[Image.Image]], None]


class AgentLoop:
    def __init__(self, tool_manager: ToolManager | None, config: AgentConfig | None = None):
        self.config = config or AgentConfig()
        if self.config.use_tools and tool_manager is None:
            raise ValueError("use_tools=True needs a ToolManager")
        self.tool_manager = tool_manager
        if self.config.system_prompt_path:
            self.system_prompt = Path(self.config.system_prompt_path).read_text(encoding="utf-8").strip()
        else:
            self.system_prompt = system_prompt() if self.config.use_tools else no_tool_system_prompt()

    def uses_tools(self, request: AgentRequest) -> bool:
        """Whether ``request`` runs with tools: the loop has them and the request does not force them off."""
        return self.config.use_tools and not request.force_no_tool

    def run(self, policy: Policy, images: list[Image.Image | str | Path | bytes], question: str, **request: Any) -> Trajectory:
        """Answer one question; see :class:`AgentRequest` for the optional fields."""
        return self.rollout(policy, AgentRequest(question=question, images=images, **request)).trajectory

    def rollout(self, policy: Policy, request: AgentRequest, on_turn: TurnCallback | None = None) -> Rollout:
        started = time.perf_counter()
        images = [load_image(image) for image in request.images]
        videos = [load_video(video, request.video_sampling) for video in request.videos]
        trajectory = Trajectory(
            id=request.id or uuid.uuid4().hex[:12],
            question=request.question,
            images=[str(image) if isinstance(image, (str, Path)) else "<in-memory>" for image in request.images],
            ground_truth=request.ground_truth,
            data_source=request.data_source,
            metadata=dict(request.metadata),
            videos=[video.describe() for video in videos],
        )
        use_tools = self.uses_tools(request)
        messages = self.first_messages(request.question, images, use_tools, videos, request.disabled_tools)
        count_tokens = tokenizer_counter(getattr(policy, "tokenizer", None))
        overflow = self.context_overflow(messages, policy, count_tokens)
        if overflow is not None:
            # Nothing was generated and no tool session opened: the record says why.
            logger.warning("trajectory %s not started: %s", trajectory.id, overflow)
            trajectory.stop_reason = "token_budget"
            trajectory.metadata["stop_detail"] = str(overflow)
            trajectory.timing = {"total_s": time.perf_counter() - started, "generation_s": 0.0, "tools_s": 0.0}
            return Rollout(trajectory, messages)
        session = None
        if use_tools:
            assert self.tool_manager is not None  # use_tools guarantees it
            session = self.tool_manager.open_session(images, request.sample_index, videos)
            session.disabled |= request.disabled_tools
        max_turns = request.max_turns or self.config.max_turns
        generation_s = tools_s = 0.0
        try:
            for index in range(max_turns if use_tools else 1):
                self._check_cancel(request, trajectory)
                t0 = time.perf_counter()
                generation = policy.generate(messages, request.sampling)
                turn_generation_s = time.perf_counter() - t0
                generation_s += turn_generation_s
                # One parse gives the action and the violations the record keeps; the text
                # route reads the same text with the same function (deepeyes.wire.response).
                parsed = parse_turn(generation.text)
                turn = Turn(
                    index,
                    generation.text,
                    parsed.action,
                    generation_s=turn_generation_s,
                    completion_tokens=generation.completion_tokens,
                    violations=parsed.violations,
                    finish_reason=generation.finish_reason,
                )
                trajectory.turns.append(turn)
                messages.append(Message("assistant", generation.text))
                room = self.config.max_context_tokens - generation.prompt_tokens - generation.completion_tokens - TURN_OVERHEAD_TOKENS
                stop, observed = self._finish_turn(request, trajectory, session, messages, turn, ObservationBudget(room, count_tokens))
                tools_s += turn.observation.latency_s if turn.observation else 0.0
                if on_turn is not None:
                    on_turn(trajectory, turn, observed)
                if stop:
                    break
            else:
                trajectory.stop_reason = "max_turns"
        finally:
            if session is not None:
                self.tool_manager.close_session(session)
            # Also on a cancel or a failure: the partial record says how long it ran.
            trajectory.timing = {
                "total_s": time.perf_counter() - started,
                "generation_s": generation_s,
                "tools_s": tools_s,
            }
        return Rollout(trajectory, messages)

    def first_messages(
        self,
        question: str,
        images: list[Image.Image],
        use_tools: bool = True,
        videos: list[VideoClip] | None = None,
        disabled_tools: Collection[str] = frozenset(),
    ) -> list[Message]:
        """The first prompt of a run: the system prompt (the no-tool one when the run has no tools;
        with the frame tools described when the run has videos and tools), then the question with its images and videos."""
        prompt = self.system_prompt if use_tools or not self.config.use_tools else no_tool_system_prompt()
        videos = videos or []
        if videos and use_tools and self.config.use_tools:
            prompt = video_system_prompt(prompt, self.enabled_tools(disabled_tools))
        # A literal <image> or <video> in the question would claim media the request does not have.
        question = escape_placeholders(question)
        return [Message("system", prompt), Message("user", user_prompt(question, len(images), len(videos)), images, videos)]

    def enabled_tools(self, disabled_tools: Collection[str] = frozenset()) -> frozenset[str]:
        """The tools a run may call: the registry's, less the tool manager's and ``disabled_tools`` (canonical names)."""
        off = set(disabled_tools) | (self.tool_manager.disabled_tools if self.tool_manager is not None else set())
        return frozenset(TOOL_NAMES) - off

    @staticmethod
    def _check_cancel(request: AgentRequest, trajectory: Trajectory) -> None:
        """Raises :class:`RunCancelled` when the request's cancel event is set."""
        if request.cancel is not None and request.cancel.is_set():
            raise RunCancelled(trajectory)

    def context_overflow(
        self, messages: list[Message], policy: Policy, count_tokens: TokenCounter | None = None
    ) -> ContextLengthExceeded | None:
        """Why ``messages`` may not be sent to ``policy`` (over ``max_context_tokens``), else None."""
        budget, max_pixels = self.config.max_context_tokens, getattr(policy, "max_pixels", None)
        # UTF-8 bytes bound the tokens (byte-level BPE): a prompt within the budget by bytes is
        # not tokenised at all, the common case; only a longer one is counted exactly.
        if prompt_tokens(messages, utf8_length, max_pixels) <= budget:
            return None
        tokens = prompt_tokens(messages, count_tokens or tokenizer_counter(getattr(policy, "tokenizer", None)), max_pixels)
        return ContextLengthExceeded(tokens, budget) if tokens > budget else None

    def _finish_turn(
        self,
        request: AgentRequest,
        trajectory: Trajectory,
        session: ToolSession | None,
        messages: list[Message],
        turn: Turn,
        budget: ObservationBudget,
    ) -> tuple[bool, list[Image.Image]]:
        """Act on one parsed turn: whether the trajectory ends here, and the images its tool call returned."""
        action = turn.action
        # A turn cut at the token limit that would end the run did not finish it: ``length``.
        # A cut tool call is an unclosed block, answered with an error observation like any invalid call.
        cut = turn.finish_reason == "length"
        if action.kind == "answer":
            return self._stop(trajectory, turn, "length" if cut else "answer"), []
        if session is None:
            # No tools (plain VQA, or force_no_tool): a model that ignores the tag still gets its text scored.
            return self._stop(trajectory, turn, "length" if cut else "no_action"), []
        if budget.max_tokens <= 0:
            # Not even an empty observation fits: the call is not run (a valid one is not
            # counted, as on the text route, where a call without an observation never ran).
            if action.kind == "invalid":
                trajectory.tool_calls.record(action, None)
            return self._stop(trajectory, turn, "token_budget"), []
        assert self.tool_manager is not None  # a session comes from it
        self._check_cancel(request, trajectory)
        result = self.tool_manager.execute(session, action, budget)
        turn.observation = result.observation
        trajectory.tool_calls.record(action, result.observation)
        if result.tokens is not None and result.tokens > budget.max_tokens:
            return self._stop(trajectory, turn, "token_budget"), list(result.images)  # recorded, never sent
        messages.append(Message("user", result.observation.text, result.images))
        return False, list(result.images)

    @staticmethod
    def _stop(trajectory: Trajectory, turn: Turn, reason: StopReason) -> bool:
        """End the run after ``turn`` with ``reason``; its answer by the rule both routes share."""
        trajectory.stop_reason = reason
        trajectory.final_answer = final_answer(turn.action, turn.model_text, reason)
        return True

    def run_batch(
        self,
        policy: Policy,
        requests: list[AgentRequest],
        on_done: Callable[[Rollout], None] | None = None,
    ) -> list[Rollout]:
        """Run many trajectories concurrently; one's tool call overlaps another's generation.

        Results come back in request order; ``on_done`` is called as each finishes (for
        progress bars and incremental writing).
        """

        def one(request: AgentRequest) -> Rollout:
            rollout = self.rollout(policy, request)
            if on_done is not None:
                on_done(rollout)
            return rollout

        workers = max(1, min(self.config.concurrency, len(requests)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="agent") as pool:
            return list(pool.map(one, requests))

