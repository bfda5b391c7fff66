"""``python -m deepeyes.evaluation`` — the CLI behind ``evaluation/run_eval.sh``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from deepeyes.evaluation.compare import summary_line
from deepeyes.evaluation.config import DEFAULT_DATASETS, EvalConfig
from deepeyes.evaluation.datasets import DatasetError
from deepeyes.evaluation.runner import REPORT_HTML, REPORT_PDF, RESULTS_FILE, TRAJECTORY_DIR, ResumeMismatchError, evaluate

_DEFAULTS = EvalConfig()


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _optional_int(text: str) -> int | None:
    return None if text.strip().lower() in ("", "all", "none", "0") else int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepeyes.evaluation",
        description=(
            "Evaluate a model on benchmark TSVs (VLMEvalKit conventions) with the DeepEyes agent loop and "
            "reward, resuming from the trajectories already in --output. Writes eval_results.json, "
            "trajectories/<dataset>.jsonl, eval_report.html and eval_report.pdf."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    model = parser.add_argument_group("model")
    model.add_argument("--model_path", default=_DEFAULTS.model_path, help="local Qwen2.5-VL directory")
    model.add_argument("--adapter_path", default=None, help="LoRA adapter directory applied on top of --model_path")
    model.add_argument("--api_base", default=None, help="OpenAI-compatible endpoint (overrides --model_path), e.g. http://127.0.0.1:8000/v1")
    model.add_argument("--served_model", default=_DEFAULTS.served_model, help="model name requested from --api_base")
    model.add_argument("--max_new_tokens", type=int, default=_DEFAULTS.max_new_tokens, help="token limit of one model turn")
    model.add_argument("--temperature", type=float, default=_DEFAULTS.temperature, help="sampling temperature (0 = greedy)")
    model.add_argument("--device", default=_DEFAULTS.device, help="torch device for --model_path")
    data = parser.add_argument_group("data")
    data.add_argument("--datasets", default=",".join(DEFAULT_DATASETS), help="comma-separated dataset names (<name>.tsv under --lmudata)")
    data.add_argument("--lmudata", default=_DEFAULTS.lmudata, help="folder holding the dataset TSVs (VLMEvalKit's LMUDATA)")
    data.add_argument("--max_samples", type=_optional_int, default=None, help="evaluate only the first N rows of each dataset (0/all: every row)")
    run = parser.add_argument_group("run")
    run.add_argument("--output", default=_DEFAULTS.output_dir, help="output folder (OUTPUT_REPORT)")
    run.add_argument("--batch_size", type=int, default=_DEFAULTS.batch_size, help="samples in flight per worker")
    run.add_argument("--num_workers", type=int, default=_DEFAULTS.num_workers, help="parallel policy workers (model copies / API clients)")
    run.add_argument("--use_tools", type=_flag, default=True, help="false: single turn, no tools, plain VQA")
    run.add_argument("--tool_manager_config", default=None, help="tool manager YAML (default: local Redis + sandbox on loopback)")
    run.add_argument("--max_turns", type=int, default=_DEFAULTS.max_turns, help="model turns per sample before giving up")
    run.add_argument("--overwrite", action="store_true", help="discard earlier trajectories in --output instead of resuming")
    run.add_argument("--no_report", action="store_true", help="skip eval_report.html/.pdf (results JSON and trajectories only)")
    run.add_argument("--no_progress", action="store_true", help="no progress bars")
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--judge_api_base", default=None, help="OpenAI-compatible endpoint of an LLM judge for free-text answers")
    scoring.add_argument("--judge_model", default=_DEFAULTS.judge_model, help="model name requested from --judge_api_base")
    scoring.add_argument("--reward_config", default=None, help="RewardConfig YAML (default: the built-in weights and tolerances)")
    parser.add_argument("--verbose", action="store_true", help="log details")
    return parser


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    return EvalConfig(
        model_path=args.model_path,
        adapter_path=args.adapter_path or None,
        api_base=args.api_base or None,
        served_model=args.served_model,
        datasets=[name.strip() for name in args.datasets.split(",") if name.strip()],
        lmudata=args.lmudata,
        output_dir=args.output,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        use_tools=args.use_tools,
        tool_manager_config=args.tool_manager_config or None,
        judge_api_base=args.judge_api_base or None,
        judge_model=args.judge_model,
        reward_config=args.reward_config or None,
        max_samples=args.max_samples,
        max_turns=args.max_turns,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        device=args.device,
        overwrite=args.overwrite,
        report=not args.no_report,
        show_progress=not args.no_progress,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
        results = evaluate(config)
    except (DatasetError, ResumeMismatchError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(config.output_dir)
    print(summary_line("run", results))
    for name, block in results["datasets"].items():
        print(f"  {summary_line(name, {'overall': block['overall']})}")
    print(f"results:      {out / RESULTS_FILE}")
    print(f"trajectories: {out / TRAJECTORY_DIR}/<dataset>.jsonl")
    if config.report:
        print(f"report:       {out / REPORT_PDF}  {out / REPORT_HTML}")
    errors = results["overall"].get("errors", 0)
    if errors:
        print(f"error: {errors} sample(s) failed (see the log); run again to retry them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
