"""Settings of one evaluation run (``evaluation/run_eval.sh`` maps its variables onto these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deepeyes.paths import SAMPLE_DIR, TINY_MODEL_DIR

DEFAULT_DATASETS = ["DeepEyesMini_Visual", "DeepEyesMini_Search"]


@dataclass
class EvalConfig:
    #: Local Qwen2.5-VL directory (ignored when ``api_base`` is set).
    model_path: str = str(TINY_MODEL_DIR)
    adapter_path: str | None = None  # LoRA adapter applied on top of model_path
    api_base: str | None = None  # OpenAI-compatible endpoint, e.g. vLLM serving DeepEyesV2
    served_model: str = "deepeyes"  # model name requested from api_base
    datasets: list[str] = field(default_factory=lambda: list(DEFAULT_DATASETS))
    lmudata: str = str(SAMPLE_DIR / "eval")  # folder holding <dataset>.tsv
    output_dir: str = "outputs/eval"
    #: Samples in flight per worker: one sample's tool call overlaps another's generation.
    batch_size: int = 4
    #: Copies of the local model generating in parallel; with api_base, requests in flight are batch_size × num_workers.
    num_workers: int = 1
    use_tools: bool = True
    tool_manager_config: str | None = None  # None: local Redis + sandbox started on loopback
    judge_api_base: str | None = None  # optional LLM judge for free-text answers
    judge_model: str = "judge"
    reward_config: str | None = None  # RewardConfig YAML; None: the defaults
    max_samples: int | None = None  # first N rows per dataset; None: all
    max_turns: int = 8
    max_new_tokens: int = 512
    temperature: float = 0.0
    device: str = "cpu"
    #: Start from scratch instead of resuming the trajectories already in output_dir.
    overwrite: bool = False
    #: Write eval_report.html/.pdf (off: results and trajectories only, e.g. while iterating).
    report: bool = True
    show_progress: bool = True

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("datasets must name at least one benchmark")
        for name, value in (("batch_size", self.batch_size), ("num_workers", self.num_workers), ("max_turns", self.max_turns)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 (or unset for all rows), got {self.max_samples}")

    @property
    def output(self) -> Path:
        return Path(self.output_dir)

    def identity(self) -> dict[str, object]:
        """The settings that make two runs' trajectories comparable; resuming requires equality."""
        model = f"{self.api_base}#{self.served_model}" if self.api_base else str(Path(self.model_path).resolve())
        return {
            "model": model,
            "adapter_path": str(Path(self.adapter_path).resolve()) if self.adapter_path else None,
            "use_tools": self.use_tools,
            "max_turns": self.max_turns,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
        }
