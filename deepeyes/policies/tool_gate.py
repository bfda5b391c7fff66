"""The seed's logits gate ``tool_call_threshold``, applied while generating.

It acts on the token at which a turn commits to a tool call: the first token of a tool
opener (``<code>``, ``<tool_call>``) that no non-tool tag (``<answer>``, ``<think>``)
shares. With Qwen's vocabulary and the tiny model's, the openers are single tokens, so
that is the opener itself; in a vocabulary that spells ``<code>`` as ``<``, ``code``,
``>`` it is ``code`` after ``<``.

``tool_call_threshold`` (0..1): at each step, if the probability the model gives that
token is below the threshold, it gets probability 0 and the rest is renormalised; at 0
nothing changes and at 1 no tool is ever called. The higher, the less readily a tool is
called, as the seed describes. Probabilities are taken before temperature, so the
threshold means the same at every sampling temperature.

The seed's other switch, ``force_no_tool``, is not a logits gate: it switches every tool off
for one request and the model answers with the no-tool prompt
(:attr:`deepeyes.agent.AgentRequest.force_no_tool`), the same in infer, the demo and the service.

Only a policy that sees the logits can apply this: an OpenAI-compatible server cannot, and
:func:`check_remote_support` says so instead of silently ignoring the switch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from deepeyes import wire


class ToolGateUnsupported(ValueError):
    """The gate was asked of a policy that cannot apply it (a remote server)."""


def decision_tokens(tokenizer, openers: Sequence[str], others: Sequence[str]) -> list[tuple[tuple[int, ...], int]]:
    """For each opener, in order: (prefix ids, the id that commits to it after that prefix).

    Raises:
        ValueError: an opener's tokens are a prefix of another tag's (no token decides it).
    """
    other_ids = [tokenizer.encode(tag, add_special_tokens=False) for tag in others]
    decisions: list[tuple[tuple[int, ...], int]] = []
    for opener in openers:
        ids = tokenizer.encode(opener, add_special_tokens=False)
        for k, token in enumerate(ids):
            if not any(o[: k + 1] == ids[: k + 1] for o in other_ids):
                decisions.append((tuple(ids[:k]), token))
                break
        else:
            raise ValueError(f"{opener!r} tokenises as a prefix of another tag; no single token decides it")
    return decisions


class ToolCallGate(LogitsProcessor):
    """A ``transformers`` logits processor implementing ``tool_call_threshold``.

    Raises:
        ValueError: ``threshold`` outside [0, 1].
    """

    def __init__(self, tokenizer, threshold: float = 0.0):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"tool_call_threshold must be within [0, 1], got {threshold}")
        self.threshold = threshold
        self.decisions = decision_tokens(tokenizer, (wire.CODE_OPEN, wire.TOOL_CALL_OPEN), (wire.ANSWER_OPEN, wire.THINK_OPEN))

    @property
    def active(self) -> bool:
        return self.threshold > 0.0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """``scores``: (batch, vocab) logits of the next token; returns them with gated tokens at -inf."""
        if not self.active:
            return scores
        probabilities = torch.softmax(scores.float(), dim=-1)
        for prefix, token in self.decisions:
            k = len(prefix)
            if k:
                tail = input_ids[:, -k:]
                at_prefix = (tail == torch.tensor(prefix, device=input_ids.device)).all(dim=-1)
            else:
                at_prefix = torch.ones(scores.shape[0], dtype=torch.bool, device=scores.device)
            gated = at_prefix & (probabilities[:, token] < self.threshold)
            scores[gated, token] = float("-inf")
        return scores


def check_remote_support(threshold: float) -> None:
    """Refuse the logits gate for a remote (OpenAI-compatible) policy.

    Raises:
        ToolGateUnsupported: ``tool_call_threshold`` > 0 was asked of a server, whose logits we
            do not see.
    """
    if threshold > 0.0:
        raise ToolGateUnsupported(
            "tool_call_threshold needs the model's token probabilities and cannot be applied to an "
            "OpenAI-compatible server; use a local model (--model_path), or --force_no_tool / --disable_tools instead"
        )
