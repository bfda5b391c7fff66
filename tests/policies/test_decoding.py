"""The decode loop gives what ``model.generate`` gave the policy, on the tiny random Qwen2.5-VL.

The reference is the policy's previous path: ``generate`` with the wire stop strings, the
pad id and the policy's logits processors, each row cut at its first end token or
completed stop string, run on one intra-op thread as the policy now generates (another
thread count may split sums differently). Ids must be equal, not close: RL trains on them;
and so must every step's scores, since a random model's greedy text is often one token.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from deepeyes import wire
from deepeyes.chat import Message, all_images
from deepeyes.images import prepare_for_qwen
from deepeyes.policies.base import SamplingParams
from deepeyes.policies.decoding import (
    DECODE_ATTENTION,
    Decoder,
    intra_op_threads,
)
from deepeyes.policies.hf import HFPolicy, to_hf_messages, trim_turn
from deepeyes.prompts import system_prompt, user_prompt

MAX_NEW = 12


@pytest.fixture(scope="module")
def policy(tiny_model_dir: Path) -> HFPolicy:
    return HFPolicy(tiny_model_dir, max_new_tokens=MAX_NEW)


def _conversation(question: str, *sizes: tuple[int, int], colour: str = "green") -> list[Message]:
    images = [Image.new("RGB", size, colour) for size in sizes]
    return [Message("system", system_prompt()), Message("user", user_prompt(question, len(images)), images)]


SINGLE = _conversation("How many circles?", (64, 64))
MIXED = [
    SINGLE,
    _conversation("What colour is the largest shape in the picture, and where is it?", (120, 80), colour="red"),
    [Message("user", "no image, a short question")],
    _conversation("Compare the two images.", (30, 20), (64, 48), colour="blue"),
]


class ForceTokens:
    """Makes ``row`` emit ``tokens`` from its ``start``-th new token on (a script for a random model)."""

    def __init__(self, plan: dict[int, tuple[int, list[int]]]):
        self.plan = plan
        self.prompt_length: int | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.prompt_length = self.prompt_length or input_ids.shape[1]
        step = input_ids.shape[1] - self.prompt_length
        for row, (start, tokens) in self.plan.items():
            if start <= step < start + len(tokens):
                scores[row] = float("-inf")
                scores[row, tokens[step - start]] = 0.0
        return scores


def _inputs(policy: HFPolicy, conversations: list[list[Message]]) -> dict[str, torch.Tensor]:
    prompts = [policy.processor.apply_chat_template(to_hf_messages(m), add_generation_prompt=True, tokenize=False) for m in conversations]
    images = [prepare_for_qwen(image, policy.min_pixels, policy.max_pixels) for m in conversations for image in all_images(m)]
    policy.tokenizer.padding_side = "left"
    return dict(policy.processor(text=prompts, images=images or None, padding=True, return_tensors="pt"))


def _reference(
    policy: HFPolicy, conversations: list[list[Message]], extra: list | None = None, extra_after: list | None = None, **sampling
) -> list[tuple[list[int], str]]:
    """``model.generate`` as the policy called it before the decode loop, each row cut where the policy cut it."""
    inputs = _inputs(policy, conversations)
    do_sample = sampling.get("temperature", 0.0) > 0
    with torch.no_grad(), intra_op_threads(1):
        output = policy.model.generate(
            **inputs,
            max_new_tokens=policy.config.max_new_tokens,
            do_sample=do_sample,
            temperature=sampling.get("temperature") if do_sample else None,
            top_p=sampling.get("top_p") if do_sample else None,
            top_k=None,
            stop_strings=list(wire.STOP_STRINGS),
            tokenizer=policy.tokenizer,
            pad_token_id=policy.tokenizer.pad_token_id,
            logits_processor=[*(extra or []), *policy._logits_processors, *(extra_after or [])],
        )
    end_ids = policy._end_ids()
    rows = []
    for row in output[:, inputs["input_ids"].shape[1] :].tolist():  # the policy's former cut, from the left
        for index, token in enumerate(row):
            piece = policy.tokenizer.decode(row[max(0, index - 8) : index + 1], skip_special_tokens=False)
            if token in end_ids or piece.rstrip().endswith(wire.STOP_STRINGS):
                rows.append((row[: index + 1], "stop"))
                break
        else:
            rows.append((row, "length"))
    return rows


class RecordScores:
    """Keeps a copy of the scores it sees at each step (placed last, it sees what the token is chosen from)."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.steps.append(scores.clone())
        return scores


def _ids(generations) -> list[tuple[list[int], str]]:
    return [(g.token_ids, g.finish_reason) for g in generations]


def test_greedy_ids_equal_generate_single_and_batched(policy: HFPolicy) -> None:
    single = policy.generate(SINGLE)
    assert _ids([single]) == _reference(policy, [SINGLE])
    ours, theirs = RecordScores(), RecordScores()
    policy._logits_processors.append(ours)
    try:
        batched = policy.generate_batch(MIXED)
    finally:
        policy._logits_processors.remove(ours)
    reference = _reference(policy, MIXED, extra_after=[theirs])
    assert _ids(batched) == reference  # images of several sizes, two images, none; left padding
    # Not only the argmax: every step's scores are bit for bit generate's (the random model's are near-flat).
    assert len(ours.steps) == len(theirs.steps) and all(torch.equal(a, b) for a, b in zip(ours.steps, theirs.steps, strict=True))
    for generation, conversation, (ids, _) in zip(batched, MIXED, reference, strict=True):
        assert generation.text == trim_turn(policy.tokenizer.decode(ids, skip_special_tokens=False))
        assert generation.prompt_token_ids == _inputs(policy, [conversation])["input_ids"][0].tolist()  # padding excluded
        assert generation.prompt_tokens == len(generation.prompt_token_ids)
        assert generation.completion_tokens == len(generation.token_ids) <= MAX_NEW


def test_rows_stop_at_end_tokens_and_stop_strings_others_run_to_the_limit(policy: HFPolicy) -> None:
    """Row 0 writes ``<|im_end|>``, row 1 spells ``</code>`` over six tokens, row 2 writes ``</code>`` whole."""
    tokenizer = policy.tokenizer
    im_end = tokenizer.convert_tokens_to_ids(wire.IM_END)
    spelled = tokenizer.encode("</cod", add_special_tokens=False) + tokenizer.encode("e>", add_special_tokens=False)
    assert len(spelled) > 1 and tokenizer.decode(spelled) == wire.CODE_CLOSE
    plan = {0: (2, [im_end]), 1: (1, spelled), 2: (0, tokenizer.encode(wire.CODE_CLOSE, add_special_tokens=False))}
    conversations = MIXED[:4]
    force = ForceTokens(plan)
    policy._logits_processors.insert(0, force)
    try:
        generations = policy.generate_batch(conversations)
    finally:
        policy._logits_processors.remove(force)
    assert _ids(generations) == _reference(policy, conversations, extra=[ForceTokens(plan)])
    assert generations[0].token_ids[-1] == im_end and len(generations[0].token_ids) == 3
    assert generations[0].finish_reason == "stop" and wire.IM_END not in generations[0].text
    assert generations[1].token_ids[-len(spelled) :] == spelled and len(generations[1].token_ids) == 1 + len(spelled)
    assert generations[1].finish_reason == "stop" and generations[1].text.endswith(wire.CODE_CLOSE)
    assert len(generations[2].token_ids) == 1 and generations[2].text == wire.CODE_CLOSE
    assert len(generations[3].token_ids) <= MAX_NEW  # the unscripted row runs on while the others are padded
    assert generations[3].finish_reason == ("length" if len(generations[3].token_ids) == MAX_NEW else "stop")


def test_max_new_tokens_is_the_limit(tiny_model_dir: Path) -> None:
    short = HFPolicy(tiny_model_dir, max_new_tokens=3)
    for generation in short.generate_batch(MIXED[:2]):
        assert len(generation.token_ids) <= 3
        assert generation.finish_reason == ("length" if len(generation.token_ids) == 3 else "stop")


@pytest.mark.parametrize("options", [{"tool_call_threshold": 1.0}, {"tool_call_threshold": 0.999}, {"tool_call_threshold": 0.3}])
def test_the_tool_gate_acts_exactly_as_under_generate(tiny_model_dir: Path, options: dict) -> None:
    gated = HFPolicy(tiny_model_dir, max_new_tokens=8, **options)
    openers = [gated.tokenizer.convert_tokens_to_ids(t) for t in (wire.CODE_OPEN, wire.TOOL_CALL_OPEN)]

    def prefer_tools(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores[:, openers] = scores.max(dim=-1, keepdim=True).values + 5.0
        return scores

    gated._logits_processors.insert(0, prefer_tools)  # the random model now wants a tool; the gate runs after
    generations = gated.generate_batch(MIXED[:2])
    assert _ids(generations) == _reference(gated, MIXED[:2])
    if options["tool_call_threshold"] > 0.99:
        assert all(wire.CODE_OPEN not in g.text and wire.TOOL_CALL_OPEN not in g.text for g in generations)


def test_sampling_with_a_seed_is_reproducible_and_draws_what_generate_draws(tiny_model_dir: Path) -> None:
    hot = HFPolicy(tiny_model_dir, max_new_tokens=MAX_NEW, temperature=0.8, top_p=0.9)
    torch.manual_seed(7)
    first = _ids(hot.generate_batch(MIXED[:3]))
    torch.manual_seed(7)
    second = _ids(hot.generate_batch(MIXED[:3]))
    torch.manual_seed(7)
    reference = _reference(hot, MIXED[:3], temperature=0.8, top_p=0.9)
    assert first == second == reference
    torch.manual_seed(8)
    assert _ids(hot.generate_batch(MIXED[:3])) != first


def test_repetition_penalty_of_the_generation_config_is_applied_and_unknown_settings_refused(tiny_model_dir: Path) -> None:
    penalised = HFPolicy(tiny_model_dir, max_new_tokens=MAX_NEW)
    plain = _ids(penalised.generate_batch(MIXED[:2]))
    penalised.model.generation_config.repetition_penalty = 50.0  # strong enough to move the random model (Qwen ships 1.05)
    assert _ids(penalised.generate_batch(MIXED[:2])) == _reference(penalised, MIXED[:2]) != plain
    penalised.model.generation_config.no_repeat_ngram_size = 2
    with pytest.raises(ValueError, match="generation_config.no_repeat_ngram_size"):
        penalised.generate(SINGLE)


def test_a_generation_leaves_threads_and_attention_as_it_found_them(policy: HFPolicy) -> None:
    threads = torch.get_num_threads()
    text_config = policy.model.config.get_text_config(decoder=True)
    policy.generate(SINGLE)
    assert torch.get_num_threads() == threads
    assert text_config._attn_implementation == "sdpa" != DECODE_ATTENTION


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(temperature=1.0, top_p=1.5, max_new_tokens=4)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-0.5)


def test_a_model_without_m_rope_is_refused(policy: HFPolicy) -> None:
    with pytest.raises(TypeError, match="get_rope_index"):
        Decoder(torch.nn.Linear(2, 2), policy.tokenizer, end_ids=[0], stop_strings=["x"], pad_id=0)
