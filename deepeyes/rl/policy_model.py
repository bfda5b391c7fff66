"""The trainable policy: base model, the SFT adapter merged in, and a fresh LoRA for RL.

Merging the cold-start adapter first makes (base + SFT) the starting policy *and* the KL
reference: with LoRA, switching the adapter off gives the reference for free, without a
second copy of the weights. Without LoRA (``use_peft: false``) the language model is
trained in full and a frozen copy serves as the reference.
"""

from __future__ import annotations

import copy
import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepeyes.policies.hf import forbid_structural_tokens
from deepeyes.rl.config import ModelConfig

logger = logging.getLogger(__name__)

#: Only language-model projections get LoRA: the vision tower stays as SFT left it.
_LANGUAGE_MODEL_SCOPE = r".*language_model.*\.({names})$"


@dataclass
class PolicyModel:
    model: Any
    processor: Any
    #: A frozen copy used as the KL reference when training without LoRA.
    reference: Any | None = None

    def reference_context(self) -> AbstractContextManager:
        """Inside this context ``self.model`` computes the reference policy (LoRA off)."""
        if self.reference is None and hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()
        return nullcontext()

    def reference_model(self) -> Any:
        return self.reference if self.reference is not None else self.model

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def save(self, directory: Path) -> None:
        """Write the trainable weights: the LoRA adapter, or the full model."""
        self.model.save_pretrained(directory)
        self.processor.save_pretrained(directory)


def _lora_config(config: ModelConfig):
    from peft import LoraConfig

    names = "|".join(config.lora_target_modules)
    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=_LANGUAGE_MODEL_SCOPE.format(names=names),
        bias="none",
    )


def load_base_with_sft(base_model: str | Path, sft_lora_path: str | Path | None, dtype: str = "float32") -> tuple[Any, Any]:
    """Base model with the SFT adapter merged into its weights (when one is given), and its processor.

    Both may be local directories or hub ids (:func:`deepeyes.hub.resolve`).

    Raises:
        FileNotFoundError: a directory is missing (or a hub id cannot be fetched), or the
            adapter has no ``adapter_config.json``.
    """
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from deepeyes.hub import resolve as hub_resolve

    # Local directories, or hub ids fetched once into the hub cache (HubResolutionError is a FileNotFoundError).
    base_model = hub_resolve(base_model, "model", what="model.base_model")
    if not base_model.is_dir():
        raise FileNotFoundError(f"model directory not found: {base_model}")
    processor = AutoProcessor.from_pretrained(base_model)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(base_model, dtype=getattr(torch, dtype))
    if sft_lora_path:
        from peft import PeftModel

        sft_lora_path = hub_resolve(sft_lora_path, "model", what="model.sft_lora_path")
        if not (sft_lora_path / "adapter_config.json").is_file():
            raise FileNotFoundError(f"no adapter_config.json in SFT adapter directory {sft_lora_path}")
        model = PeftModel.from_pretrained(model, str(sft_lora_path)).merge_and_unload()
        if hasattr(model, "peft_config"):  # merged: the RL LoRA must be the only adapter
            del model.peft_config
        logger.info("merged SFT adapter %s into %s", sft_lora_path, base_model)
    return model, processor


def load_policy(config: ModelConfig, base_model: Path, sft_lora_path: Path | None, resume_adapter: Path | None = None) -> PolicyModel:
    """The policy to train; ``resume_adapter`` continues from a saved RL adapter or full model."""
    model, processor = load_base_with_sft(base_model, sft_lora_path, config.dtype)
    model.to(config.device)
    forbid_structural_tokens(model, processor)
    if not config.use_peft:
        # The KL reference is base + SFT, also when resuming: a copy of the resumed weights
        # would make the KL term measure drift since the checkpoint, not since SFT.
        reference = copy.deepcopy(model).eval().requires_grad_(False)
        if resume_adapter is not None:
            model, _ = load_base_with_sft(resume_adapter, None, config.dtype)
            model.to(config.device)
            forbid_structural_tokens(model, processor)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_("visual" not in name)
        return PolicyModel(model=model, processor=processor, reference=reference)
    from peft import PeftModel, get_peft_model

    if resume_adapter is not None:
        model = PeftModel.from_pretrained(model, str(resume_adapter), is_trainable=True)
    else:
        model = get_peft_model(model, _lora_config(config))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("policy: %s + LoRA r=%d (%d trainable parameters)", base_model, config.lora_rank, trainable)
    return PolicyModel(model=model, processor=processor)
