"""What varies per request travels on the AgentRequest: disabled tools, force_no_tool, sampling, turn limit, cancel."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from deepeyes import infer, wire
from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest, RunCancelled
from deepeyes.chat import Message
from deepeyes.demo.session import PreparedInput, RunSettings
from deepeyes.policies.base import SamplingParams
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.prompts import no_tool_system_prompt, system_prompt, video_system_prompt
from deepeyes.serve.app import _request_run
from deepeyes.serve.config import ServeConfig
from deepeyes.serve.schemas import ChatCompletionRequest
from deepeyes.tool_manager import ToolManager
from deepeyes.tool_specs import TOOL_NAMES
from deepeyes.videos import VideoSampling

CODE_CALL = wire.think("compute") + wire.code_action("print(6 * 7)")
INVALID_CALL = wire.think("search") + "<tool_call>\nnot json\n</tool_call>"


class ClosingSpy:
    """A not-started tool manager that records the sessions it closes (calls that need no service only)."""

    def __init__(self) -> None:
        self.manager = ToolManager()
        self.closed: list[str] = []

    def __getattr__(self, name: str):
        return getattr(self.manager, name)

    def close_session(self, session) -> None:
        self.closed.append(session.session_id)
        self.manager.close_session(session)


def test_a_request_with_disabled_tools_never_calls_them() -> None:
    """The code call gets the 'disabled' observation; no sandbox is ever started, the manager's own switches stay."""
    manager = ToolManager()  # not started: a call that reached the tool would start its services
    loop = AgentLoop(manager, AgentConfig(max_turns=3))
    policy = ScriptedPolicy([CODE_CALL, wire.answer_action("42")])
    trajectory = loop.rollout(policy, AgentRequest("6 x 7?", [Image.new("RGB", (8, 8))], disabled_tools={"code_execution"})).trajectory
    assert trajectory.turns[0].observation is not None and trajectory.turns[0].observation.status == "disabled"
    assert trajectory.final_answer == "42" and trajectory.tool_calls.code == 0
    assert manager.sandbox_client is None  # the code tool was never started, let alone called
    assert "code" not in manager.disabled_tools  # the switch was this request's only


def test_an_unknown_disabled_tool_is_refused_before_the_run() -> None:
    with pytest.raises(ValueError, match="telepathy"):
        AgentRequest("q", [], disabled_tools={"telepathy"})


def test_each_requests_sampling_reaches_the_policy_and_turn_limit_applies() -> None:
    loop = AgentLoop(ToolManager(), AgentConfig(max_turns=8))
    policy = ScriptedPolicy([INVALID_CALL] * 8)
    hot, cold = SamplingParams(temperature=0.9, top_p=0.8, max_new_tokens=32), SamplingParams(max_new_tokens=4)
    first = loop.rollout(policy, AgentRequest("q", [], sampling=hot, max_turns=2)).trajectory
    second = loop.rollout(policy, AgentRequest("q", [], sampling=cold, max_turns=1)).trajectory
    third = loop.rollout(policy, AgentRequest("q", [], max_turns=1)).trajectory
    assert [len(t.turns) for t in (first, second, third)] == [2, 1, 1]
    assert policy.samplings == [hot, hot, cold, None]  # None: the policy's own defaults


def test_the_tiny_model_at_temperature_zero_per_request_is_greedy_whatever_its_defaults(tiny_model_dir: Path) -> None:
    from deepeyes.policies.hf import HFPolicy

    conversation = [Message("system", "You may use tools."), Message("user", "How many squares?")]
    hot = HFPolicy(tiny_model_dir, temperature=1.5, max_new_tokens=12)
    greedy = HFPolicy(tiny_model_dir, max_new_tokens=12)
    request = SamplingParams(temperature=0.0, max_new_tokens=12)
    texts = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        texts.append(hot.generate(conversation, request).token_ids)
    assert texts[0] == texts[1] == greedy.generate(conversation).token_ids
    torch.manual_seed(1)
    sampled = [hot.generate(conversation).token_ids for _ in range(3)]
    assert any(ids != texts[0] for ids in sampled)  # the policy's own default (hot) still samples
    assert (hot.config.temperature, hot.sampling.temperature) == (1.5, 1.5)  # nothing was changed on the shared policy


def test_cancel_stops_a_run_between_turns_and_frees_its_session() -> None:
    tools = ClosingSpy()
    loop = AgentLoop(tools, AgentConfig(max_turns=10))  # type: ignore[arg-type]  # duck-typed manager
    cancel = threading.Event()
    policy = ScriptedPolicy([INVALID_CALL] * 10)
    with pytest.raises(RunCancelled) as caught:
        loop.rollout(policy, AgentRequest("q", [], cancel=cancel), on_turn=lambda *_: cancel.set() if len(policy.samplings) == 2 else None)
    assert len(caught.value.trajectory.turns) == 2 and len(policy.samplings) == 2  # no third generation
    assert len(tools.closed) == 1 and caught.value.trajectory.timing["total_s"] > 0
    cancel.set()  # cancelled before it starts: nothing is generated
    with pytest.raises(RunCancelled):
        loop.rollout(policy, AgentRequest("q", [], cancel=cancel))
    assert len(policy.samplings) == 2 and len(tools.closed) == 2


def _first_prompt_and_turns(request: AgentRequest, loop: AgentLoop) -> tuple[str, int, int]:
    """The system prompt the policy saw, the number of turns, and how many turns got an observation."""
    seen: list[str] = []

    def script(messages: list[Message]) -> str:
        seen.append(messages[0].content)
        return CODE_CALL  # a model that would call a tool if it could

    trajectory = loop.rollout(ScriptedPolicy(script), request).trajectory
    return seen[0], len(trajectory.turns), sum(turn.observation is not None for turn in trajectory.turns)


def test_force_no_tool_means_the_same_in_infer_the_demo_and_the_service(tmp_path: Path) -> None:
    """Each front end's request says force_no_tool; the loop then sends the no-tool prompt and runs one turn, no tool."""
    image = tmp_path / "in.png"
    Image.new("RGB", (16, 16), "red").save(image)
    args, model, tools, _ = infer.parse_args(["--image", str(image), "--question", "q", "--force_no_tool", "--max_turns", "5"])
    from_infer = infer.make_request(args, model, tools, [Image.open(image)])
    from_demo = RunSettings(force_no_tool=True, max_turns=5).request(PreparedInput("q", [Image.open(image)], ["in.png"]), threading.Event())
    loop = AgentLoop(ToolManager(), AgentConfig(max_turns=5))
    state = SimpleNamespace(config=ServeConfig(), loop=loop, backend=SimpleNamespace(policy=None, tokenizer=None, max_pixels=None))
    chat = ChatCompletionRequest.model_validate({"model": "deepeyes", "messages": [{"role": "user", "content": "q"}], "force_no_tool": True})
    from_service = _request_run(state, chat, "q", [Image.open(image)], [], VideoSampling(), SamplingParams()).request  # type: ignore[arg-type]  # the fields it reads
    for request in (from_infer, from_demo, from_service):
        assert request.force_no_tool
        assert _first_prompt_and_turns(request, loop) == (no_tool_system_prompt(), 1, 0)
    free = AgentRequest("q", [Image.open(image)], disabled_tools=set(TOOL_NAMES))  # every tool disabled: still the tool prompt
    assert _first_prompt_and_turns(free, AgentLoop(ToolManager(), AgentConfig(max_turns=2))) == (system_prompt(), 2, 2)


def test_a_request_with_videos_shows_them_after_the_images_and_records_their_frames(tmp_path: Path) -> None:
    """Videos are decoded once per run by the request's sampling; the first user turn holds
    their placeholders after the images', the tool session gets the same clips, and the
    record names each video with the frames the model saw."""
    from video_media import write_frames, write_mp4

    from deepeyes.agent import prompt_tokens
    from deepeyes.tools.budget import utf8_length

    spy = ClosingSpy()
    opened: list = []
    spy.open_session = lambda images, sample_index=None, videos=(): opened.append(list(videos)) or spy.manager.open_session(images, sample_index, videos)
    seen: list[list[Message]] = []
    policy = ScriptedPolicy(lambda messages: seen.append(list(messages)) or wire.answer_action("right"))
    request = AgentRequest(
        "Which way does the square move?",
        [Image.new("RGB", (28, 28))],
        videos=[write_mp4(tmp_path / "clip.mp4", count=8, fps=4), tmp_path / "frames"],
        video_sampling=VideoSampling(fps=2.0, max_frames=3),
    )
    write_frames(tmp_path / "frames", count=4)
    trajectory = AgentLoop(spy, AgentConfig(max_turns=2)).rollout(policy, request).trajectory  # type: ignore[arg-type]

    user = seen[0][1]
    assert seen[0][0].content == video_system_prompt(None, frozenset(TOOL_NAMES))  # the frame tools, only to runs with videos
    assert user.content.startswith("<image><video><video>\n") and len(user.images) == 1
    assert [len(v.frames) for v in user.videos] == [3, 3] and opened == [user.videos]
    assert trajectory.videos == [{"source": str(tmp_path / "clip.mp4"), "frames": 3}, {"source": str(tmp_path / "frames"), "frames": 3}]
    assert trajectory.from_dict(trajectory.to_dict()).videos == trajectory.videos  # the schema takes them
    # Each video costs one frame's tokens per pair of frames: ceil(3 / 2) = 2 for 3 frames.
    from deepeyes.tools.budget import image_tokens

    without = prompt_tokens([Message("user", "<image>", user.images)], utf8_length)
    with_videos = prompt_tokens([Message("user", "<image><video><video>", user.images, user.videos)], utf8_length)
    assert with_videos - without == 2 * 2 * image_tokens(user.videos[0].frames[0]) + len("<video><video>")
    # A run whose request switches the frame tools off is not told of them.
    off = AgentRequest("q", [], videos=[tmp_path / "frames"], disabled_tools={"select_frames", "zoom_in"})
    AgentLoop(spy, AgentConfig(max_turns=2)).rollout(policy, off)  # type: ignore[arg-type]
    assert "video_1_frames" in seen[-1][0].content and "select_frames" not in seen[-1][0].content


def test_a_question_that_spells_a_placeholder_is_asked_as_text() -> None:
    """'<video>' or '<image>' typed in a question is text, not a claim of media the request lacks."""
    seen: list[Message] = []
    policy = ScriptedPolicy(lambda messages: seen.extend(messages) or wire.answer_action("a tag"))
    request = AgentRequest("What does <video> or <image> mean in HTML?", [Image.new("RGB", (8, 8))])
    trajectory = AgentLoop(None, AgentConfig(use_tools=False)).rollout(policy, request).trajectory
    assert trajectory.final_answer == "a tag" and len(seen[1].images) == 1 and seen[1].videos == []
    assert "< video > or < image >" in seen[1].content
