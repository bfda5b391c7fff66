"""The policy behind the service: one model shared by every request.

A local model is loaded once (:func:`deepeyes.model_args.build_policy`) and reached through
the RL engine's :class:`~deepeyes.policies.batching.BatchingPolicy`, so turns of concurrent
requests are generated in one batch. Sampling settings are per request and travel with
each call (``generate(messages, sampling)``); turns with equal settings batch together, and
the policy's own settings are never changed. An upstream OpenAI-compatible server
(``--api_base``) or a replayed script can stand in for the local model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from deepeyes.chat import Message
from deepeyes.model_args import build_policy
from deepeyes.policies.base import Generation, Policy, SamplingParams
from deepeyes.policies.batching import BatchingPolicy
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.serve.config import ServeConfig

logger = logging.getLogger(__name__)


class _ScriptOverModel:
    """Runs the model for each turn (real cost, batching, token counts) and replays the script's text."""

    def __init__(self, model: Policy, script: ScriptedPolicy) -> None:
        self.model = model
        self.script = script

    def generate(self, messages: list[Message], sampling: SamplingParams | None = None) -> Generation:
        generated = self.model.generate(messages, sampling)
        scripted = self.script.generate(messages, sampling)
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
    """The one policy of the service and the sampling settings of each request; safe to use from many threads."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._model = None  # the local HFPolicy, when there is one
        #: The BatchingPolicy of the local model (none for a script or an upstream), for metrics.
        self.batching: list[BatchingPolicy] = []
        script = ScriptedPolicy(load_script(config.script_path)) if config.script_path else None
        self.policy: Policy
        if script is not None and not config.script_generates:
            self.policy = script
            self.description = f"script {config.script_path}"
        elif config.model.api_base:
            self.policy = build_policy(config.model)
            self.description = f"upstream {config.model.label}"
        else:
            self._model = build_policy(config.model)
            batching = BatchingPolicy(self._model, config.max_batch, config.gather_ms / 1000)  # type: ignore[arg-type]  # an HFPolicy
            self.batching.append(batching)
            self.policy = _ScriptOverModel(batching, script) if script is not None else batching
            self.description = f"model {config.model.label}"
            if script is not None:
                self.description += f", text from script {config.script_path}"

    @property
    def tokenizer(self):
        """The local model's tokenizer, or None (an upstream or a script: prompts are measured in UTF-8 bytes)."""
        return getattr(self._model, "tokenizer", None)

    @property
    def max_pixels(self) -> int | None:
        """The local model's image size limit (pixels), or None (Qwen's own)."""
        return getattr(self._model, "max_pixels", None)

    def sampling(self, temperature: float | None, top_p: float | None, max_tokens: int | None) -> SamplingParams:
        """The settings of a request: the service's defaults where it names none; ``max_tokens`` capped at the service's."""
        defaults = self.config.model.sampling()
        return SamplingParams(
            temperature=defaults.temperature if temperature is None else float(temperature),
            top_p=defaults.top_p if top_p is None else float(top_p),
            max_new_tokens=min(max_tokens or defaults.max_new_tokens, defaults.max_new_tokens),
        )
