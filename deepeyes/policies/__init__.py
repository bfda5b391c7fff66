"""Policies: what turns a conversation into the model's next turn (HF model, OpenAI-compatible server, script)."""

from deepeyes.policies.base import Generation, Policy, SamplingParams

__all__ = ["Generation", "Policy", "SamplingParams"]
