"""Sessions free their kernels; images from tools are fitted to Qwen2.5-VL before the model sees them."""

from __future__ import annotations

import redis
from PIL import Image

from deepeyes import wire
from deepeyes.agent import AgentLoop, AgentRequest
from deepeyes.images import QWEN_FACTOR, QWEN_MAX_ASPECT, fit_for_qwen
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.tool_manager import ToolManager
from deepeyes.utils.processes import RedisServer

RED = Image.new("RGB", (40, 30), (255, 0, 0))


def code(source: str) -> str:
    return wire.think("compute") + wire.code_action(source)


def test_closed_sessions_leave_no_kernel_and_no_redis_key(redis_server: RedisServer, tool_config) -> None:
    config = tool_config(["code_execution"])  # the seed's name for the code tool
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    with ToolManager(config=config) as manager:
        before = set(client.keys("deepeyes:sandbox*"))
        policy = ScriptedPolicy([code("x = 1\nprint(x + 1)"), wire.answer_action("2")])
        requests = [AgentRequest("q", [RED]) for _ in range(6)]
        rollouts = AgentLoop(manager).run_batch(policy, requests)
        assert all(r.trajectory.tool_calls.code == 1 and r.trajectory.turns[0].observation.status == "success" for r in rollouts)
        health = next(iter(manager.sandbox_client.health().values()))
        assert health["sessions"] == 0
        assert set(client.keys("deepeyes:sandbox*")) - before == set()


def test_fit_for_qwen_respects_every_limit() -> None:
    for size in [(1, 30000), (30000, 1), (5, 5), (4000, 3000), (28, 9000)]:
        image, note = fit_for_qwen(Image.new("RGB", size), 224 * 224)
        width, height = image.size
        assert min(width, height) >= QWEN_FACTOR and max(width, height) / min(width, height) <= QWEN_MAX_ASPECT
        assert width * height <= 224 * 224 and note is not None
    same, note = fit_for_qwen(RED.resize((80, 60)), 224 * 224)
    assert same.size == (80, 60) and note is None


def test_a_huge_aspect_figure_does_not_abort_the_rollout(tool_manager_with_model) -> None:
    manager, policy = tool_manager_with_model
    show = "from PIL import Image\ndisplay(Image.new('RGB', (1, 30000), (0, 0, 255)))"
    rollout = AgentLoop(manager).rollout(ScriptedPolicy([code(show), wire.answer_action("blue")]), AgentRequest("q", [RED]))
    observation = rollout.trajectory.turns[0].observation
    assert observation.image_count == 1 and wire.NOTE_PREFIX + "image 1: image of size 1x30000 padded" in observation.text
    # The conversation the model would now continue from, figure included, goes through generation.
    assert policy.generate(rollout.messages[:4]).text is not None
