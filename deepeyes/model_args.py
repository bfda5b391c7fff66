"""The model and tool settings every front end takes, and the one factory that builds from them.

LLaMA-Factory keeps one ``ModelArguments`` group shared by every command; here
:class:`ModelArguments` (which model, where, how it samples by default) and
:class:`ToolArguments` (which tools a run may use) are that pair for ``deepeyes.infer``, the
demo, the inference service, the evaluation runner and the VLMEvalKit adapter. Each field
has one spelling everywhere: on the command line (``--max_new_tokens``, through
:func:`deepeyes.cli.parse_cli`), in the environment (the field name upper-cased,
``MAX_NEW_TOKENS``, as ``evaluation/run_eval.sh`` and the VLMEvalKit runner read it) and in
Python. Earlier spellings stay accepted as flags (:data:`ALIASES`): ``--adapter``,
``--max_tokens``, ``--upstream_model``, ``--no_tools``.

:func:`build_policy` and :func:`build_tool_manager` are the one way from these settings to
a policy and a tool manager; what varies per request (sampling, disabled tools,
``force_no_tool``, cancel) then travels on :class:`deepeyes.agent.AgentRequest`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deepeyes.agent import AgentConfig
from deepeyes.cli import parse_cli
from deepeyes.paths import TINY_MODEL_DIR, TOOL_MANAGER_CONFIG
from deepeyes.policies.base import Policy, SamplingParams
from deepeyes.policies.tool_gate import check_remote_support
from deepeyes.tool_manager import ToolManager
from deepeyes.tool_specs import accepted_names, resolve

#: Earlier flag spellings still accepted (not listed in ``--help``); ``no:`` switches a boolean off.
ALIASES: dict[str, str] = {
    "--adapter": "adapter_path",
    "--max_tokens": "max_new_tokens",
    "--upstream_model": "served_model",
    "--no_tools": "no:use_tools",
}


@dataclass(frozen=True)
class ModelArguments:
    """Which model writes the turns, and how it samples unless a request says otherwise."""

    model_path: str = field(
        default=str(TINY_MODEL_DIR),
        metadata={"help": "Qwen2.5-VL directory or hub id (e.g. honglyhly/DeepEyesV2_7B_1031), fetched once into the hub cache"},
    )
    adapter_path: str | None = field(default=None, metadata={"help": "LoRA adapter directory or hub id applied on top of --model_path"})
    api_base: str | None = field(
        default=None,
        metadata={"help": "OpenAI-compatible endpoint that generates the turns instead, e.g. http://127.0.0.1:8000/v1 (vLLM serving DeepEyesV2)"},
    )
    served_model: str = field(default="deepeyes", metadata={"help": "model name requested from --api_base (the server's served model name)"})
    device: str = field(default="cpu", metadata={"help": "torch device of --model_path"})
    dtype: str = field(default="float32", metadata={"help": "torch dtype of --model_path"})
    temperature: float = field(default=0.0, metadata={"help": "default sampling temperature (0: greedy)"})
    top_p: float = field(default=1.0, metadata={"help": "default nucleus sampling mass (1: every token)"})
    max_new_tokens: int = field(default=512, metadata={"help": "default token limit of one model turn"})
    tool_call_threshold: float = field(
        default=0.0,
        metadata={"help": "0..1, local models only: a tool call is opened only when the model gives it at least this probability "
                          "(the seed's switch; the higher, the fewer calls)"},
    )

    def __post_init__(self) -> None:
        self.sampling()  # ValueError naming the field
        if not 0.0 <= self.tool_call_threshold <= 1.0:
            raise ValueError(f"tool_call_threshold must be in [0, 1], got {self.tool_call_threshold}")

    def sampling(self) -> SamplingParams:
        """The default sampling settings these arguments name."""
        return SamplingParams(self.temperature, self.top_p, self.max_new_tokens)

    @property
    def label(self) -> str:
        """A short description of the model for logs and pages."""
        if self.api_base:
            return f"{self.served_model} at {self.api_base}"
        return self.model_path + (f" + adapter {self.adapter_path}" if self.adapter_path else "")


@dataclass(frozen=True)
class ToolArguments:
    """Which tools a run may use and for how many turns."""

    tool_manager_config: str = field(default=str(TOOL_MANAGER_CONFIG), metadata={"help": "tool manager YAML (sandbox, search)"})
    use_tools: bool = field(default=True, metadata={"help": "false (--no_use_tools): no tool services at all; one turn, no tools (plain VQA)"})
    disable_tools: list[str] = field(
        default_factory=list,
        metadata={"help": f"tools the model may not use (of {', '.join(accepted_names())}; space- or comma-separated)"},
    )
    force_no_tool: bool = field(
        default=False,
        metadata={"help": "the seed's force_no_tool: every tool off, the model answers directly in one turn under the no-tool prompt"},
    )
    max_turns: int = field(default=8, metadata={"help": "stop after this many model turns"})

    def __post_init__(self) -> None:
        names = [name.strip() for entry in self.disable_tools for name in entry.split(",") if name.strip()]
        unknown = sorted(set(names) - set(accepted_names()))
        if unknown:
            raise ValueError(f"disable_tools: unknown tool(s) {unknown} (known: {', '.join(accepted_names())})")
        object.__setattr__(self, "disable_tools", resolve(names))
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {self.max_turns}")

    def agent_config(self, **options: Any) -> AgentConfig:
        """The loop's settings (``options``: further or overriding :class:`AgentConfig` fields, e.g. ``max_context_tokens``)."""
        return AgentConfig(**{"max_turns": self.max_turns, "use_tools": self.use_tools, **options})


#: The environment variable of each field: its name upper-cased.
ENV_NAMES: dict[str, str] = {f.name.upper(): f.name for group in (ModelArguments, ToolArguments) for f in dataclasses.fields(group)}


def parse_args(argv: Sequence[str] | None, *, prog: str, description: str) -> tuple[ModelArguments, ToolArguments]:
    """The two groups from a command line (with :data:`ALIASES`); exits 2 on a bad flag or value."""
    return parse_cli([ModelArguments, ToolArguments], argv, prog=prog, description=description, aliases=ALIASES)  # type: ignore[return-value]


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The fields set in the environment (:data:`ENV_NAMES`; unset or empty variables are skipped), typed.

    Read by the same parser as the command line, so ``USE_TOOLS=false`` or ``MAX_TURNS=3``
    mean what ``--use_tools false`` and ``--max_turns 3`` mean; a bad value exits 2 naming the flag.
    """
    environ = os.environ if environ is None else environ
    given = {name: environ[variable] for variable, name in ENV_NAMES.items() if environ.get(variable, "")}
    argv = [part for name, value in given.items() for part in (f"--{name}", value)]
    model, tools = parse_args(argv, prog="deepeyes (settings from the environment)", description="")
    return {name: getattr(model if hasattr(model, name) else tools, name) for name in given}


def arguments(settings: Mapping[str, Any]) -> tuple[ModelArguments, ToolArguments]:
    """The two groups from keyword settings (a Python caller's, or :func:`settings_from_env`'s).

    Raises:
        TypeError: a key that is no field of either group.
        ValueError: a value a group rejects.
    """
    model_fields = {f.name for f in dataclasses.fields(ModelArguments)}
    tool_fields = {f.name for f in dataclasses.fields(ToolArguments)}
    unknown = sorted(set(settings) - model_fields - tool_fields)
    if unknown:
        raise TypeError(f"unknown model or tool setting(s) {unknown}")
    return (
        ModelArguments(**{k: v for k, v in settings.items() if k in model_fields}),
        ToolArguments(**{k: v for k, v in settings.items() if k in tool_fields}),
    )


def build_policy(model: ModelArguments) -> Policy:
    """The policy these arguments name: a client of ``api_base``, else the local model (directory or hub id).

    Raises:
        ToolGateUnsupported: ``tool_call_threshold`` > 0 with ``api_base`` (a server's token
            probabilities are not visible here).
        FileNotFoundError: the model or adapter cannot be found or fetched.
    """
    if model.api_base:
        from deepeyes.policies.openai import OpenAIPolicy

        check_remote_support(model.tool_call_threshold)
        return OpenAIPolicy(
            model.api_base, model.served_model, temperature=model.temperature, top_p=model.top_p, max_new_tokens=model.max_new_tokens
        )
    from deepeyes.policies.hf import HFPolicy

    return HFPolicy(
        model.model_path,
        adapter_path=model.adapter_path,
        temperature=model.temperature,
        top_p=model.top_p,
        max_new_tokens=model.max_new_tokens,
        device=model.device,
        dtype=model.dtype,
        tool_call_threshold=model.tool_call_threshold,
    )


def build_tool_manager(tools: ToolArguments) -> ToolManager | None:
    """The tool manager of ``tool_manager_config`` (not started: it starts on the first call), or None without tools.

    ``disable_tools`` and ``force_no_tool`` are not applied here: they are per request
    (:class:`~deepeyes.agent.AgentRequest`), so one manager serves requests with different switches.
    """
    return ToolManager.from_config(tools.tool_manager_config) if tools.use_tools else None
