"""tool_call_threshold acts on the token that commits a turn to a tool call (force_no_tool is a request switch: test_agent_loop.py)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from deepeyes import wire
from deepeyes.policies.tool_gate import (
    ToolCallGate,
    ToolGateUnsupported,
    check_remote_support,
    decision_tokens,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _scores(tokenizer, probabilities: dict[str, float]) -> torch.Tensor:
    """Logits over the vocabulary giving each named tag the stated probability, the rest spread evenly."""
    vocab = len(tokenizer)
    probs = torch.full((vocab,), (1.0 - sum(probabilities.values())) / (vocab - len(probabilities)))
    for tag, p in probabilities.items():
        probs[tokenizer.convert_tokens_to_ids(tag)] = p
    return probs.log().unsqueeze(0)


def _gated(gate: ToolCallGate, tokenizer, scores: torch.Tensor) -> set[str]:
    out = gate(torch.tensor([[0]]), scores.clone())
    return {tag for tag in (wire.CODE_OPEN, wire.TOOL_CALL_OPEN, wire.ANSWER_OPEN) if out[0, tokenizer.convert_tokens_to_ids(tag)] == float("-inf")}


def test_single_token_openers_decide_at_their_own_token(tokenizer) -> None:
    decisions = decision_tokens(tokenizer, (wire.CODE_OPEN, wire.TOOL_CALL_OPEN), (wire.ANSWER_OPEN, wire.THINK_OPEN))
    assert decisions == [((), tokenizer.convert_tokens_to_ids(wire.CODE_OPEN)), ((), tokenizer.convert_tokens_to_ids(wire.TOOL_CALL_OPEN))]


class _CharTokenizer:
    """A vocabulary that spells tags letter by letter, as some tokenizers split ``<code>``."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]


def test_multi_token_openers_decide_at_the_first_token_no_other_tag_shares() -> None:
    decisions = decision_tokens(_CharTokenizer(), ("<code>", "<tool_call>"), ("<answer>", "<think>"))
    # "<code>" parts from "<answer>"/"<think>" at "c"; "<tool_call>" shares "<t" with "<think>" and parts at "o".
    assert decisions == [((ord("<"),), ord("c")), ((ord("<"), ord("t")), ord("o"))]


@pytest.mark.parametrize(
    ("threshold", "p_code", "p_search", "gated"),
    [
        (0.0, 0.01, 0.01, set()),  # off: nothing changes
        (0.3, 0.2, 0.5, {wire.CODE_OPEN}),  # code below the threshold, search above
        (0.3, 0.4, 0.1, {wire.TOOL_CALL_OPEN}),
        (0.6, 0.5, 0.3, {wire.CODE_OPEN, wire.TOOL_CALL_OPEN}),
        (1.0, 0.99, 0.005, {wire.CODE_OPEN, wire.TOOL_CALL_OPEN}),  # 1: never a tool
    ],
)
def test_threshold_gates_tool_openers_below_it(tokenizer, threshold, p_code, p_search, gated) -> None:
    scores = _scores(tokenizer, {wire.CODE_OPEN: p_code, wire.TOOL_CALL_OPEN: p_search, wire.ANSWER_OPEN: 0.001})
    assert _gated(ToolCallGate(tokenizer, threshold=threshold), tokenizer, scores) == gated


def test_threshold_one_gates_every_opener_and_never_the_answer(tokenizer) -> None:
    scores = _scores(tokenizer, {wire.CODE_OPEN: 0.9, wire.TOOL_CALL_OPEN: 0.09, wire.ANSWER_OPEN: 0.001})
    assert _gated(ToolCallGate(tokenizer, threshold=1.0), tokenizer, scores) == {wire.CODE_OPEN, wire.TOOL_CALL_OPEN}


def test_threshold_outside_zero_one_is_refused(tokenizer) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ToolCallGate(tokenizer, threshold=1.5)


def test_a_remote_server_refuses_the_threshold_clearly() -> None:
    check_remote_support(0.0)  # no gate asked: nothing to refuse
    with pytest.raises(ToolGateUnsupported, match="OpenAI-compatible server"):
        check_remote_support(0.5)


class _PreferTools:
    """Makes the random tiny model want a tool: tool openers get the top logit."""

    def __init__(self, ids: list[int]):
        self.ids = ids

    def __call__(self, input_ids, scores):
        scores[:, self.ids] = scores.max(dim=-1, keepdim=True).values + 5.0
        return scores


def test_a_local_policy_gated_at_a_high_threshold_never_opens_a_tool(tiny_model_dir) -> None:
    from deepeyes.chat import Message
    from deepeyes.policies.hf import HFPolicy

    conversation = [Message("system", "You may use tools."), Message("user", "How many squares?")]
    results = {}
    for name, options in {"free": {}, "forced": {"tool_call_threshold": 1.0}, "threshold": {"tool_call_threshold": 0.999}}.items():
        policy = HFPolicy(tiny_model_dir, max_new_tokens=12, **options)
        ids = [policy.tokenizer.convert_tokens_to_ids(t) for t in (wire.CODE_OPEN, wire.TOOL_CALL_OPEN)]
        policy._logits_processors.insert(0, _PreferTools(ids))  # runs before the policy's own gate
        results[name] = policy.generate(conversation).text
    assert results["free"].startswith((wire.CODE_OPEN, wire.TOOL_CALL_OPEN))  # the model wants a tool...
    for name in ("forced", "threshold"):  # ...and the gate keeps it out
        assert wire.CODE_OPEN not in results[name] and wire.TOOL_CALL_OPEN not in results[name], results[name]
