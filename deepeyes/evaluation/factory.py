"""Build what an evaluation runs with: the policy (``num_workers`` copies) and the tool manager.

Shared by the evaluation runner and the VLMEvalKit model class, so that both read the
same settings the same way; the policy itself comes from the one factory every front end
uses (:func:`deepeyes.model_args.build_policy`), fed the evaluation's model fields
(:class:`~deepeyes.evaluation.config.EvalConfig` extends :class:`~deepeyes.model_args.ModelArguments`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue

from deepeyes.chat import Message
from deepeyes.evaluation.config import EvalConfig
from deepeyes.model_args import ModelArguments
from deepeyes.model_args import build_policy as build_model_policy
from deepeyes.paths import TOOL_MANAGER_CONFIG
from deepeyes.policies.base import Generation, Policy, SamplingParams
from deepeyes.policies.batching import BatchingPolicy
from deepeyes.tool_manager import ToolManager

logger = logging.getLogger(__name__)


class PolicyPool:
    """Lends each generation a policy no other thread is using, and takes it back afterwards.

    Parallel generation with local models needs several model copies; the pool also
    keeps thread-unsafe parts of a policy (its tokenizer) to one thread at a time.
    """

    def __init__(self, policies: list[Policy]):
        if not policies:
            raise ValueError("a policy pool needs at least one policy")
        self._free: queue.Queue[Policy] = queue.Queue()
        for policy in policies:
            self._free.put(policy)
        self.size = len(policies)

    def generate(self, messages: list[Message], sampling: SamplingParams | None = None) -> Generation:
        policy = self._free.get()
        try:
            return policy.generate(messages, sampling)
        finally:
            self._free.put(policy)


def model_arguments(config: EvalConfig) -> ModelArguments:
    """The shared :class:`ModelArguments` part of the evaluation's settings (an ``EvalConfig`` is one, plus its own fields)."""
    return ModelArguments(**{f.name: getattr(config, f.name) for f in dataclasses.fields(ModelArguments)})


def build_policy(config: EvalConfig) -> Policy:
    """The configured model: an OpenAI-compatible endpoint, or local copies.

    An endpoint client is thread-safe and shared by every sample in flight. One local copy
    (``num_workers`` 1) answers the turns of the ``batch_size`` samples in flight that are
    requested together with one batched ``generate`` (:class:`BatchingPolicy`): on the tiny
    model on 2 cores, 12 held-out prompts took 2.1 s batched against 3.8 s one by one, with
    the same greedy text. Several copies sit in a :class:`PolicyPool`: a copy is used by one
    thread at a time, because a model generates one batch at a time and HF's fast tokenizer
    raises "Already borrowed" when two threads encode with it at once.
    """
    model = model_arguments(config)
    if model.api_base:
        return build_model_policy(model)
    from deepeyes.hub import resolve as hub_resolve

    if config.device == "cpu" and config.num_workers > 1:
        import torch

        # Each copy gets its share of the cores instead of all of them fighting over every core.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // config.num_workers))
    # A hub id is fetched once here, not once per copy.
    model = dataclasses.replace(
        model,
        model_path=str(hub_resolve(model.model_path, "model", what="MODEL_PATH")),
        adapter_path=str(hub_resolve(model.adapter_path, "model", what="ADAPTER_PATH")) if model.adapter_path else None,
    )
    logger.info("loading %d copy/copies of %s", config.num_workers, model.model_path)
    copies = [build_model_policy(model) for _ in range(config.num_workers)]
    if len(copies) == 1 and config.batch_size > 1:
        return BatchingPolicy(copies[0], max_batch=config.batch_size, keep_turns=False)  # type: ignore[arg-type]  # an HFPolicy
    return PolicyPool(copies)


def build_tool_manager(config: EvalConfig) -> ToolManager:
    """From ``tool_manager_config``, else the repo's default file, else local services on loopback.

    Not started here: the manager starts Redis/sandbox on the first valid tool call, so a
    model that never calls a tool costs no service start-up. Close it when done.
    """
    path = config.tool_manager_config or (str(TOOL_MANAGER_CONFIG) if TOOL_MANAGER_CONFIG.is_file() else None)
    return ToolManager.from_config(path) if path else ToolManager()
