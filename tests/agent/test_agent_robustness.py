"""Issue 25 items 7-9 in the agent loop: a cut turn is recorded and scored as cut, malformed
calls come back as observations, and no prompt over the context budget is ever sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from transformers import AutoProcessor

from deepeyes import wire
from deepeyes.agent import TURN_OVERHEAD_TOKENS, AgentConfig, AgentLoop
from deepeyes.chat import Message
from deepeyes.policies.base import Generation
from deepeyes.policies.hf import to_hf_messages
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.rewards.scoring import score_response, score_trajectory
from deepeyes.tool_manager import ToolManager
from deepeyes.trajectory import validate

RED = Image.new("RGB", (56, 56), (255, 0, 0))
CUT = "<think>r</think>\n<answer>1234"


class CutPolicy:
    """Replays turns; those listed in ``cut`` come back as cut at the token limit."""

    def __init__(self, turns: list[str], cut: set[int]):
        self.turns, self.cut = turns, cut

    def generate(self, messages: list[Message], sampling=None) -> Generation:
        position = sum(1 for m in messages if m.role == "assistant")
        return Generation(self.turns[position], finish_reason="length" if position in self.cut else "stop")


class MeasuringPolicy:
    """Replays turns and measures every prompt as the tiny model's processor encodes it."""

    def __init__(self, processor, turns: list[str]):
        self.processor, self.tokenizer, self.turns, self.prompts = processor, processor.tokenizer, turns, []

    def generate(self, messages: list[Message], sampling=None) -> Generation:
        text = self.processor.apply_chat_template(to_hf_messages(messages), add_generation_prompt=True, tokenize=False)
        images = [image for m in messages for image in m.images]
        prompt = int(self.processor(text=[text], images=images or None, return_tensors="pt")["input_ids"].shape[1])
        self.prompts.append(prompt)
        turn = self.turns[sum(1 for m in messages if m.role == "assistant")]
        return Generation(turn, prompt_tokens=prompt, completion_tokens=len(self.tokenizer.encode(turn)))


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    return AutoProcessor.from_pretrained(str(tiny_model_dir))


def test_a_cut_answer_ends_the_run_as_cut_and_scores_as_the_text_route() -> None:
    trajectory = AgentLoop(ToolManager()).run(CutPolicy([CUT], {0}), [RED], "digits?", ground_truth="1234")
    assert (trajectory.stop_reason, trajectory.final_answer, trajectory.turns[0].finish_reason) == ("length", "1234", "length")
    validate(trajectory.to_dict())
    scored = score_trajectory(trajectory)
    assert scored["task_completion"] == 0.0 and scored["score"] == 0.5  # was 0.75, paid as finished
    assert scored == {**score_response(CUT, "1234", stop_reason="length"), "details": scored["details"]}


def test_a_cut_tool_call_is_an_invalid_call_and_the_run_goes_on() -> None:
    turns = ["<think>c</think><code>\n```python\nprint(", wire.think("a") + wire.answer_action("7")]
    trajectory = AgentLoop(ToolManager()).run(CutPolicy(turns, {0}), [RED], "q")
    first = trajectory.turns[0]
    assert first.finish_reason == "length" and first.action.kind == "invalid" and "not closed" in first.observation.text
    assert (trajectory.stop_reason, trajectory.final_answer) == ("answer", "7")


def test_a_cut_no_tool_turn_is_not_an_answer() -> None:
    loop = AgentLoop(None, AgentConfig(use_tools=False))
    cut = loop.run(CutPolicy(["<think>long</think> it is probably", ""], {0}), [], "q")
    assert (cut.stop_reason, cut.final_answer) == ("length", None)
    whole = loop.run(CutPolicy(["<think>short</think> red", ""], set()), [], "q")
    assert (whole.stop_reason, whole.final_answer) == ("no_action", "red")


@pytest.mark.parametrize(
    ("box", "reason_part"),
    [("[NaN, 0, 10, 10]", "NaN"), ("[1e309, 0, 10, 10]", "1e309"), ("[" * 50_000 + "]" * 50_000, "nested too deeply")],
)
def test_malformed_zoom_calls_come_back_as_observations(box: str, reason_part: str) -> None:
    call = wire.think("z") + f'<tool_call>\n{{"name": "image_zoom_in_tool", "arguments": {{"bbox_2d": {box}}}}}\n</tool_call>'
    trajectory = AgentLoop(ToolManager()).run(ScriptedPolicy([call, wire.think("a") + wire.answer_action("red")]), [RED], "q")
    observation = trajectory.turns[0].observation
    assert observation.status == "error" and reason_part in observation.text
    assert (trajectory.stop_reason, trajectory.tool_calls.invalid) == ("answer", 1)


def test_a_huge_print_is_cut_to_the_context_left_before_the_next_prompt(tool_manager: ToolManager, processor) -> None:
    # The input: a million digits came back as a ~40,000-token observation and the next
    # prompt (40,466 tokens) went out although the budget was 16,384.
    turns = [wire.think("x") + wire.code_action("print('1' * 10**6)"), wire.think("y") + wire.answer_action("1")]
    policy = MeasuringPolicy(processor, turns)
    trajectory = AgentLoop(tool_manager, AgentConfig(max_context_tokens=16384)).run(policy, [RED], "How many digits?")
    assert trajectory.stop_reason == "answer" and len(policy.prompts) == 2
    assert max(policy.prompts) <= 16384 and policy.prompts[1] > 15000  # filled, not emptied
    observation = trajectory.turns[0].observation
    assert observation.status == "success" and "[note] output cut to its first" in observation.text


def test_a_prompt_that_cannot_fit_is_never_sent(processor) -> None:
    bad = wire.think("x") + '<tool_call>\n{"name": "calculator"}\n</tool_call>'
    probe = MeasuringPolicy(processor, [bad])
    AgentLoop(ToolManager(), AgentConfig(max_turns=1)).run(probe, [RED], "q")
    # Room for 5 tokens after the turn and the template's overhead: not even the error observation fits.
    budget = probe.prompts[0] + len(processor.tokenizer.encode(bad)) + TURN_OVERHEAD_TOKENS + 5
    policy = MeasuringPolicy(processor, [bad, wire.answer_action("never")])
    trajectory = AgentLoop(ToolManager(), AgentConfig(max_context_tokens=budget)).run(policy, [RED], "q")
    assert len(policy.prompts) == 1 and trajectory.stop_reason == "token_budget" and trajectory.final_answer is None
    assert trajectory.turns[0].observation is not None and trajectory.tool_calls.invalid == 1  # recorded, never sent


def test_a_first_prompt_over_the_budget_is_refused_before_generating(processor) -> None:
    """Issue 30, item 5: a 2 MB question never reaches the policy; the record says why, and scores as unanswered."""
    policy = MeasuringPolicy(processor, [wire.answer_action("never")])
    question = "How many dots? " + "dot " * (2 * 1024 * 1024 // 4)
    trajectory = AgentLoop(ToolManager(), AgentConfig(max_context_tokens=16384)).run(policy, [RED], question, ground_truth="1")
    assert policy.prompts == [] and trajectory.turns == []
    assert (trajectory.stop_reason, trajectory.final_answer) == ("token_budget", None)
    assert "more than the context budget of 16384 tokens" in trajectory.metadata["stop_detail"]
    validate(trajectory.to_dict())
    assert score_trajectory(trajectory, "1")["score"] == 0.0


def test_the_first_prompt_count_bounds_the_real_prompt_closely(processor) -> None:
    """The pre-count is an upper bound of what the processor encodes, and a close one: a prompt that fits is not refused."""
    from deepeyes.agent import prompt_tokens
    from deepeyes.tools.budget import tokenizer_counter

    for question, images in (("q", [RED]), ("What is written here? " * 200, [RED, Image.new("RGB", (300, 200))]), ("no image", [])):
        policy = MeasuringPolicy(processor, [wire.answer_action("a")])
        loop = AgentLoop(ToolManager(), AgentConfig(max_turns=1))
        loop.run(policy, images, question)
        counted = prompt_tokens(loop.first_messages(question, images), tokenizer_counter(processor.tokenizer))
        assert policy.prompts[0] <= counted <= policy.prompts[0] + 64, (policy.prompts[0], counted)  # images by whole 28-px cells
        exact = AgentLoop(ToolManager(), AgentConfig(max_turns=1, max_context_tokens=counted)).run(MeasuringPolicy(processor, [wire.answer_action("a")]), images, question)
        assert exact.stop_reason == "answer"
