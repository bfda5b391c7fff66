"""The code tool's kernel holds each video of the session as ``video_k_frames`` (the sampled
frames, PIL images) and ``video_k_times`` (seconds), beside ``image_1 …``; and a session
without videos costs the sandbox nothing more than before (no frames sent, no setup cell)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from PIL import Image
from video_media import frame, square_box, write_mp4

from deepeyes import wire
from deepeyes.agent import AgentConfig, AgentLoop
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.tool_manager import ToolManager
from deepeyes.videos import load_video

RED = Image.new("RGB", (64, 48), (255, 0, 0))

#: Prints, one line each: the square's left edge per frame and the times of videos 1 and 2,
#: then image_1's corner pixel and whether the frames' transport names are gone.
INSPECT = """
import numpy as np
edge = lambda f: int(np.flatnonzero(np.asarray(f.convert("L")).max(axis=0) > 128)[0])
print([edge(f) for f in video_1_frames])
print(video_1_times)
print([edge(f) for f in video_2_frames])
print(video_2_times)
print(image_1.getpixel((0, 0)), [name for name in globals() if name.startswith("image_") and name != "image_1"])
"""


def run_code(manager: ToolManager, code: str, videos: list) -> str:
    loop = AgentLoop(manager, AgentConfig(max_turns=2))
    turns = [wire.think("inspect") + wire.code_action(code), wire.answer_action("done")]
    trajectory = loop.run(ScriptedPolicy(turns), [RED], "q", videos=videos)
    observation = trajectory.turns[0].observation
    assert observation.status == "success", observation.text
    return observation.text


def test_the_kernel_holds_each_videos_frames_and_times(code_manager: ToolManager, tmp_path: Path) -> None:
    mp4 = write_mp4(tmp_path / "clip.mp4", count=8, fps=4)
    text = run_code(code_manager, INSPECT, [[frame(step) for step in range(6)], mp4])
    lines = [line for line in text.splitlines() if line.startswith(("[", "("))]
    edges_1, times_1, edges_2, times_2 = (ast.literal_eval(line) for line in lines[:4])
    # Frames given as a list: every frame, at the default 2 fps.
    assert edges_1 == [square_box(step)[0] for step in range(6)]
    assert times_1 == [step / 2 for step in range(6)]
    # The file: the frames the loop sampled (file frames 0, 2, 4, 7), at their decoded times.
    assert times_2 == load_video(mp4).timestamps == [0.0, 0.5, 1.0, 1.75]
    assert edges_2 == pytest.approx([square_box(step)[0] for step in (0, 2, 4, 7)], abs=1)  # MP4 is lossy
    # image_1 is still the question's image, and only it: the frames travelled under other names.
    assert lines[4] == "(255, 0, 0) []"


def test_frames_are_sent_and_set_up_only_for_a_session_with_videos(code_manager: ToolManager, monkeypatch: pytest.MonkeyPatch) -> None:
    client = code_manager.sandbox_client
    opened: list[int] = []
    executed: list[str] = []
    real_open, real_execute = client.open_session, client.execute
    monkeypatch.setattr(client, "open_session", lambda session_id, images=(): opened.append(len(images)) or real_open(session_id, images))
    monkeypatch.setattr(client, "execute", lambda session_id, code, **kw: executed.append(code) or real_execute(session_id, code, **kw))

    run_code(code_manager, "print(image_1.size)", [])
    assert (opened, len(executed)) == ([1], 1)  # the image only, and the model's cell only

    opened.clear()
    executed.clear()
    run_code(code_manager, "print(len(video_1_frames))", [[frame(step) for step in range(3)]])
    assert opened == [1 + 3] and len(executed) == 2  # the image and 3 frames; the setup cell, then the model's
    assert executed[0].startswith("video_1_frames = [image_2, image_3, image_4]")
