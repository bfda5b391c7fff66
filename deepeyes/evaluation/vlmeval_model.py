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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vlmeval.vlm.base import BaseModel

from deepeyes import model_args
from deepeyes.agent import AgentLoop, AgentRequest
from deepeyes.trajectory import write_jsonl

logger = logging.getLogger(__name__)

#: Environment variables read by :func:`settings_from_env`: every model and tool field by its
#: upper-cased name (:data:`deepeyes.model_args.ENV_NAMES`, the names run_eval.sh uses), and
#: where to append the trajectories.
ENV_SETTINGS: dict[str, str] = {**model_args.ENV_NAMES, "TRAJECTORY_FILE": "trajectory_file"}
#: VLMEvalKit's benchmarks want longer answers than one agent turn of the other front ends.
DEFAULT_MAX_NEW_TOKENS = 2048


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Constructor keyword arguments from the environment (unset or empty variables are skipped), typed as on the command line."""
    environ = os.environ if environ is None else environ
    settings = model_args.settings_from_env(environ)
    if environ.get("TRAJECTORY_FILE", ""):
        settings["trajectory_file"] = environ["TRAJECTORY_FILE"]
    return settings


class DeepEyesVLM(BaseModel):
    """A VLMEvalKit model whose every answer is a DeepEyes agent trajectory.

    Keyword arguments are the fields of :class:`~deepeyes.model_args.ModelArguments` and
    :class:`~deepeyes.model_args.ToolArguments` (``model_path``, ``api_base``, ``use_tools``,
    ``max_turns`` …), the same names as every other front end's flags; ``trajectory_file``
    appends each trajectory there.
    """

    INTERLEAVE = True  # take VLMEvalKit's interleaved text/image messages as they are
    is_api = False  # answered in-process, one sample at a time, by VLMEvalKit's runner

    def __init__(self, trajectory_file: str | None = None, **settings: Any):
        super().__init__()
        self.model, self.tools = model_args.arguments({"max_new_tokens": DEFAULT_MAX_NEW_TOKENS, **settings})
        self.policy = model_args.build_policy(self.model)
        self.tool_manager = model_args.build_tool_manager(self.tools)
        self.loop = AgentLoop(self.tool_manager, self.tools.agent_config())
        self.trajectory_file = Path(trajectory_file) if trajectory_file else None
        self._write_lock = threading.Lock()
        atexit.register(self.close)

    def generate_inner(self, message: list[dict[str, str]], dataset: str | None = None) -> str:
        """One trajectory for VLMEvalKit's message (``[{type: text|image, value}]``); the answer text.

        The images (file paths written by VLMEvalKit) become ``image_1 … image_N`` in the
        sandbox and the texts, joined in order, the question.
        """
        request = AgentRequest(
            question="\n".join(item["value"] for item in message if item["type"] == "text"),
            images=[item["value"] for item in message if item["type"] == "image"],
            data_source=dataset,
            disabled_tools=self.tools.disable_tools,
            force_no_tool=self.tools.force_no_tool,
            sampling=self.model.sampling(),
        )
        trajectory = self.loop.rollout(self.policy, request).trajectory
        if self.trajectory_file is not None:
            with self._write_lock:
                write_jsonl(self.trajectory_file, [trajectory])
        logger.info("%s: %d turn(s), stop=%s, tools=%s", dataset, len(trajectory.turns), trajectory.stop_reason, trajectory.tool_calls)
        return trajectory.final_answer or ""

    def close(self) -> None:
        """Stop the Redis/sandbox the tool manager started (also run at interpreter exit)."""
        if self.tool_manager is not None:
            self.tool_manager.close()
