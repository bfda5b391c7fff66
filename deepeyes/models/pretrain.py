"""Pretrain the tiny Qwen2.5-VL into the base the main job starts from.

Why: real pipelines start cold-start SFT from a pretrained instruct model (DeepEyesV2 starts
from Qwen2.5-VL-7B-Instruct). A tiny model from random weights learns the wire format in SFT
but not to copy the question's values into its calls, so nothing downstream could show
learning. This script gives the tiny model what pretraining gives a real one, from the
generic corpus of :mod:`deepeyes.models.pretrain_corpus` (no evaluation task, template, tag
or value), with the exact architecture, tokenizer and chat template of
:mod:`deepeyes.models.tiny` — it starts from the same seeded random weights.

Reproducible: the batch of step ``s`` is a pure function of ``(seed, s)``, so a resumed run
sees the same samples as an uninterrupted one. Resumable: ``--out`` keeps ``state.pt``
(weights, optimiser, step, loss history), written every ``--save_steps``; a second run with
the same ``--out`` continues from it. The finished base is ``OUT/model`` (safetensors and
processor), with ``manifest.json`` (checksum, command, seed, steps, tokens, wall time,
hardware) and ``loss_curve.png`` beside the weights.

Loss is language modelling over every text token (vision tokens excepted), as in real
pretraining: a corpus value that appears twice (a name in a record, a key in a relay) is a
copy target wherever it recurs, which gives copying far more signal per step than the
assistant turns alone (a first run trained on assistant tokens only had not started to copy
after 250 steps). Progress is measured where it matters, on the assistant turns.

    python -m deepeyes.models.pretrain --out outputs/pretrain --steps 3000
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import random
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from deepeyes import wire
from deepeyes.cli import LoggingArguments, parse_cli
from deepeyes.models import pretrain_corpus
from deepeyes.models.tiny import TinyModelSpec, build_model, build_processor
from deepeyes.utils.hashing import file_sha256

logger = logging.getLogger(__name__)

#: Bumped whenever the corpus or the rendering changes what a seed produces.
CORPUS_VERSION = "8"
#: The default system turn Qwen's chat template adds when a conversation has none.
DEFAULT_SYSTEM = "You are a helpful assistant."
IGNORE_INDEX = -100
#: The only family the copy warm-up (``--copy_warmup_steps``) draws.
WARMUP_FAMILY = "digit_copy"


@dataclass(frozen=True)
class PretrainArguments:
    out: Path = field(default=Path("outputs/pretrain"), metadata={"help": "run folder: state.pt (resume) and model/ (weights, processor, manifest.json, loss_curve.png)"})
    steps: int = field(default=3000, metadata={"help": "optimiser steps"})
    batch_size: int = field(default=32, metadata={"help": "conversations per step"})
    micro_batch_tokens: int = field(default=2048, metadata={"help": "padded tokens per forward pass (gradients accumulate over a step's passes)"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak AdamW learning rate"})
    warmup_steps: int = field(default=100, metadata={"help": "linear warm-up steps"})
    copy_warmup_steps: int = field(
        default=0,
        metadata={"help": "first steps that draw only digit runs to copy (copying forms there within a few hundred steps; the mixture follows)"},
    )
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine decay ends at this fraction of the peak"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    image_share: float = field(default=0.25, metadata={"help": "share of conversations whose first user turn shows a (noise) image"})
    seed: int = field(default=0, metadata={"help": "seed of the corpus and of the initial weights (tiny.py's seed; with --init_from, of the corpus only)"})
    save_steps: int = field(default=100, metadata={"help": "write state.pt every this many steps"})
    eval_steps: int = field(default=100, metadata={"help": "measure held-out copying every this many steps"})
    eval_samples: int = field(default=128, metadata={"help": "held-out conversations per measurement (seed stream the training never draws)"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default)"})
    device: str = field(default="cpu", metadata={"help": "torch device, e.g. cpu or cuda"})
    resume: bool = field(default=True, metadata={"help": "continue from OUT/state.pt when present (--no_resume starts afresh)"})
    init_from: Path | None = field(
        default=None,
        metadata={
            "help": "start from the weights of this finished base (a model folder with manifest.json) instead of "
            "the seeded random ones: continued pretraining, e.g. after the corpus grew; its manifest becomes "
            "the parent in this run's manifest; an OUT/state.pt, when present, is resumed over it (default: random initialisation)"
        },
    )

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "micro_batch_tokens", "save_steps", "eval_steps", "eval_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.copy_warmup_steps < self.steps:
            raise ValueError(f"--copy_warmup_steps must be in [0, --steps), got {self.copy_warmup_steps}")
        if not 0.0 <= self.image_share <= 1.0:
            raise ValueError(f"--image_share must be in [0, 1], got {self.image_share}")


@dataclass
class Encoded:
    """One tokenised conversation: ids, labels (``IGNORE_INDEX`` on vision tokens), which
    positions are assistant replies (content and ``<|im_end|>``), and the image if any."""

    input_ids: list[int]
    labels: list[int]
    assistant: list[bool]
    image: Any | None = None


class ConversationEncoder:
    """Renders corpus conversations exactly as the model's chat template does, with labels.

    Rendering piece by piece (rather than templating the whole text and searching it) is
    what gives exact assistant spans; ``tests/models/test_pretrain.py`` checks the pieces join
    to the template's own text.
    """

    def __init__(self, processor) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.merge = processor.image_processor.merge_size
        self.vision_ids = frozenset(self.tokenizer.convert_tokens_to_ids([wire.VISION_START, wire.IMAGE_PAD, wire.VISION_END]))

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def render_text(self, messages: list[dict[str, str]], image_tokens: int = 1) -> str:
        """The template's text for ``messages`` (``image_tokens`` image pads where the image is)."""
        return "".join(piece for piece, _ in self._pieces(messages, image_tokens))

    def _pieces(self, messages: list[dict[str, str]], image_tokens: int) -> list[tuple[str, bool]]:
        if not messages or messages[0]["role"] != "system":
            messages = [{"role": "system", "content": DEFAULT_SYSTEM}, *messages]
        pieces: list[tuple[str, bool]] = []
        for message in messages:
            content = message["content"]
            if content.startswith(pretrain_corpus.IMAGE):
                vision = wire.VISION_START + wire.IMAGE_PAD * image_tokens + wire.VISION_END
                content = vision + content[len(pretrain_corpus.IMAGE) :]
            if message["role"] == "assistant":
                pieces += [(f"{wire.IM_START}assistant\n", False), (content + wire.IM_END, True), ("\n", False)]
            else:
                pieces.append((f"{wire.IM_START}{message['role']}\n{content}{wire.IM_END}\n", False))
        return pieces

    def encode(self, messages: list[dict[str, str]], rng: random.Random) -> Encoded:
        image = None
        image_tokens = 0
        if any(m["content"].startswith(pretrain_corpus.IMAGE) for m in messages):
            image = noise_image(rng)
            grid = self.processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
            image_tokens = int(grid.prod()) // (self.merge**2)
        input_ids: list[int] = []
        assistant: list[bool] = []
        for text, reply in self._pieces(messages, image_tokens):
            ids = self._ids(text)
            input_ids += ids
            assistant += [reply] * len(ids)
        labels = [IGNORE_INDEX if token in self.vision_ids else token for token in input_ids]
        return Encoded(input_ids, labels, assistant, image)


def noise_image(rng: random.Random):
    """A random picture (blocky noise on a random tint) of a random size the processor accepts."""
    import numpy as np
    from PIL import Image

    side = rng.choice((56, 84, 112, 168, 224))
    other = rng.choice((56, 84, 112, 168, 224))
    generator = np.random.default_rng(rng.randrange(2**32))
    blocks = generator.integers(0, 256, size=(side // 14, other // 14, 3), dtype=np.uint8)
    pixels = np.kron(blocks, np.ones((14, 14, 1), dtype=np.uint8))
    return Image.fromarray(pixels)


def step_rng(seed: int, stream: str, step: int, index: int) -> random.Random:
    """The generator of one conversation: a pure function of its coordinates (resumable runs)."""
    digest = hashlib.sha256(f"{seed}/{stream}/{step}/{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def make_batch(
    encoder: ConversationEncoder, seed: int, stream: str, step: int, size: int, image_share: float, warmup: bool = False
) -> list[tuple[Encoded, str]]:
    """Conversations ``index = 0..size-1`` of ``step`` in ``stream``: the copy warm-up's digit
    runs (``WARMUP_FAMILY``) when ``warmup``, else the mixture."""
    batch = []
    for index in range(size):
        rng = step_rng(seed, stream, step, index)
        sample = pretrain_corpus.sample(rng, image_share, WARMUP_FAMILY if warmup else None)
        batch.append((encoder.encode(sample.messages, rng), sample.family))
    return batch


def collate(encoder: ConversationEncoder, batch: list[Encoded], device: str) -> dict[str, Any]:
    """Right-padded tensors; pixel values and grids of the images in batch order."""
    import torch

    length = max(len(e.input_ids) for e in batch)
    pad = encoder.tokenizer.pad_token_id
    input_ids = torch.full((len(batch), length), pad, dtype=torch.long)
    labels = torch.full((len(batch), length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(batch), length), dtype=torch.long)
    for row, encoded in enumerate(batch):
        n = len(encoded.input_ids)
        input_ids[row, :n] = torch.tensor(encoded.input_ids)
        labels[row, :n] = torch.tensor(encoded.labels)
        attention[row, :n] = 1
    inputs: dict[str, Any] = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
    images = [e.image for e in batch if e.image is not None]
    if images:
        vision = encoder.processor.image_processor(images=images, return_tensors="pt")
        inputs["pixel_values"] = vision["pixel_values"]
        inputs["image_grid_thw"] = vision["image_grid_thw"]
    return {k: v.to(device) for k, v in inputs.items()}


def micro_batches(batch: list[Encoded], max_tokens: int) -> list[list[Encoded]]:
    """Length-sorted groups of at most ``max_tokens`` padded tokens (at least one conversation
    each): sorting first keeps padding small, which on a CPU is most of the saving."""
    ordered = sorted(batch, key=lambda e: len(e.input_ids))
    groups: list[list[Encoded]] = []
    for encoded in ordered:
        if groups and len(encoded.input_ids) * (len(groups[-1]) + 1) <= max_tokens:
            groups[-1].append(encoded)
        else:
            groups.append([encoded])
    return groups


def learning_rate_at(step: int, args: PretrainArguments) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak at ``args.steps``."""
    import math

    if step < args.warmup_steps:
        return args.learning_rate * (step + 1) / args.warmup_steps
    progress = min(1.0, (step - args.warmup_steps) / max(1, args.steps - args.warmup_steps))
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return args.learning_rate * (args.min_lr_ratio + (1 - args.min_lr_ratio) * cosine)


def evaluate(model, encoder: ConversationEncoder, args: PretrainArguments) -> dict[str, float]:
    """Held-out exact match: the share of conversations whose every assistant token is the
    model's argmax under teacher forcing (what greedy decoding would reproduce), per family."""
    import torch

    model.eval()
    per_family: dict[str, list[int]] = {}
    chunk = 16
    with torch.inference_mode():
        for start in range(0, args.eval_samples, chunk):
            items = make_batch(encoder, args.seed, "heldout", start, min(chunk, args.eval_samples - start), args.image_share)
            inputs = collate(encoder, [e for e, _ in items], args.device)
            inputs.pop("labels")
            predicted = model(**inputs).logits[:, :-1].argmax(-1)
            for row, (encoded, family) in enumerate(items):
                n = len(encoded.input_ids)
                targets = torch.tensor(encoded.input_ids[1:n], device=predicted.device)
                scored = torch.tensor(encoded.assistant[1:n], device=predicted.device)
                correct = bool(((predicted[row, : n - 1] == targets) | ~scored).all())
                per_family.setdefault(family, []).append(int(correct))
    model.train()
    scores = {family: sum(v) / len(v) for family, v in sorted(per_family.items())}
    scores["all"] = sum(sum(v) for v in per_family.values()) / sum(len(v) for v in per_family.values())
    return scores


def train(args: PretrainArguments, argv: list[str]) -> Path:
    """Run (or resume) pretraining; returns the finished model folder ``OUT/model``."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = TinyModelSpec(seed=args.seed)
    processor = build_processor(spec)
    encoder = ConversationEncoder(processor)
    model = build_model(spec, processor.tokenizer).to(args.device)
    parent = _load_parent(model, args.init_from) if args.init_from else None
    model.train()
    # The vision tower and projector stay as initialised (frozen in every SFT recipe too):
    # pretraining is about the language side; the noise images only teach the decoder that
    # vision tokens come before the question.
    for parameter in model.model.visual.parameters():
        parameter.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, betas=(0.9, 0.95), weight_decay=args.weight_decay)

    args.out.mkdir(parents=True, exist_ok=True)
    state_path = args.out / "state.pt"
    history: dict[str, Any] = {"loss": [], "eval": [], "tokens": 0, "trained_tokens": 0, "wall_s": 0.0}
    start_step = 0
    if args.resume and state_path.is_file():
        state = torch.load(state_path, map_location=args.device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step, history = state["step"], state["history"]
        logger.info("resuming %s at step %d of %d", state_path, start_step, args.steps)

    def save(step: int) -> None:
        temporary = state_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "history": history}, temporary)
        os.replace(temporary, state_path)  # atomic: a crash mid-write leaves the previous state

    started = time.perf_counter() - history["wall_s"]
    bar = tqdm(range(start_step, args.steps), initial=start_step, total=args.steps, desc="pretraining", dynamic_ncols=True)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, args)
        warmup = step < args.copy_warmup_steps
        batch = [e for e, _ in make_batch(encoder, args.seed, "train", step, args.batch_size, args.image_share, warmup)]
        trained_tokens = sum(sum(1 for label in e.labels[1:] if label != IGNORE_INDEX) for e in batch)
        step_loss = 0.0
        for micro in micro_batches(batch, args.micro_batch_tokens):
            inputs = collate(encoder, micro, args.device)
            micro_tokens = int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum())
            # HF's loss is the mean over this micro-batch's tokens: re-weight to the batch's token mean.
            loss = model(**inputs).loss * (micro_tokens / trained_tokens)
            loss.backward()
            step_loss += loss.item()
            history["tokens"] += int(inputs["attention_mask"].sum())
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history["loss"].append(round(step_loss, 5))
        history["trained_tokens"] += trained_tokens
        done = step + 1
        if done % args.eval_steps == 0 or done == args.steps:
            scores = evaluate(model, encoder, args)
            history["eval"].append({"step": done, **scores})
            logger.info("step %d: loss %.3f, held-out exact match %.3f", done, step_loss, scores["all"])
        history["wall_s"] = time.perf_counter() - started
        if done % args.save_steps == 0 or done == args.steps:
            save(done)
        bar.set_postfix(loss=f"{step_loss:.3f}", exact=f"{history['eval'][-1]['all']:.2f}" if history["eval"] else "-")
    bar.close()
    return export(model, processor, args, history, argv, parent)


def _load_parent(model, folder: Path) -> dict[str, Any]:
    """Load a finished base's weights into ``model``; returns its manifest.

    Raises:
        FileNotFoundError: ``folder`` has no ``manifest.json`` or ``model.safetensors``.
    """
    manifest_path, weights = folder / "manifest.json", folder / "model.safetensors"
    for path in (manifest_path, weights):
        if not path.is_file():
            raise FileNotFoundError(f"--init_from {folder}: no {path.name} (expected a base written by this script)")
    # Through from_pretrained, which maps the saved names onto the module's (as SFT loads it).
    model.load_state_dict(type(model).from_pretrained(folder).state_dict(), strict=True)
    logger.info("starting from the weights of %s", folder)
    return json.loads(manifest_path.read_text(encoding="utf-8"))


def export(model, processor, args: PretrainArguments, history: dict[str, Any], argv: list[str], parent: dict[str, Any] | None = None) -> Path:
    """Write ``OUT/model`` (weights, processor, manifest, loss curve).

    A continued run (``--init_from``) nests its parent's manifest under ``"parent"`` and adds
    ``total_steps``, ``total_tokens_seen`` and ``total_wall_time_s`` over the whole chain, so
    the commands that reproduce the weights are all in one file."""
    import torch

    final = args.out / "model"
    final.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(final)
    processor.save_pretrained(final)
    plot_curve(history, final / "loss_curve.png", args.copy_warmup_steps)
    weights = final / "model.safetensors"
    manifest = {
        "model": "tiny Qwen2.5-VL base, pretrained by deepeyes.models.pretrain",
        "files": {"model.safetensors": file_sha256(weights)},
        "command": "python -m deepeyes.models.pretrain " + shlex.join(argv),
        "arguments": {k: str(v) for k, v in asdict(args).items()},
        "corpus_version": CORPUS_VERSION,
        "seed": args.seed,
        "steps": len(history["loss"]),
        "tokens_seen": history["tokens"],
        "trained_tokens": history["trained_tokens"],
        "wall_time_s": round(history["wall_s"], 1),
        "hardware": {
            "device": args.device,
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "final_loss": history["loss"][-1] if history["loss"] else None,
        "heldout_exact_match": history["eval"][-1] if history["eval"] else None,
        "parameters": model.num_parameters(),
    }
    if parent is not None:
        manifest["parent"] = parent
        for total, own in (("total_steps", "steps"), ("total_tokens_seen", "tokens_seen"), ("total_wall_time_s", "wall_time_s")):
            manifest[total] = round(manifest[own] + parent.get(total, parent[own]), 1)
    (final / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (final / "pretrain_history.json").write_text(json.dumps(history) + "\n", encoding="utf-8")
    logger.info("base model written to %s", final)
    return final


def plot_curve(history: dict[str, Any], path: Path, copy_warmup_steps: int = 0) -> None:
    """Training loss (smoothed) and held-out exact match against the step, with the end of
    the copy warm-up marked (the loss jumps there: the mixture is a new distribution)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = history["loss"]
    window = 25
    smooth = [sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1]) for i in range(len(losses))]
    figure, loss_axis = plt.subplots(figsize=(7, 4), dpi=110)
    loss_axis.plot(range(1, len(losses) + 1), losses, color="#bbbbbb", linewidth=0.6, label="loss")
    loss_axis.plot(range(1, len(smooth) + 1), smooth, color="#1f77b4", linewidth=1.6, label=f"loss ({window}-step mean)")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("language-modelling loss")
    loss_axis.set_yscale("log")
    if copy_warmup_steps:
        loss_axis.axvline(copy_warmup_steps, color="#555555", linestyle="--", linewidth=0.9, label="copy warm-up ends")
    if history["eval"]:
        exact_axis = loss_axis.twinx()
        exact_axis.plot([e["step"] for e in history["eval"]], [e["all"] for e in history["eval"]], color="#d62728", marker="o", markersize=3, label="held-out exact match")
        exact_axis.set_ylabel("held-out exact match", color="#d62728")
        exact_axis.set_ylim(0, 1)
    loss_axis.set_title("Pretraining the tiny Qwen2.5-VL base")
    figure.legend(loc="upper center", bbox_to_anchor=(0.5, 0.9), fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, logging_args = parse_cli(
        [PretrainArguments, LoggingArguments],
        argv,
        prog="python -m deepeyes.models.pretrain",
        description=(
            "Pretrain the tiny Qwen2.5-VL on the project's generic synthetic instruction corpus "
            "(copying, reading values, picking items, formatting; no evaluation task, tag or value). "
            "Seeded and resumable; writes OUT/model with manifest.json and loss_curve.png."
        ),
    )
    logging_args.configure()
    try:
        final = train(args, argv)
    except FileNotFoundError as exc:  # a wrong --init_from: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"pretrained base written to {final}")


if __name__ == "__main__":
    main()
