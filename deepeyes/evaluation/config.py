"""Settings of one evaluation run (``evaluation/run_eval.sh`` maps its variables onto these).

The model fields are :class:`deepeyes.model_args.ModelArguments`, the group infer, the demo
and the service take, so a model setting has one name and one meaning everywhere.
The fields are also the flags of ``python -m deepeyes.evaluation`` (derived by
``deepeyes.cli``), so each field's ``help`` is what ``--help`` prints. Relative paths are
resolved against the current working directory (docs/configuration.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deepeyes.model_args import ModelArguments
from deepeyes.paths import SAMPLE_DIR

DEFAULT_DATASETS = ["DeepEyesMini_Visual", "DeepEyesMini_Search"]
#: Model passes that can run beside the evaluation as baselines (deepeyes.evaluation.baselines).
BASELINE_RUNS = ("no_image", "no_tools")


@dataclass(frozen=True)
class EvalConfig(ModelArguments):
    """The model settings every front end shares (:class:`ModelArguments`: ``--model_path``,
    ``--api_base``, ``--temperature``, ...; declared there once) and the evaluation's own."""

    datasets: list[str] = field(
        default_factory=lambda: list(DEFAULT_DATASETS),
        metadata={"help": "dataset names, <name>.tsv under --lmudata (space- or comma-separated)"},
    )
    lmudata: str = field(default=str(SAMPLE_DIR / "eval"), metadata={"help": "folder holding the dataset TSVs (VLMEvalKit's LMUDATA)"})
    output_dir: str = field(
        default="outputs/eval",
        metadata={"help": "output folder (OUTPUT_REPORT): eval_results.json, trajectories/<dataset>.jsonl, eval_report.html/.pdf"},
    )
    batch_size: int = field(
        default=4, metadata={"help": "samples in flight per worker: one sample's tool call overlaps another's generation, "
                                     "and with one local copy the turns requested together are generated as one batch"}
    )
    num_workers: int = field(
        default=1,
        metadata={"help": "copies of the local model generating in parallel; with --api_base, requests in flight are batch_size x num_workers"},
    )
    use_tools: bool = field(
        default=True, metadata={"help": "run the agent loop with the tools (false, --no_use_tools: single turn, no tools, plain VQA)"}
    )
    tool_manager_config: str | None = field(
        default=None, metadata={"help": "tool manager YAML (default: local Redis + sandbox started on loopback)"}
    )
    judge_api_base: str | None = field(
        default=None, metadata={"help": "OpenAI-compatible endpoint of an optional LLM judge for free-text answers"}
    )
    judge_model: str = field(default="judge", metadata={"help": "model name requested from --judge_api_base"})
    reward_config: str | None = field(
        default=None, metadata={"help": "RewardConfig YAML (default: the built-in weights and tolerances)"}
    )
    max_samples: int | None = field(default=None, metadata={"help": "evaluate only the first N rows of each dataset (default: every row)"})
    max_turns: int = field(default=8, metadata={"help": "model turns per sample before giving up"})
    seed: int = field(
        default=0,
        metadata={"help": "seed of the random generators before each pass; with --temperature > 0 a local model repeats its "
                          "trajectories exactly only with batch_size 1 and num_workers 1 (batches form by timing)"},
    )
    repeats: int = field(
        default=1,
        metadata={"help": "run the evaluation K times with seeds seed, seed+1, ... (runs 2..K under OUTPUT_REPORT/repeats/) "
                          "and report the mean and spread of each accuracy; meant for --temperature > 0"},
    )
    circular: bool = field(
        default=False,
        metadata={"help": "CircularEval: also ask every multiple-choice row once per rotation of its options and report "
                          "circular_accuracy (right under every rotation) beside accuracy"},
    )
    baseline_runs: list[str] = field(
        default_factory=list,
        metadata={"help": "model baselines run beside the evaluation: no_image (the question alone), no_tools (one turn, "
                          "no tools); space- or comma-separated"},
    )
    overwrite: bool = field(
        default=False, metadata={"help": "discard the trajectories already in --output_dir instead of resuming from them"}
    )
    report: bool = field(
        default=True, metadata={"help": "write eval_report.html/.pdf (--no_report: results JSON and trajectories only)"}
    )
    show_progress: bool = field(default=True, metadata={"help": "progress bars (--no_show_progress: none)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        # Comma-separated names (the DATASETS variable of run_eval.sh) are split into the list.
        names = [name.strip() for entry in self.datasets for name in str(entry).split(",") if name.strip()]
        object.__setattr__(self, "datasets", names)
        if not self.datasets:
            raise ValueError("datasets must name at least one benchmark")
        for name, value in (("batch_size", self.batch_size), ("num_workers", self.num_workers), ("max_turns", self.max_turns)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        runs = [name.strip() for entry in self.baseline_runs for name in str(entry).split(",") if name.strip()]
        unknown = sorted(set(runs) - set(BASELINE_RUNS))
        if unknown:
            raise ValueError(f"baseline_runs: unknown {unknown}, expected some of {list(BASELINE_RUNS)}")
        object.__setattr__(self, "baseline_runs", list(dict.fromkeys(runs)))
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 (or unset for all rows), got {self.max_samples}")

    @property
    def output(self) -> Path:
        return Path(self.output_dir)

    def identity(self) -> dict[str, object]:
        """The settings that make two runs' trajectories comparable; resuming requires equality.

        The seed matters only when sampling, and ``top_p``, ``dtype`` and ``tool_call_threshold``
        only when changed from their defaults, so runs written before they existed still resume.
        """
        model = f"{self.api_base}#{self.served_model}" if self.api_base else str(Path(self.model_path).resolve())
        sampling: dict[str, object] = {"seed": self.seed} if self.temperature > 0 else {}
        defaults = ModelArguments()
        for name in ("top_p", "dtype", "tool_call_threshold"):
            if getattr(self, name) != getattr(defaults, name):
                sampling[name] = getattr(self, name)
        return {
            "model": model,
            "adapter_path": str(Path(self.adapter_path).resolve()) if self.adapter_path else None,
            "use_tools": self.use_tools,
            "max_turns": self.max_turns,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            **sampling,
        }
