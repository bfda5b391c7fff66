"""How often a model's first turn parses into a valid action: the cold-start SFT's yardstick.

Cold-start SFT exists to teach the wire format (DESIGN §4) before RL. This check asks the
model for the first assistant turn of N held-in conversations (their system prompt, question
and image) and parses each reply with the shared action parser, the one the agent loop
uses, so "valid" here means exactly "the agent loop would run this action".
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from deepeyes.chat import Message
from deepeyes.cli import parse_cli
from deepeyes.data.sft_readers import InputError
from deepeyes.data.sft_sample import SftSample
from deepeyes.data.to_llamafactory import load_samples
from deepeyes.paths import resolve_path
from deepeyes.policies.base import Generation, Policy
from deepeyes.wire import IMAGE_PLACEHOLDER, parse_action


@dataclass
class FormatCheckResult:
    prompts: int
    valid: int
    by_kind: dict[str, int]
    #: A few invalid replies with the parser's reason, for a human to look at.
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def valid_share(self) -> float:
        return self.valid / self.prompts if self.prompts else 0.0


def held_in_prompts(samples: list[SftSample], count: int) -> list[tuple[str, list[Message]]]:
    """The conversation up to each sample's first assistant turn, for ``count`` samples spread
    evenly over the data (the files are often grouped by task)."""
    answerable = [s for s in samples if any(m["role"] == "assistant" for m in s.messages)]
    chosen = [answerable[i * len(answerable) // count] for i in range(count)] if count < len(answerable) else answerable
    prompts = []
    for sample in chosen:
        first_reply = next(i for i, m in enumerate(sample.messages) if m["role"] == "assistant")
        images = iter(sample.images)
        messages = []
        for message in sample.messages[:first_reply]:
            paths = [next(images) for _ in range(message["content"].count(IMAGE_PLACEHOLDER))]
            messages.append(Message(message["role"], message["content"], [_open_rgb(p) for p in paths]))
        prompts.append((sample.id, messages))
    return prompts


def _open_rgb(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _generate(policy: Policy, conversations: list[list[Message]]) -> list[Generation]:
    batched = getattr(policy, "generate_batch", None)  # HFPolicy batches; any Policy works one by one
    return batched(conversations) if batched else [policy.generate(messages) for messages in conversations]


def check(policy: Policy, prompts: list[tuple[str, list[Message]]], batch_size: int = 8, failures_kept: int = 5) -> FormatCheckResult:
    """Generate the next turn of every prompt with ``policy`` and parse each reply."""
    kinds: Counter[str] = Counter()
    failures: list[dict[str, str]] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        generations = _generate(policy, [messages for _, messages in batch])
        for (sample_id, _), generation in zip(batch, generations, strict=True):
            action = parse_action(generation.text)
            kinds[action.kind] += 1
            if action.kind == "invalid" and len(failures) < failures_kept:
                failures.append({"id": sample_id, "reason": action.reason or "", "text": generation.text[:300]})
    valid = sum(count for kind, count in kinds.items() if kind != "invalid")
    return FormatCheckResult(prompts=len(prompts), valid=valid, by_kind=dict(sorted(kinds.items())), failures=failures)


@dataclass(frozen=True)
class FormatCheckArguments:
    model_path: str = field(metadata={"help": "base model directory or hub id"})
    data: list[str] = field(
        metadata={"help": "SFT data in any format the converter reads (seed, ShareGPT, converted LLaMA-Factory JSON)"}
    )
    adapter_path: str | None = field(default=None, metadata={"help": "LoRA adapter directory (adapter_config.json) or hub id, optional"})
    image_root: str | None = field(default=None, metadata={"help": "base for relative image paths (default: each input's directory)"})
    num_prompts: int = field(default=32, metadata={"help": "how many held-in prompts"})
    max_samples: int | None = field(
        default=None,
        metadata={"help": "draw prompts from the first N samples only, as LLaMA-Factory's max_samples trains on the first N"},
    )
    max_new_tokens: int = field(
        default=768, metadata={"help": "generation budget per reply (the longest first turn of the sample data is ~580 tokens)"}
    )
    batch_size: int = field(default=8, metadata={"help": "prompts generated together"})
    max_pixels: int | None = field(default=None, metadata={"help": "image size limit at generation (default: the processor's)"})
    device: str = field(default="cpu", metadata={"help": "torch device"})
    out: str | None = field(default=None, metadata={"help": "also write the result as JSON here"})

    def __post_init__(self) -> None:
        if self.num_prompts < 1:
            raise ValueError("--num_prompts must be at least 1")


DESCRIPTION = (
    "Generate the first assistant turn for N held-in SFT prompts and report the share that parses into "
    "a valid action (code, search, image_search or answer) with the shared action parser."
)


def main(argv: Sequence[str] | None = None) -> int:
    (args,) = parse_cli(
        [FormatCheckArguments],
        argv,
        prog="python -m deepeyes.evaluation.format_check",
        description=DESCRIPTION,
        aliases={"--model": "model_path", "--adapter": "adapter_path"},
    )
    from deepeyes.policies.hf import HFPolicy

    with tempfile.TemporaryDirectory() as embedded:
        try:
            samples, _ = load_samples(
                [resolve_path(p) for p in args.data], resolve_path(args.image_root) if args.image_root else None, Path(embedded)
            )
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not samples:
            print(f"error: no usable samples in {', '.join(map(str, args.data))}", file=sys.stderr)
            return 2
        prompts = held_in_prompts(samples[: args.max_samples], args.num_prompts)
    policy = HFPolicy(
        args.model_path,  # a directory (relative to the current one) or a hub id: HFPolicy resolves both
        adapter_path=args.adapter_path,
        max_new_tokens=args.max_new_tokens,
        max_pixels=args.max_pixels,
        device=args.device,
    )
    result = check(policy, prompts, batch_size=args.batch_size)
    summary = {**asdict(result), "valid_share": result.valid_share}
    if args.out:
        out = resolve_path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"valid actions: {result.valid}/{result.prompts} = {result.valid_share:.1%}  {result.by_kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
