"""The RL configuration: the seed's schema plus the engine, algorithm and rollout settings.

One YAML file drives both engines (the single-machine ``local`` engine and verl's own
trainer on a cluster), so that moving an experiment from a laptop to a cluster changes
``trainer.engine`` and the sizes, not the file's shape. Loading is strict: a misspelt key
fails at start-up naming the key (``deepeyes.config.from_dict``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from deepeyes.config import ConfigError, from_dict
from deepeyes.hub import looks_like_repo_id
from deepeyes.paths import SAMPLE_DIR, TINY_MODEL_DIR, resolve_path
from deepeyes.videos import DEFAULT_FPS, DEFAULT_MAX_FRAMES, VideoSampling

logger = logging.getLogger(__name__)


class RLSetupError(RuntimeError):
    """The run cannot start as configured (message says what to change); the CLI prints it without a traceback."""


@dataclass(frozen=True)
class ModelConfig:
    base_model: str = str(TINY_MODEL_DIR)
    #: LoRA adapter from the cold-start SFT stage; merged into the base before RL. null: none.
    sft_lora_path: str | None = None
    #: False: a missing ``sft_lora_path`` is logged and RL starts from the base model.
    sft_lora_required: bool = True
    #: True: train a fresh LoRA on top of (base + SFT); False: train every language-model weight.
    use_peft: bool = True
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    #: Module names LoRA wraps; only the language model's are matched (the vision tower stays frozen).
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.lora_rank < 1:
            raise ValueError("lora_rank must be >= 1")


@dataclass(frozen=True)
class DataConfig:
    rl_data_path: str = str(SAMPLE_DIR / "rl" / "train.parquet")
    #: Prompts per training step (each is rolled out ``rollout.n`` times).
    batch_size: int = 2
    #: Longer conversations get no loss past this many tokens.
    max_seq_length: int = 4096
    shuffle: bool = True
    seed: int = 0
    #: Where relative image paths of the parquet are resolved, by both engines (a missing image stops
    #: either, naming the file and row); null: the parquet's folder, then its parent.
    image_root: str | None = None
    #: Prompts longer than this many tokens (system prompt, question, and image tokens at the base
    #: processor's max_pixels) are dropped before training, with a count in the log; both engines
    #: (verl's launch copies only the kept rows; verl's own filter then applies ``verl.max_prompt_length``).
    max_prompt_length: int = 4096
    #: How frames are sampled from a row's videos when its ``videos`` entries do not say
    #: (an entry's own ``fps`` / ``max_frames`` / ``max_pixels`` win): frames per second of
    #: video, at most this many frames, and the area limit of one frame (null: the processor's).
    video_fps: float = DEFAULT_FPS
    video_max_frames: int = DEFAULT_MAX_FRAMES
    video_max_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_seq_length < 16 or self.max_prompt_length < 1:
            raise ValueError("data.batch_size and data.max_prompt_length must be >= 1 and data.max_seq_length >= 16")
        try:
            self.video_sampling()
        except ValueError as exc:
            raise ValueError(f"data.video_fps / video_max_frames / video_max_pixels: {exc}") from exc

    def video_sampling(self) -> VideoSampling:
        """The default sampling of a row's videos (``data.video_*``)."""
        return VideoSampling(fps=self.video_fps, max_frames=self.video_max_frames, max_pixels=self.video_max_pixels)


@dataclass(frozen=True)
class ToolConfig:
    """Where the tools live. Empty ports / null Redis port: started on loopback for the run."""

    code_sandbox_ports: list[int] = field(default_factory=list)
    redis_host: str = "127.0.0.1"
    redis_port: int | None = None
    search_cache_path: str | None = None
    text_search_api_type: str = "local"
    #: A ``tool_manager_config.yaml`` to start from; the keys above override it.
    tool_manager_config: str | None = None


@dataclass(frozen=True)
class EvaluationConfig:
    """The reward server. Empty ``server_url``: one is started on loopback with these weights."""

    server_url: str = ""
    #: (task completion, tool efficiency, result accuracy).
    reward_weights: list[float] = field(default_factory=lambda: [0.5, 0.3, 0.2])
    #: Other reward settings (penalties, tolerances) for a server started here; null: defaults.
    reward_config: str | None = None

    def __post_init__(self) -> None:
        if len(self.reward_weights) != 3:
            raise ValueError("evaluation.reward_weights needs 3 numbers (task completion, tool efficiency, accuracy)")


@dataclass(frozen=True)
class TrainingConfig:
    learning_rate: float = 1e-6
    #: Passes over the RL data, used when ``trainer.total_steps`` is null.
    num_train_epochs: int = 1
    ppo_clip_ratio: float = 0.2
    #: Trajectories per forward/backward pass (micro-batch).
    batch_size: int = 4
    #: Micro-batches per optimizer step.
    gradient_accumulation_steps: int = 1
    #: Passes over one step's trajectories.
    ppo_epochs: int = 1
    #: Weight of the KL(policy ‖ reference) loss; the reference is base + SFT (LoRA switched off). 0: off.
    kl_coef: float = 0.001
    kl_type: Literal["kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3"] = "low_var_kl"
    loss_agg_mode: Literal["token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean"] = "token-mean"
    #: GRPO: divide the group-centred reward by the group's std (False: Dr.GRPO).
    norm_adv_by_std: bool = True
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    #: PPO only: the value head's loss weight, its clip range, and GAE's gamma / lambda.
    value_loss_coef: float = 0.5
    value_clip_range: float = 0.5
    gamma: float = 1.0
    lam: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.batch_size < 1 or self.gradient_accumulation_steps < 1 or self.ppo_epochs < 1:
            raise ValueError("training: learning_rate must be > 0; batch_size, gradient_accumulation_steps, ppo_epochs >= 1")
        if not 0 < self.ppo_clip_ratio < 1:
            raise ValueError("training.ppo_clip_ratio must be in (0, 1)")


@dataclass(frozen=True)
class OutputConfig:
    dir: str = "outputs/rl"
    #: Checkpoint every N steps (and always after the last step). 0: only at the end.
    save_steps: int = 0
    #: Keep the newest N checkpoints. 0: keep all.
    save_total_limit: int = 2
    #: Write every rollout to ``trajectories.jsonl``.
    log_trajectories: bool = True


@dataclass(frozen=True)
class TrainerConfig:
    engine: Literal["local", "verl"] = "local"
    #: Number of steps to run (overrides ``training.num_train_epochs``); null: that many passes over the data.
    total_steps: int | None = 4
    #: Score a fixed batch (the first ``eval_prompts`` prompts) every N steps. 0: off.
    eval_steps: int = 0
    eval_prompts: int = 4
    #: Where that batch comes from: an RL parquet of held-out prompts (e.g. ``rl/val.parquet``,
    #: the learning curve the quick start plots); null: the training prompts (held-in).
    eval_data_path: str | None = None
    #: Samples per held-in prompt.
    eval_n: int = 2
    #: torch threads on CPU; null: torch's default.
    num_threads: int | None = None
    #: Tool-use collapse alarm (the behaviour report's, deepeyes.analysis.collapse): warn when
    #: tool calls per trajectory stay below this fraction of the first step's value ...
    collapse_fraction: float = 0.5
    #: ... for this many consecutive steps.
    collapse_patience: int = 3
    #: verl's tracking backends (``verl.utils.tracking.Tracking``: console, tensorboard, wandb, mlflow,
    #: swanlab, file, ...), the same on both engines; ``metrics.jsonl`` is written either way.
    loggers: list[str] = field(default_factory=lambda: ["console", "tensorboard"])
    #: The run's names in the trackers (verl's ``trainer.project_name`` / ``trainer.experiment_name``).
    project_name: str = "deepeyes"
    experiment_name: str = "deepeyes_rl"


@dataclass(frozen=True)
class RolloutConfig:
    #: Trajectories per prompt (the GRPO group size).
    n: int = 4
    max_turns: int = 3
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    max_context_tokens: int = 4096
    #: Trajectories in flight at once (tool calls overlap other trajectories' generation).
    concurrency: int = 4

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_turns < 1 or self.max_new_tokens < 1:
            raise ValueError("rollout.n, rollout.max_turns and rollout.max_new_tokens must be >= 1")


#: What a group's spread is measured on: a key of the reward's result (the reward server's
#: answer in the local engine; ``reward_extra_info`` in verl, which holds the same keys
#: because ``verl_reward.compute_score`` returns them). ``score`` is the reward GRPO normalises.
FilterMetric = Literal["score", "accuracy", "format", "tool_efficiency", "task_completion"]


@dataclass(frozen=True)
class FilterGroupsConfig:
    """DAPO's dynamic sampling (Yu et al. 2025, arXiv:2503.14476, §3.2), under verl's keys.

    A GRPO group whose ``rollout.n`` rewards are all equal has advantage 0 for every sample
    (reward minus the group mean), so it adds no policy gradient, only noise in the batch
    size. With ``enable`` such groups are dropped and more prompts are rolled out until
    ``data.batch_size`` groups with signal are kept. The names are verl's
    ``algorithm.filter_groups`` (``verl/trainer/config/algorithm.py``: ``FilterGroupsConfig``);
    ms-swift calls the same switch ``dynamic_sample``.
    """

    enable: bool = field(
        default=False,
        metadata={
            "help": "drop groups whose metric is equal for all rollout.n samples and refill the batch. Meant for grpo; "
            "with ppo it filters too (verl allows it) although the value baseline gives such groups a signal"
        },
    )
    metric: FilterMetric = field(
        default="score", metadata={"help": "reward key whose spread decides: score (the GRPO reward), accuracy, format, tool_efficiency, task_completion"}
    )
    max_num_gen_batches: int = field(
        default=10,
        metadata={
            "help": "generation rounds per step at most (the first included); at the cap the step trains on the groups kept so far. "
            "verl's 0 (no limit) is refused: on data where every group is constant the step would never end"
        },
    )

    def __post_init__(self) -> None:
        if self.max_num_gen_batches < 1:
            raise ValueError(f"algorithm.filter_groups.max_num_gen_batches must be >= 1, got {self.max_num_gen_batches}")


@dataclass(frozen=True)
class AlgorithmConfig:
    """The RL algorithm and how its batch is sampled (verl's ``algorithm`` section).

    ``algorithm: grpo`` in a file or ``--set algorithm=ppo`` is short for ``algorithm.name``.
    """

    name: Literal["grpo", "ppo"] = field(
        default="grpo", metadata={"help": "grpo: group-normalised outcome (verl adv_estimator=grpo); ppo: GAE over a value head (adv_estimator=gae + critic)"}
    )
    filter_groups: FilterGroupsConfig = field(default_factory=FilterGroupsConfig)


@dataclass(frozen=True)
class VerlConfig:
    """Cluster settings used only by ``trainer.engine: verl``."""

    nnodes: int = 1
    n_gpus_per_node: int = 8
    #: ``hf``: transformers on CPU (deepeyes.rl.verl_cpu), for verl runs without an accelerator.
    rollout_backend: Literal["vllm", "sglang", "hf"] = "vllm"
    tensor_model_parallel_size: int = 1
    gpu_memory_utilization: float = 0.6
    max_prompt_length: int = 4096
    max_response_length: int = 8192
    agent_workers: int = 8
    #: Extra Hydra overrides appended verbatim (they win over ours).
    extra_overrides: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RLConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tool: ToolConfig = field(default_factory=ToolConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    verl: VerlConfig = field(default_factory=VerlConfig)

    def __post_init__(self) -> None:
        if self.algorithm.name == "grpo":
            # GRPO's baseline is the group mean: one sample per prompt has no baseline (every
            # advantage is 0), and greedy decoding gives a group without variance.
            if self.rollout.n < 2:
                raise ValueError(f"rollout.n must be >= 2 for GRPO (the group is the baseline), got {self.rollout.n}")
            if self.rollout.temperature <= 0:
                raise ValueError(f"rollout.temperature must be > 0 for GRPO (greedy groups have no variance), got {self.rollout.temperature}")
        if self.rollout.temperature < 0:
            raise ValueError(f"rollout.temperature must be >= 0, got {self.rollout.temperature}")

    def full_sft_checkpoint(self) -> Path | None:
        """``model.sft_lora_path`` when cold start wrote a whole model there (full fine-tuning,
        the tiny default: ``config.json``, no ``adapter_config.json``), else None."""
        path = self.locate(self.model.sft_lora_path)
        if path is None or (path / "adapter_config.json").is_file() or not (path / "config.json").is_file():
            return None
        return path

    def initial_model(self) -> tuple[Path, Path | None]:
        """The checkpoint RL starts from and the SFT adapter to merge into it (or None).

        Cold start's output at ``model.sft_lora_path`` is either a LoRA adapter, merged into
        ``model.base_model``, or a fully fine-tuned checkpoint, which then replaces the base.
        """
        full = self.full_sft_checkpoint()
        if full is not None:
            logger.info("model.sft_lora_path %s holds a fully fine-tuned model: RL starts from it", full)
            return full, None
        return self.locate(self.model.base_model), self.sft_adapter()  # type: ignore[return-value]

    def sft_adapter(self) -> Path | None:
        """The SFT adapter to merge, or None (none configured, or optional and not there).

        A required adapter may be a hub id (fetched into the hub cache); an optional one
        (``sft_lora_required: false``) is looked for locally only, so a run before cold start
        never reaches for the network.
        """
        path = self.locate(self.model.sft_lora_path)
        if path is None or (path / "adapter_config.json").is_file():
            return path
        if self.model.sft_lora_required and not path.is_absolute():  # a hub id (locate keeps those as typed)
            from deepeyes.hub import resolve as hub_resolve

            path = hub_resolve(path, "model", what="model.sft_lora_path")
            if (path / "adapter_config.json").is_file():
                return path
        if self.model.sft_lora_required:
            raise ConfigError(f"model.sft_lora_path: no adapter_config.json in {path} (run cold_start/run_cold_start.sh first)")
        logger.warning("SFT adapter %s not found; RL starts from the base model %s", path, self.model.base_model)
        return None

    def resolve(self, path: str | None) -> Path | None:
        """A config path made absolute (relative ones are taken from the current directory); None for unset."""
        if path is None or path == "":
            return None
        return resolve_path(path)

    def locate(self, path: str | None) -> Path | None:
        """A setting that may name a hub repository (models, adapters, RL data, the search cache).

        An existing local path is made absolute as by :meth:`resolve`; a hub id (``owner/name``,
        e.g. ``honglyhly/DeepEyesV2_RL``) with no such local path is returned as typed
        (relative), for the loader to fetch with :func:`deepeyes.hub.resolve`.
        """
        local = self.resolve(path)
        if local is not None and not local.exists() and looks_like_repo_id(str(path)):
            return Path(str(path))
        return local


def apply_overrides(document: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``document`` with ``key.sub=value`` overrides merged in (OmegaConf dotlist; values parsed as YAML scalars/lists).

    Returns a new mapping; ``document`` is left as it was. Raises :class:`ConfigError` for an
    override without ``=`` or one that cannot be merged.
    """
    for override in overrides:
        key, sep, _ = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} is not of the form key=value")
    try:
        merged = OmegaConf.merge(OmegaConf.create(document), OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"override {', '.join(overrides)}: {exc}") from exc


def _expand_algorithm_shorthand(document: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """``algorithm: grpo`` in the file and ``algorithm=ppo`` on the command line, as ``algorithm.name``.

    ``algorithm`` was a bare name before it became a section (with ``filter_groups``); the
    short spelling stays valid so files and commands written for it keep working.
    """
    if isinstance(document.get("algorithm"), str):
        document = {**document, "algorithm": {"name": document["algorithm"]}}
    expanded = []
    for override in overrides:
        key, sep, value = override.partition("=")
        is_name = key.strip() == "algorithm" and sep and not value.lstrip().startswith("{")
        expanded.append(f"algorithm.name={value}" if is_name else override)
    return document, expanded


def load_rl_config(path: str | Path, overrides: list[str] | None = None) -> RLConfig:
    """Read the YAML at ``path``, apply ``overrides``, and build a validated :class:`RLConfig`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    document, expanded = _expand_algorithm_shorthand(document, list(overrides or []))
    return from_dict(RLConfig, apply_overrides(document, expanded), source=str(path))
