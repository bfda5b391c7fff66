"""The ``verl`` engine: our config → verl ``main_ppo`` Hydra overrides, and the launch.

verl's own trainer (Ray, FSDP, vLLM/SGLang) does the RL; DeepEyes plugs in at verl's
extension points: the agent loop (``deepeyes_agent``, registered through
``agent_loop_config_path``) and the custom reward function (scoring the trajectory the loop
built) and the agent-loop manager (:mod:`deepeyes.rl.verl_worker`, telling the loop its
step). With ``model.device: cpu`` the same trainer runs without an accelerator through
:mod:`deepeyes.rl.verl_cpu` (a CPU platform and the ``hf`` rollout backend), loaded into every
verl process with ``VERL_USE_EXTERNAL_MODULES``. Everything else is mapped from our YAML so one
config file describes a run on either engine, on a laptop or a cluster, and means the same on
both: the rows are read and filtered by the local engine's reader (:func:`deepeyes.rl.data.run_prompts`,
``data.image_root`` included) and copied for verl, the reward hook scores with the run's reward
config, ``trainer.loggers`` are verl's tracking backends in both, and ``metrics.jsonl`` /
``trajectories.jsonl`` carry the same fields (:mod:`deepeyes.rl.verl_metrics`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from deepeyes.config import to_dict
from deepeyes.paths import REPO_ROOT
from deepeyes.rl.config import RLConfig, RLSetupError
from deepeyes.rl.data import RLPrompt, prompt_budget, run_prompts
from deepeyes.rl.metrics import check_loggers, tracker_environment
from deepeyes.rl.policy_model import load_base_with_sft
from deepeyes.rl.services import build_tool_manager, write_reward_config
from deepeyes.rl.verl_metrics import write_step_metrics
from deepeyes.rl.verl_worker import collapse_environment
from deepeyes.utils.processes import ManagedProcess
from deepeyes.videos import VideoSampling

logger = logging.getLogger(__name__)

#: The name our agent loop is registered under, and the class verl instantiates for it.
AGENT_NAME = "deepeyes_agent"
AGENT_LOOP_CLASS = "deepeyes.rl.verl_agent_loop.DeepEyesAgentLoop"
AGENT_LOOP_MANAGER_CLASS = "deepeyes.rl.verl_worker.DeepEyesAgentLoopManager"
REWARD_FUNCTION_FILE = Path(__file__).resolve().with_name("verl_reward.py")
#: The module that registers the CPU platform and the ``hf`` rollout backend in verl processes.
CPU_PLUGIN_MODULE = "deepeyes.rl.verl_cpu"
#: The recipe that runs verl's trainer on a machine without an accelerator.
CPU_RECIPE = REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl_verl_cpu.yaml"


@dataclass
class VerlPaths:
    """Files the launch prepares (or, in a dry run, would prepare) under ``output.dir/verl``."""

    root: Path
    model: Path  # base model, or base + SFT merged into a full checkpoint
    #: The RL parquet files (the published data set is several), copied with absolute image paths.
    train_files: list[Path]
    agent_loop_config: Path
    tool_manager_config: Path
    reward_config: Path
    #: Whether the copied rows carry videos (known once :func:`prepare` has read them).
    has_videos: bool = False

    @classmethod
    def plan(cls, config: RLConfig) -> VerlPaths:
        root = (config.resolve(config.output.dir) or Path(config.output.dir)) / "verl"
        sft = config.locate(config.model.sft_lora_path)
        sft_present = sft is not None and (sft / "adapter_config.json").is_file()
        start = config.full_sft_checkpoint() or config.locate(config.model.base_model)
        return cls(
            root=root,
            model=root / "merged_sft_model" if sft_present else start,  # type: ignore[arg-type]
            # The copies' names; prepare() takes them from the files it finds (a folder or hub id
            # may hold several parts), so planning (--dry_run) never needs the data present.
            train_files=[root / "data" / Path(str(config.data.rl_data_path)).name],
            agent_loop_config=root / "agent_loop.yaml",
            tool_manager_config=root / "tool_manager_config.yaml",
            reward_config=root / "reward_config.yaml",
        )


def agent_loop_entries(config: RLConfig, paths: VerlPaths) -> list[dict]:
    """The ``agent_loop_config_path`` file's content: our class and its settings."""
    return [
        {
            "name": AGENT_NAME,
            "_target_": AGENT_LOOP_CLASS,
            "tool_manager_config": str(paths.tool_manager_config),
            "max_turns": config.rollout.max_turns,
            "max_context_tokens": config.rollout.max_context_tokens,
            "max_new_tokens": config.rollout.max_new_tokens,
        }
    ]


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _list(items: list) -> str:
    return "[" + ",".join(str(item) for item in items) + "]"


def filter_groups_overrides(config: RLConfig) -> list[str]:
    """Dynamic sampling under verl's own keys, ``algorithm.filter_groups.enable|metric|max_num_gen_batches``.

    What verl 0.9.1 does with them depends on the trainer. The classic ``RayPPOTrainer``
    (``trainer.use_v1=false``, what :func:`build_overrides` selects because the v1 trainer needs
    the ``transfer_queue`` package) does not read ``algorithm.filter_groups`` at all: its
    batches keep every group. The v1 trainer (``trainer.use_v1=true`` in ``verl.extra_overrides``)
    reads ``enable`` and ``metric`` (``verl/trainer/ppo/v1/trainer_base.py``,
    ``_resolve_filter_groups_metric``; a metric other than ``reward`` is looked up in
    ``reward_extra_info``, which holds our reward's keys) and ignores ``max_num_gen_batches``
    with a warning, bounding refills with ``max_inflight_gen_batches`` instead. The keys are
    passed either way, so verl's composed config records the request;
    :func:`build_overrides` warns when verl will not act on it.
    """
    settings = config.algorithm.filter_groups
    return [
        f"algorithm.filter_groups.enable={_bool(settings.enable)}",
        f"algorithm.filter_groups.metric={settings.metric}",
        f"algorithm.filter_groups.max_num_gen_batches={settings.max_num_gen_batches}",
    ]


def _uses_v1_trainer(overrides: list[str]) -> bool:
    """Whether the last ``trainer.use_v1`` override selects verl's v1 trainer."""
    values = [o.partition("=")[2].strip().lower() for o in overrides if o.partition("=")[0].strip().lstrip("+") == "trainer.use_v1"]
    return bool(values) and values[-1] == "true"


def reward_overrides(config: RLConfig, paths: VerlPaths, reward_server_url: str) -> list[str]:
    """Our reward hook and its ``reward_kwargs`` (:mod:`deepeyes.rl.verl_reward`): the server, the
    reward config it falls back to in-process, and where it logs the scored trajectories."""
    overrides = [
        f"reward.custom_reward_function.path={REWARD_FUNCTION_FILE}",
        "reward.custom_reward_function.name=compute_score",
        f"+reward.custom_reward_function.reward_kwargs.server_url={reward_server_url}",
        f"+reward.custom_reward_function.reward_kwargs.config_path={paths.reward_config}",
    ]
    if config.output.log_trajectories:
        overrides.append(f"+reward.custom_reward_function.reward_kwargs.trajectory_dir={paths.root}")
    return overrides


def build_overrides(config: RLConfig, paths: VerlPaths, reward_server_url: str) -> list[str]:
    """Hydra overrides for ``verl.trainer.main_ppo`` (verl 0.9.1's ``ppo_trainer`` config)."""
    training, rollout, verl, model, trainer = config.training, config.rollout, config.verl, config.model, config.trainer
    micro = training.batch_size
    overrides = [
        f"algorithm.adv_estimator={'grpo' if config.algorithm.name == 'grpo' else 'gae'}",
        f"algorithm.norm_adv_by_std_in_grpo={_bool(training.norm_adv_by_std)}",
        "algorithm.use_kl_in_reward=false",
        f"algorithm.gamma={training.gamma}",
        f"algorithm.lam={training.lam}",
        *filter_groups_overrides(config),
        f"data.train_files={_list(paths.train_files)}",
        f"data.val_files={_list(paths.train_files)}",
        # Our reader already dropped rows over data.max_prompt_length, videos measured as they are
        # decoded here; verl's filter decodes video files with qwen_vl_utils' readers (decord,
        # torchcodec or torchvision's read_video, none of which torchvision 0.26 without the other
        # two has) and drops every row it cannot read.
        f"data.filter_overlong_prompts={_bool(not paths.has_videos)}",
        f"data.train_batch_size={config.data.batch_size}",
        f"data.max_prompt_length={verl.max_prompt_length}",
        f"data.max_response_length={verl.max_response_length}",
        "data.image_key=images",
        "data.video_key=videos",
        "data.return_raw_chat=true",
        f"data.shuffle={_bool(config.data.shuffle)}",
        f"data.seed={config.data.seed}",
        f"actor_rollout_ref.model.path={paths.model}",
        f"actor_rollout_ref.model.lora_rank={model.lora_rank if model.use_peft else 0}",
        f"actor_rollout_ref.model.lora_alpha={model.lora_alpha}",
        f"actor_rollout_ref.model.target_modules={_list(model.lora_target_modules)}",
        "actor_rollout_ref.model.exclude_modules=.*visual.*",
        f"actor_rollout_ref.actor.optim.lr={training.learning_rate}",
        f"actor_rollout_ref.actor.optim.weight_decay={training.weight_decay}",
        f"actor_rollout_ref.actor.optim.clip_grad={training.max_grad_norm}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={config.data.batch_size}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.actor.ppo_epochs={training.ppo_epochs}",
        f"actor_rollout_ref.actor.clip_ratio={training.ppo_clip_ratio}",
        f"actor_rollout_ref.actor.clip_ratio_low={training.ppo_clip_ratio}",
        f"actor_rollout_ref.actor.clip_ratio_high={training.ppo_clip_ratio}",
        f"actor_rollout_ref.actor.loss_agg_mode={training.loss_agg_mode}",
        f"actor_rollout_ref.actor.use_kl_loss={_bool(training.kl_coef > 0)}",
        f"actor_rollout_ref.actor.kl_loss_coef={training.kl_coef}",
        f"actor_rollout_ref.actor.kl_loss_type={training.kl_type}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.rollout.name={verl.rollout_backend}",
        f"actor_rollout_ref.rollout.n={rollout.n}",
        f"actor_rollout_ref.rollout.temperature={rollout.temperature}",
        f"actor_rollout_ref.rollout.top_p={rollout.top_p}",
        f"actor_rollout_ref.rollout.tensor_model_parallel_size={verl.tensor_model_parallel_size}",
        f"actor_rollout_ref.rollout.gpu_memory_utilization={verl.gpu_memory_utilization}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}",
        "actor_rollout_ref.rollout.multi_turn.enable=true",
        f"actor_rollout_ref.rollout.multi_turn.max_assistant_turns={rollout.max_turns}",
        f"actor_rollout_ref.rollout.agent.agent_loop_config_path={paths.agent_loop_config}",
        f"actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_NAME}",
        f"actor_rollout_ref.rollout.agent.num_workers={verl.agent_workers}",
        *reward_overrides(config, paths, reward_server_url),
        f"trainer.project_name={trainer.project_name}",
        f"trainer.experiment_name={trainer.experiment_name}",
        # The file backend feeds metrics.jsonl (deepeyes.rl.verl_metrics).
        f"trainer.logger={_list([*trainer.loggers, *(['file'] if 'file' not in trainer.loggers else [])])}",
        f"trainer.nnodes={verl.nnodes}",
        f"trainer.n_gpus_per_node={verl.n_gpus_per_node}",
        f"trainer.total_epochs={training.num_train_epochs}",
        f"trainer.total_training_steps={config.trainer.total_steps if config.trainer.total_steps is not None else 'null'}",
        f"trainer.save_freq={config.output.save_steps or -1}",
        f"trainer.max_actor_ckpt_to_keep={config.output.save_total_limit or 'null'}",
        f"trainer.default_local_dir={paths.root / 'checkpoints'}",
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        # verl 0.9.1's v1 trainer needs the transfer_queue package; the classic RayPPOTrainer does not.
        "trainer.use_v1=false",
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.ref.strategy=fsdp2",
    ]
    if on_cpu(config):
        slots = verl.nnodes * verl.n_gpus_per_node
        overrides += [
            "trainer.device=cpu",
            # verl's resource pools count Ray GPU resources: one logical slot per training process,
            # each bundled with 3 logical CPUs; the trainer, agent-loop and reward workers take more.
            f"+ray_kwargs.ray_init.num_gpus={slots}",
            f"+ray_kwargs.ray_init.num_cpus={max(os.cpu_count() or 1, 3 * slots + verl.agent_workers + 4)}",
            # flash-attention kernels (and verl's padding-free path built on them) are GPU-only.
            "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
            "actor_rollout_ref.model.use_remove_padding=false",
            "data.dataloader_num_workers=0",
        ]
    if verl.rollout_backend == "hf" and model.use_peft:
        overrides.append("actor_rollout_ref.model.lora.merge=true")  # the hf server loads full weights
    if config.algorithm.name == "ppo":
        overrides += [
            "critic.strategy=fsdp2",
            f"critic.model.path={paths.model}",
            f"critic.optim.lr={training.learning_rate}",
            f"critic.ppo_micro_batch_size_per_gpu={micro}",
            f"critic.cliprange_value={training.value_clip_range}",
        ]
    if _uses_v1_trainer(list(verl.extra_overrides)):
        logger.warning(
            "verl's v1 trainer runs its own agent-loop manager: trajectories.jsonl will carry no metadata.step, "
            "so the behaviour report's per-step view sees no steps, and the collapse alarm (run by our manager) does not run"
        )
    else:
        overrides.append(f"+actor_rollout_ref.rollout.agent.agent_loop_manager_class={AGENT_LOOP_MANAGER_CLASS}")
    overrides += list(verl.extra_overrides)
    if verl.max_prompt_length < config.data.max_prompt_length:
        logger.warning(
            "verl.max_prompt_length=%d is below data.max_prompt_length=%d: verl's own filter may drop prompts the local engine trains on",
            verl.max_prompt_length, config.data.max_prompt_length,
        )
    if config.algorithm.filter_groups.enable and not _uses_v1_trainer(overrides):
        logger.warning(
            "algorithm.filter_groups is passed to verl, but verl 0.9.1's classic trainer (trainer.use_v1=false) "
            "does not filter groups; only its v1 trainer does (verl.extra_overrides: [trainer.use_v1=true])"
        )
    return overrides


def on_cpu(config: RLConfig) -> bool:
    """A run without an accelerator: verl runs on the CPU platform of :mod:`deepeyes.rl.verl_cpu`."""
    return config.model.device == "cpu"


def check_launchable(config: RLConfig) -> None:
    """Stop before anything starts when verl could not run this config on this machine.

    The tracking backends must be verl's (:func:`deepeyes.rl.metrics.check_loggers`), and the
    rollout backend must be one verl can start here.

    verl imports vLLM's or SGLang's modules when it builds a GPU rollout and stops deep in its
    start-up without them (``verl/third_party/vllm/__init__.py``: ``vllm version None not supported
    and SGLang also not Found``); the ``hf`` backend exists only in our CPU plugin, loaded when
    ``model.device`` is ``cpu``.

    Raises:
        RLSetupError: naming the setting to change and, on a CPU, the CPU recipe.
    """
    check_loggers(config.trainer.loggers)
    backend = config.verl.rollout_backend
    if on_cpu(config) and backend != "hf":
        raise RLSetupError(
            f"verl.rollout_backend={backend} needs a GPU but model.device is cpu. verl's trainer runs on a CPU with the "
            f"hf backend: use the CPU recipe (--config {CPU_RECIPE.relative_to(REPO_ROOT)}) or --set verl.rollout_backend=hf "
            "with sizes for this machine; or train with the local engine (trainer.engine=local)"
        )
    if not on_cpu(config) and backend == "hf":
        raise RLSetupError(f"verl.rollout_backend=hf runs on CPU only (model.device={config.model.device}); use vllm or sglang on GPUs")
    if backend != "hf" and importlib.util.find_spec(backend) is None:
        raise RLSetupError(f"verl.rollout_backend={backend}: the {backend} package is not installed in this environment")


def command(overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "verl.trainer.main_ppo", *overrides]


def environment(config: RLConfig, paths: VerlPaths) -> dict[str, str]:
    """Variables for verl's processes: the CPU plugin when on CPU, where verl's loggers write, and
    the collapse alarm's settings (read by :class:`deepeyes.rl.verl_worker.DeepEyesAgentLoopManager`)."""
    env = {
        **tracker_environment(paths.root),
        **collapse_environment(config.trainer.collapse_fraction, config.trainer.collapse_patience),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    if on_cpu(config):
        modules = [m for m in os.environ.get("VERL_USE_EXTERNAL_MODULES", "").split(",") if m and m != CPU_PLUGIN_MODULE]
        env.update(VERL_PLATFORM="cpu", VERL_USE_EXTERNAL_MODULES=",".join([CPU_PLUGIN_MODULE, *modules]))
    return env


def _copy_names(files: list[Path]) -> list[str]:
    """File names for the copies of ``files``: their own, numbered where two parts share a name."""
    names = [file.name for file in files]
    return [f"{i}_{name}" if names.count(name) > 1 else name for i, name in enumerate(names)]


def _verl_video(source: Path | list[Path], sampling: VideoSampling) -> dict[str, Any]:
    """A video entry as verl's dataset passes it on (``{"type": "video", **entry}``): the absolute
    file, folder or frame files, and the sampling the reader resolved (``data.video_*`` or the
    row's own), so the agent loop samples as the local engine would. ``max_pixels`` only when set."""
    entry: dict[str, Any] = {
        "video": [str(frame) for frame in source] if isinstance(source, list) else str(source),
        "fps": sampling.fps,
        "max_frames": sampling.max_frames,
    }
    if sampling.max_pixels is not None:
        entry["max_pixels"] = sampling.max_pixels
    return entry


def _verl_row(row: dict[str, Any], prompt: RLPrompt) -> dict[str, Any]:
    """The parquet ``row`` as verl gets it: its images and videos as the absolute files the reader
    found (Ray workers run in other directories), and the uid and sample index the reader gave it,
    so the agent loop's reader gives the same prompt back."""
    entries = row.get("images") or []
    images = [{**entry, "image": str(path)} if isinstance(entry, dict) else {"image": str(path)} for entry, path in zip(entries, prompt.images, strict=True)]
    extra = {**(row.get("extra_info") or {}), "uid": prompt.uid, "sample_index": prompt.sample_index}
    copied = {**row, "images": images, "extra_info": extra}
    if prompt.videos:
        copied["videos"] = [_verl_video(source, prompt.video_sampling) for source in prompt.videos]
    return copied


def write_verl_data(prompts: list[RLPrompt], directory: Path) -> list[Path]:
    """Copy the rows of ``prompts`` (read by :func:`deepeyes.rl.data.run_prompts`) into parquet files
    for verl, one per source file, keeping the source's other columns; returns the copies."""
    sources = list(dict.fromkeys(p.file for p in prompts if p.file is not None))
    copies = [directory / name for name in _copy_names(sources)]
    directory.mkdir(parents=True, exist_ok=True)
    for source, copy in zip(sources, copies, strict=True):
        rows = pq.read_table(source).to_pylist()
        kept = [_verl_row(rows[p.row], p) for p in prompts if p.file == source and p.row is not None]
        pq.write_table(pa.Table.from_pylist(kept), copy)
    return copies


def prepare(config: RLConfig, paths: VerlPaths) -> None:
    """Write what the overrides point at: merged SFT model, the run's rows, agent-loop, tool and reward configs."""
    paths.root.mkdir(parents=True, exist_ok=True)
    tool_config = to_dict(build_tool_manager(config).resolved_config())  # the search cache as the tools will read it
    paths.tool_manager_config.write_text(yaml.safe_dump(tool_config, sort_keys=False), encoding="utf-8")
    write_reward_config(config, paths.reward_config)
    start, sft = config.initial_model()
    if sft is not None and not (paths.model / "config.json").is_file():
        model, processor = load_base_with_sft(start, sft, config.model.dtype)
        model.save_pretrained(paths.model)
        processor.save_pretrained(paths.model)
    elif sft is None:
        paths.model = start
    prompts = run_prompts(config, config.data.rl_data_path, prompt_budget(config))
    paths.train_files = write_verl_data(prompts, paths.root / "data")
    paths.has_videos = any(prompt.videos for prompt in prompts)
    paths.agent_loop_config.write_text(yaml.safe_dump(agent_loop_entries(config, paths), sort_keys=False), encoding="utf-8")


def launch(config: RLConfig, reward_server_url: str) -> int:
    """Prepare the files and run verl's trainer with our overrides; returns its exit code.

    Afterwards (also when verl failed part-way) the run folder's ``metrics.jsonl`` is written
    from what verl and our reward hook logged (:func:`deepeyes.rl.verl_metrics.write_step_metrics`).
    """
    paths = VerlPaths.plan(config)
    prepare(config, paths)
    argv = command(build_overrides(config, paths, reward_server_url))
    env = environment(config, paths)
    logger.info("launching verl: %s %s", " ".join(f"{k}={v}" for k, v in env.items() if k.startswith("VERL_")), " ".join(argv))
    try:
        # A managed child: it dies with this process, and so does the Ray cluster it starts (its
        # tree is reaped: Ray's agents and helpers do not all follow a killed driver).
        with ManagedProcess(argv, name="verl main_ppo", env=env, cwd=REPO_ROOT, inherit_output=True, reap_tree=True) as trainer:
            return trainer.wait()
    finally:
        write_step_metrics(paths.root)
