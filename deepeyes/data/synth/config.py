"""Settings of the synthetic data generator (sizes, seed, task mixtures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deepeyes.paths import SAMPLE_DIR

#: Bumped whenever the generated data changes for the same seed, and written to the manifest.
GENERATOR_VERSION = "6"

#: Tasks of the curriculum: each one's tool is necessary and sufficient for a model that
#: cannot read pixels (exact arithmetic on numbers in the question, a count code computes
#: from the image, a fact only in the corpus, an image search, an answer in the question).
CURRICULUM_VISUAL_TASKS: tuple[str, ...] = ("counting", "arithmetic", "no_tool")
#: Visual tasks that also need the model to read the image itself (tick labels, tiny text):
#: generated on request, not part of the default mixture or held-out benchmark.
READING_TASKS: tuple[str, ...] = ("chart", "small_text")
VISUAL_TASKS: tuple[str, ...] = CURRICULUM_VISUAL_TASKS + READING_TASKS
SEARCH_TASKS: tuple[str, ...] = ("text_search", "image_search")
#: Referring-expression grounding (a box answer, IoU reward): opt-in through
#: ``grounding_share`` / ``eval_grounding``, so the default curriculum and its data stay as they were.
GROUNDING_TASKS: tuple[str, ...] = ("grounding",)
ALL_TASKS: tuple[str, ...] = VISUAL_TASKS + SEARCH_TASKS + GROUNDING_TASKS
#: Video questions about moving shapes (:mod:`deepeyes.data.synth.tasks.video`): opt-in through
#: ``video_rows`` / ``eval_video``, written to their own files, so the default data stay as they were.
VIDEO_TASKS: tuple[str, ...] = ("video_motion", "video_count", "video_order")
#: Video splits and the held-out ones among them (RL validation, the video benchmark).
VIDEO_SPLITS: tuple[str, ...] = ("video_sft", "video_rl_train", "video_rl_val", "eval_video")
VIDEO_HELDOUT_SPLITS: tuple[str, ...] = ("video_rl_val", "eval_video")
#: Splits drawn from the held-out side of the value partition.
HELDOUT_SPLITS: tuple[str, ...] = ("rl_val", "eval_visual", "eval_search", "eval_grounding")


def _training_mixture() -> dict[str, float]:
    # ~20 % of questions need no tool, so the model also learns to answer directly.
    return {
        "counting": 0.2,
        "arithmetic": 0.2,
        "text_search": 0.2,
        "image_search": 0.2,
        "no_tool": 0.2,
    }


@dataclass
class SynthConfig:
    """What to generate; every size is a number of questions."""

    out: Path = field(default=SAMPLE_DIR, metadata={"help": "output folder (files generated there earlier are replaced)"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice"})
    sft: int = field(
        default=1200,
        metadata={"help": "number of SFT trajectories (the tiny default generalises from many distinct samples, not from epochs over few)"},
    )
    rl_train: int = field(default=200, metadata={"help": "rows of rl/train.parquet"})
    rl_val: int = field(default=20, metadata={"help": "rows of rl/val.parquet"})
    eval_visual: int = field(default=60, metadata={"help": "rows of eval/DeepEyesMini_Visual.tsv"})
    eval_search: int = field(default=40, metadata={"help": "rows of eval/DeepEyesMini_Search.tsv"})
    distractor_entities: int = field(
        default=120,
        metadata={"help": "fictional entities nobody asks about (3 corpus documents each), so retrieval has to discriminate"},
    )
    workers: int = field(default=2, metadata={"help": "parallel processes executing SFT code blocks"})
    choice_share: float = field(
        default=0.3,
        metadata={"help": "share of visual-task questions posed as A-D multiple choice (answer = letter), in SFT, RL and evaluation alike"},
    )
    training_mixture: dict[str, float] = field(default_factory=_training_mixture)
    grounding_share: float = field(
        default=0.0,
        metadata={"help": "opt-in: weight of the grounding task (box answers) beside the training mixture's (whose weights sum to 1); 0: none"},
    )
    eval_grounding: int = field(default=0, metadata={"help": "opt-in: rows of eval/DeepEyesMini_Grounding.tsv (held-out grounding questions); 0: no file"})
    video_rows: int = field(
        default=0,
        metadata={
            "help": "opt-in: video questions (moving shapes) written to sft/video_sharegpt.json and rl/video_train.parquet "
            "(this many each) and rl/video_val.parquet (a fifth, at least 1); 0: no video data"
        },
    )
    eval_video: int = field(default=0, metadata={"help": "opt-in: rows of eval/DeepEyesMini_Video.tsv (held-out A-D video questions); 0: no file"})

    def __post_init__(self) -> None:
        self.validate()

    def split_sizes(self) -> dict[str, int]:
        return {
            "sft": self.sft,
            "rl_train": self.rl_train,
            "rl_val": self.rl_val,
            "eval_visual": self.eval_visual,
            "eval_search": self.eval_search,
            # Only when asked for: the default manifest (and data) stay as they were.
            **({"eval_grounding": self.eval_grounding} if self.eval_grounding else {}),
        }

    def video_split_sizes(self) -> dict[str, int]:
        """Rows of each video split that is asked for (none by default)."""
        sizes = {"video_sft": self.video_rows, "video_rl_train": self.video_rows, "video_rl_val": max(1, self.video_rows // 5) if self.video_rows else 0}
        return {split: size for split, size in {**sizes, "eval_video": self.eval_video}.items() if size}

    def mixture(self, split: str) -> dict[str, float]:
        if split == "eval_visual":
            return {task: 1.0 for task in CURRICULUM_VISUAL_TASKS}
        if split == "eval_search":
            return {task: 1.0 for task in SEARCH_TASKS}
        if split == "eval_grounding":
            return {task: 1.0 for task in GROUNDING_TASKS}
        if self.grounding_share > 0:
            return {**self.training_mixture, **{task: self.grounding_share for task in GROUNDING_TASKS}}
        return dict(self.training_mixture)

    def validate(self) -> None:
        for split, size in self.split_sizes().items():
            if size < 0:
                raise ValueError(f"size of split '{split}' must be >= 0, got {size}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.grounding_share < 0 or self.eval_grounding < 0:
            raise ValueError("grounding_share and eval_grounding must be >= 0")
        if self.video_rows < 0 or self.eval_video < 0:
            raise ValueError("video_rows and eval_video must be >= 0")
        if not 0.0 <= self.choice_share <= 1.0:
            raise ValueError(f"choice_share must be in [0, 1], got {self.choice_share}")
        unknown = set(self.training_mixture) - set(ALL_TASKS)
        if unknown:
            raise ValueError(f"unknown task(s) in training_mixture: {sorted(unknown)}; known: {list(ALL_TASKS)}")
