"""The policy behind the service: one model shared by every request.

A local model is loaded once and reached through the RL engine's
:class:`~deepeyes.policies.batching.BatchingPolicy`, so turns of concurrent requests are
generated in one batch. Sampling settings are per request (temperature, token limit);
turns with equal settings batch together, and all batches take turns on the one model.
An upstream OpenAI-compatible server (``--api_base``) or a replayed script can stand in
for the local model.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deepeyes.chat import Message
from deepeyes.policies.base import Generation, Policy
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.serve.config import ServeConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    """Per-request generation settings (a request's ``temperature`` and ``max_tokens``)."""

    temperature: float
    max_tokens: int


class _SharedModel:
    """One :class:`~deepeyes.policies.hf.HFPolicy`; a batch runs with its settings, one batch at a time."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self._lock = threading.Lock()

    def generate_batch(self, conversations: list[list[Message]], sampling: Sampling) -> list[Generation]:
        with self._lock:
            config = self.policy.config
            saved = (config.temperature, config.max_new_tokens)
            config.temperature, config.max_new_tokens = sampling.temperature, sampling.max_tokens
            try:
                return self.policy.generate_batch(conversations)
            finally:
                config.temperature, config.max_new_tokens = saved


class _SettingsView:
    """The shared model seen with fixed sampling settings (what one BatchingPolicy drives)."""

    def __init__(self, model: _SharedModel, sampling: Sampling) -> None:
        self.model = model
        self.sampling = sampling

    def generate_batch(self, conversations: list[list[Message]]) -> list[Generation]:
        return self.model.generate_batch(conversations, self.sampling)


class _ScriptOverModel:
    """Runs the model for each turn (real cost, batching, token counts) and replays the script's text."""

    def __init__(self, model: Policy, script: ScriptedPolicy) -> None:
        self.model = model
        self.script = script

    def generate(self, messages: list[Message]) -> Generation:
        generated = self.model.generate(messages)
        scripted = self.script.generate(messages)
        return Generation(scripted.text, generated.prompt_tokens, generated.completion_tokens)


def load_script(path: str | Path) -> list[str] | dict[str, list[str]]:
    """A script file: a JSON list of assistant turns, or an object mapping a question to its turns."""
    script = json.loads(Path(path).read_text(encoding="utf-8"))
    valid_list = isinstance(script, list) and all(isinstance(turn, str) for turn in script)
    valid_map = isinstance(script, dict) and all(
        isinstance(turns, list) and all(isinstance(turn, str) for turn in turns) for turns in script.values()
    )
    if not (valid_list or valid_map):
        raise ValueError(f"{path}: a script is a list of strings or an object of lists of strings")
    return script


class Backend:
    """Hands out the policy for a request's sampling settings; safe to use from many threads."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._policies: dict[Sampling, Policy] = {}
        self._model: _SharedModel | None = None
        self.batching: list = []  # the BatchingPolicy objects, for metrics
        self._script = ScriptedPolicy(load_script(config.script_path)) if config.script_path else None
        self._make: Callable[[Sampling], Policy]
        if config.script_path and not config.script_generates:
            self._make = lambda _sampling: self._script  # type: ignore[return-value,assignment]
            self.description = f"script {config.script_path}"
        elif config.api_base:
            self._make = self._upstream
            self.description = f"upstream {config.api_base} ({config.upstream_model})"
        else:
            from deepeyes.policies.hf import HFPolicy

            hf = HFPolicy(config.model_path, adapter_path=config.adapter, device=config.device, dtype=config.dtype)
            self._model = _SharedModel(hf)
            self._make = self._batched
            self.description = f"model {config.model_path}" + (f" + adapter {config.adapter}" if config.adapter else "")
            if config.script_generates:
                self.description += f", text from script {config.script_path}"

    def _upstream(self, sampling: Sampling) -> Policy:
        from deepeyes.policies.openai import OpenAIPolicy

        return OpenAIPolicy(self.config.api_base, self.config.upstream_model, temperature=sampling.temperature, max_tokens=sampling.max_tokens)

    def _batched(self, sampling: Sampling) -> Policy:
        from deepeyes.policies.batching import BatchingPolicy

        assert self._model is not None
        batching = BatchingPolicy(_SettingsView(self._model, sampling), self.config.max_batch, self.config.gather_ms / 1000)  # type: ignore[arg-type]
        self.batching.append(batching)
        if self._script is not None:
            return _ScriptOverModel(batching, self._script)
        return batching

    @property
    def tokenizer(self):
        """The local model's tokenizer, or None (an upstream or a script: prompts are measured in UTF-8 bytes)."""
        return self._model.policy.tokenizer if self._model is not None else None

    @property
    def max_pixels(self) -> int | None:
        """The local model's image size limit (pixels), or None (Qwen's own)."""
        return self._model.policy.max_pixels if self._model is not None else None

    def policy(self, sampling: Sampling) -> Policy:
        with self._lock:
            policy = self._policies.get(sampling)
            if policy is None:
                policy = self._policies[sampling] = self._make(sampling)
            return policy

    def sampling(self, temperature: float | None, max_tokens: int | None) -> Sampling:
        """The settings of a request: the service's defaults where it names none; ``max_tokens`` capped at the service's."""
        return Sampling(
            temperature=self.config.temperature if temperature is None else float(temperature),
            max_tokens=min(max_tokens or self.config.max_tokens, self.config.max_tokens),
        )
