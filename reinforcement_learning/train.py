"""DeepEyes RL training: ``python reinforcement_learning/train.py --config reinforcement_learning/configs/deepeyes_rl.yaml``.

``trainer.engine: local`` trains on this machine (CPU or one GPU) with the shared agent loop,
live tools and the reward server, using verl's GRPO/PPO algorithms; ``trainer.engine: verl``
launches verl's own Ray trainer with our agent loop and reward function plugged in.
See reinforcement_learning/README.md and docs/rl.md.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deepeyes.cli import LoggingArguments, parse_cli
from deepeyes.config import ConfigError
from deepeyes.paths import REPO_ROOT
from deepeyes.rl.config import RLConfig, RLSetupError, load_rl_config

DEFAULT_CONFIG = REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml"
DESCRIPTION = (
    "Train a DeepEyes policy with RL. The local engine runs rollouts through the shared agent loop with "
    "live tools, scores them on the reward server and updates a LoRA adapter with verl's GRPO/PPO; the "
    "verl engine launches verl's main_ppo with our agent loop and reward function. Services the config "
    "does not point at (sandbox, Redis, reward server) are started on loopback and stopped at exit. "
    "Relative paths (flags, --set values and paths inside the YAML) are taken from the current directory."
)


@dataclass(frozen=True)
class TrainArguments:
    """How to run: which config, its overrides, and the run's own switches (the RL settings live in the YAML)."""

    config: str = field(default=str(DEFAULT_CONFIG), metadata={"help": "RL config YAML (sections of deepeyes.rl.config.RLConfig)"})
    set: list[str] = field(
        default_factory=list,
        metadata={
            "help": "override config keys: --set trainer.total_steps=30 rollout.n=8 (values parsed as YAML; repeatable)",
            "action": "append",
            "metavar": "KEY=VALUE",
        },
    )
    resume: str | None = field(
        default=None,
        metadata={
            "help": "continue from a checkpoint directory, or with no value from the newest one under output.dir (local engine)",
            "nargs": "?",
            "const": "auto",
            "metavar": "CHECKPOINT",
        },
    )
    dry_run: bool = field(default=False, metadata={"help": "verl engine: print the full verl command with its Hydra overrides and exit"})
    progress: bool = field(default=True, metadata={"help": "progress bar (--no_progress: log lines only)"})


def run_local(config: RLConfig, args: TrainArguments) -> int:
    from deepeyes.rl.local_engine import LocalTrainer

    result = LocalTrainer(config, resume=args.resume, show_progress=args.progress).run()
    print(f"finished {result.steps_done} steps; metrics: {result.metrics_path}; checkpoint: {result.last_checkpoint}")
    return 0


def run_verl(config: RLConfig, args: TrainArguments) -> int:
    from deepeyes.rl import verl_launch
    from deepeyes.rl.services import reward_server

    if args.dry_run:
        url = config.evaluation.server_url or "http://127.0.0.1:<port-chosen-at-launch>"
        argv = verl_launch.command(verl_launch.build_overrides(config, verl_launch.VerlPaths.plan(config), url))
        # Shell-quoted, one override per line, ready to copy into a job script.
        print(" \\\n  ".join([shlex.join(argv[:3]), *(shlex.quote(arg) for arg in argv[3:])]))
        return 0
    verl_launch.check_launchable(config)  # before the reward server starts
    output_dir = config.resolve(config.output.dir) or Path(config.output.dir)
    with reward_server(config, output_dir / "logs") as url:
        return verl_launch.launch(config, url)


def main(argv: Sequence[str] | None = None) -> int:
    args, logging_args = parse_cli([TrainArguments, LoggingArguments], argv, prog="python reinforcement_learning/train.py", description=DESCRIPTION)
    logging_args.configure()
    try:
        config = load_rl_config(args.config, args.set)
    except ConfigError as exc:
        print(f"bad RL config: {exc}", file=sys.stderr)
        return 2
    if args.dry_run and config.trainer.engine != "verl":
        print("--dry_run prints the verl command; set trainer.engine: verl (e.g. --set trainer.engine=verl)", file=sys.stderr)
        return 2
    try:
        return run_verl(config, args) if config.trainer.engine == "verl" else run_local(config, args)
    except (RLSetupError, ConfigError, FileNotFoundError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; services stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
