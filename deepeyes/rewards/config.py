"""Reward settings (the ``reward:`` section of an RL config, or a file of its own).

Every number that shapes the reward lives here so that an experiment changes a YAML file,
not code, and so that the RL trainer, the evaluation harness and the reward server score
with exactly the same settings when they load the same file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deepeyes.config import load_config

#: Names accepted by :attr:`RewardConfig.preset`; :mod:`deepeyes.rewards.presets` holds their formulas.
PRESETS: tuple[str, ...] = ("seed", "deepeyes_v2", "deepeyes_v1", "grounding")
#: Order of :attr:`RewardConfig.weights`; the docs and the result details use these names.
WEIGHT_NAMES: tuple[str, str, str] = ("task_completion", "tool_efficiency", "accuracy")
#: VLM-R1's accuracy threshold and the REC benchmarks' Acc@0.5.
DEFAULT_IOU_THRESHOLD = 0.5


@dataclass
class GroundingConfig:
    """How a box answer is graded (the ``reward.grounding`` section)."""

    #: A box counts as correct when its IoU with the true box is at least this.
    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    #: False (VLM-R1's reward): accuracy is 1 when correct, else 0. True: accuracy is the IoU.
    continuous: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"grounding.iou_threshold must be in (0, 1], got {self.iou_threshold}")


@dataclass
class JudgeConfig:
    """An optional LLM judge behind an OpenAI-compatible ``/chat/completions`` endpoint.

    The judge is only asked about free-text answers that the rules did not accept; when it
    cannot be reached the rules' verdict stands and the result says so (``judge_fallback``).
    """

    enabled: bool = False
    api_base: str = "http://127.0.0.1:8000/v1"
    model: str = "judge"
    timeout_s: float = 10.0
    api_key_env: str = "DEEPEYES_JUDGE_API_KEY"  # name of the variable, never the key itself
    max_retries: int = 1
    max_concurrency: int = 8  # parallel judge calls within one /score_batch
    max_tokens: int = 8

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("judge.timeout_s must be positive")
        if self.max_retries < 0 or self.max_concurrency < 1:
            raise ValueError("judge.max_retries must be >= 0 and judge.max_concurrency >= 1")


@dataclass
class ToolPenalties:
    """Subtracted from the tool-efficiency term, per offending call."""

    invalid: float = 0.25  # a turn whose action did not parse / named an unknown tool
    failed: float = 0.1  # a valid call whose execution failed (error, timeout, denied)
    repeated: float = 0.2  # a call identical to an earlier one in the same trajectory
    excess: float = 0.1  # each call beyond ``RewardConfig.max_tool_calls``

    def __post_init__(self) -> None:
        if min(self.invalid, self.failed, self.repeated, self.excess) < 0:
            raise ValueError("tool penalties must be >= 0")


@dataclass
class RewardConfig:
    """How a trajectory is scored; see ``docs/rewards.md`` for the formula of each preset."""

    #: The combination formula: ``seed`` (the weights below), ``deepeyes_v2``,
    #: ``deepeyes_v1`` or ``grounding`` (see :mod:`deepeyes.rewards.presets`; grounding rows
    #: use ``grounding`` whatever is set here).
    preset: str = "seed"
    #: (task completion, tool efficiency, result accuracy) — the seed's 0.5 / 0.3 / 0.2.
    #: Used by the ``seed`` preset only.
    weights: list[float] = field(default_factory=lambda: [0.5, 0.3, 0.2])
    #: ``deepeyes_v2``: subtracted once when the trajectory called text or image search.
    search_penalty: float = 0.1
    #: ``deepeyes_v1``: added when the answer is correct and at least one tool was called.
    tool_bonus: float = 1.2
    #: Relative tolerance for non-integer numeric ground truths.
    numeric_rel_tol: float = 1e-2
    #: Absolute tolerance, so that a ground truth of 0 can be matched at all.
    numeric_abs_tol: float = 1e-6
    #: Integer ground truths must be matched exactly (3 ≠ 3.01) when true.
    integer_exact: bool = True
    #: Answers longer than max(answer_max_chars, answer_max_gt_ratio × len(ground truth))
    #: score zero accuracy and count as a format violation: listing many candidates
    #: must not be able to fool a substring rule or a judge.
    answer_max_chars: int = 256
    answer_max_gt_ratio: float = 4.0
    #: Subtracted from the format term per violation found (floored at 0).
    format_violation_penalty: float = 0.5
    #: Tool calls beyond this count are penalised as excess.
    max_tool_calls: int = 6
    #: Tool-efficiency credit for a correct answer reached without any tool call. 1 (the
    #: default) makes a direct correct answer worth as much as a tool-assisted one, so the
    #: reward never pays for calling tools on questions that need none; 0 is the seed's
    #: literal "credit only when tools were used".
    direct_answer_credit: float = 1.0
    penalties: ToolPenalties = field(default_factory=ToolPenalties)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    #: Wall-clock budget of one maths check (seconds), on any thread: the check runs in a
    #: worker process that is killed past it, and the answer scores wrong with the reason
    #: recorded (``deepeyes.rewards.pool``).
    math_timeout_s: int = 5
    #: How box answers of grounding rows are graded (IoU threshold, continuous IoU).
    grounding: GroundingConfig = field(default_factory=GroundingConfig)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {list(PRESETS)}, got {self.preset!r}")
        if self.search_penalty < 0 or self.tool_bonus < 0:
            raise ValueError("search_penalty and tool_bonus must be >= 0")
        if len(self.weights) != len(WEIGHT_NAMES):
            raise ValueError(f"weights must have {len(WEIGHT_NAMES)} entries {list(WEIGHT_NAMES)}, got {self.weights}")
        if any(w < 0 for w in self.weights):
            raise ValueError(f"weights must be >= 0, got {self.weights}")
        if self.numeric_rel_tol < 0 or self.numeric_abs_tol < 0:
            raise ValueError("numeric tolerances must be >= 0")
        if self.answer_max_chars < 1 or self.answer_max_gt_ratio < 0:
            raise ValueError("answer_max_chars must be >= 1 and answer_max_gt_ratio >= 0")
        if self.max_tool_calls < 0:
            raise ValueError("max_tool_calls must be >= 0")
        if self.math_timeout_s <= 0:
            raise ValueError("math_timeout_s must be positive")

    @property
    def weight_map(self) -> dict[str, float]:
        return dict(zip(WEIGHT_NAMES, self.weights, strict=True))


def load_reward_config(path: str | Path | None, section: str | None = None) -> RewardConfig:
    """``RewardConfig`` from a YAML file (optionally one top-level section); defaults for ``None``."""
    if path is None:
        return RewardConfig()
    return load_config(path, RewardConfig, section=section)
