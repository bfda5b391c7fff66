"""DeepEyes as a VLMEvalKit model: VLMEvalKit's own runner, our agent loop (tools on).

VLMEvalKit builds each benchmark's prompt and grades the predictions with its official
scripts; this class only answers. Every ``generate`` call runs one full DeepEyes
trajectory — think, call code / search / image search, observe, answer — through the
shared :class:`~deepeyes.agent.AgentLoop` and returns the final answer as the
prediction. Trajectories can be appended to a JSONL file (shared schema) for behaviour
analysis.

Importable only where ``vlmeval`` is installed: ``.venv-vlmeval``, created by
``bash evaluation/vlmeval/setup_env.sh`` (VLMEvalKit's omegaconf>=2.4 conflicts with
verl's hydra-core, DESIGN §2). ``evaluation/vlmeval/run_vlmeval.py`` registers the class
under the model name ``DeepEyes``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from pathlib import Path
from typing import Any

from vlmeval.vlm.base import BaseModel

from deepeyes.agent import AgentConfig, AgentLoop
from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.factory import build_policy, build_tool_manager
from deepeyes.paths import TINY_MODEL_DIR
from deepeyes.trajectory import write_jsonl

logger = logging.getLogger(__name__)

#: Environment variables read by :func:`settings_from_env` (the names run_eval.sh uses).
ENV_SETTINGS: dict[str, str] = {
    "MODEL_PATH": "model_path",
    "ADAPTER_PATH": "adapter_path",
    "API_BASE": "api_base",
    "SERVED_MODEL": "served_model",
    "USE_TOOLS": "use_tools",
    "TOOL_MANAGER_CONFIG": "tool_manager_config",
    "MAX_TURNS": "max_turns",
    "MAX_NEW_TOKENS": "max_new_tokens",
    "TEMPERATURE": "temperature",
    "DEVICE": "device",
    "TRAJECTORY_FILE": "trajectory_file",
}
_CONVERTERS = {
    "use_tools": lambda v: v.strip().lower() in ("1", "true", "yes", "on"),
    "max_turns": int,
    "max_new_tokens": int,
    "temperature": float,
}


def settings_from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Constructor keyword arguments from the environment (unset or empty variables are skipped)."""
    environ = dict(os.environ) if environ is None else environ
    settings = {}
    for variable, key in ENV_SETTINGS.items():
        value = environ.get(variable, "")
        if value:
            settings[key] = _CONVERTERS.get(key, str)(value)
    return settings


class DeepEyesVLM(BaseModel):
    """A VLMEvalKit model whose every answer is a DeepEyes agent trajectory."""

    INTERLEAVE = True  # take VLMEvalKit's interleaved text/image messages as they are
    is_api = False  # answered in-process, one sample at a time, by VLMEvalKit's runner

    def __init__(
        self,
        model_path: str | None = None,
        adapter_path: str | None = None,
        api_base: str | None = None,
        served_model: str = "deepeyes",
        use_tools: bool = True,
        tool_manager_config: str | None = None,
        max_turns: int = 8,
        max_new_tokens: int = 2048,
        temperature: float = 0.0,
        device: str = "cpu",
        trajectory_file: str | None = None,
    ):
        super().__init__()
        config = EvalConfig(
            model_path=model_path or str(TINY_MODEL_DIR),
            adapter_path=adapter_path,
            api_base=api_base,
            served_model=served_model,
            use_tools=use_tools,
            tool_manager_config=tool_manager_config,
            max_turns=max_turns,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            device=device,
        )
        self.policy = build_policy(config)
        self.tool_manager = build_tool_manager(config) if use_tools else None
        self.loop = AgentLoop(self.tool_manager, AgentConfig(max_turns=max_turns, use_tools=use_tools))
        self.trajectory_file = Path(trajectory_file) if trajectory_file else None
        self._write_lock = threading.Lock()
        atexit.register(self.close)

    def generate_inner(self, message: list[dict[str, str]], dataset: str | None = None) -> str:
        """One trajectory for VLMEvalKit's message (``[{type: text|image, value}]``); the answer text.

        The images (file paths written by VLMEvalKit) become ``image_1 … image_N`` in the
        sandbox and the texts, joined in order, the question.
        """
        images = [item["value"] for item in message if item["type"] == "image"]
        question = "\n".join(item["value"] for item in message if item["type"] == "text")
        trajectory = self.loop.run(self.policy, images, question, data_source=dataset)
        if self.trajectory_file is not None:
            with self._write_lock:
                write_jsonl(self.trajectory_file, [trajectory])
        logger.info("%s: %d turn(s), stop=%s, tools=%s", dataset, len(trajectory.turns), trajectory.stop_reason, trajectory.tool_calls)
        return trajectory.final_answer or ""

    def close(self) -> None:
        """Stop the Redis/sandbox the tool manager started (also run at interpreter exit)."""
        if self.tool_manager is not None:
            self.tool_manager.close()
