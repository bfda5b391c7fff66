"""Copy diagnostic: does a cold-start model still copy, and does it copy values into its tool calls?

Held-out accuracy after SFT can be 0-5 % for two different reasons: the model never learnt to
copy values from its context, or it had learnt (the pretrained base copies digit runs at
96-98 %) and fine-tuning overwrote it. This script tells them apart, under teacher forcing
(the share of positions where the model's argmax is the recorded token, i.e. what greedy
decoding would write given a correct prefix):

1. **Copy retention** on the pretraining corpus's own held-out stream: ``digit_copy`` (digit
   runs written back) and the whole mixture, exact match and token accuracy.
2. **Held-out answers copied**: the share of the evaluation split's answers, per category,
   that the model writes back exactly after ``Copy:`` (a skill check only, no task: a base
   that cannot write an answer's tokens at all cannot copy it out of a tool result either).
3. **Value tokens in SFT replies**, per task, on SFT records generated with a seed training
   never used: all assistant tokens, digits that start a number (the model must find *which*
   number: retrieval by role) and digits that continue one (plain copying once the start is
   found), and whole-reply exact match.

    python benchmarks/sft_copy_diag.py --model outputs/quickstart/cold_start
    python benchmarks/sft_copy_diag.py --model data/models/tiny-qwen2.5-vl-base --records 60

Figures are printed, not asserted. ``docs/pretrain.md`` has the table this produced for the
learning-rate sweep.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration  # noqa: E402

from deepeyes import wire  # noqa: E402
from deepeyes.models import pretrain  # noqa: E402

#: Never used by the project's data, tests or defaults (the SFT split uses seed 0).
DIAG_SEED = 77
COPY_CONVERSATIONS = 48
COLUMNS = ("tokens", "digit_first", "digit_cont", "exact")


def copy_retention(model, processor) -> dict[str, tuple[float, float]]:
    """``family -> (exact match, token accuracy)`` on the pretraining held-out stream."""
    encoder = pretrain.ConversationEncoder(processor)
    results = {}
    for family, warmup in (("digit_copy", True), ("mixture", False)):
        exact = total = right = scored_total = 0
        for start in range(0, COPY_CONVERSATIONS, 16):
            items = pretrain.make_batch(encoder, 0, "heldout", 1000 + start, 16, 0.5, warmup=warmup)
            inputs = pretrain.collate(encoder, [encoded for encoded, _ in items], "cpu")
            inputs.pop("labels")
            with torch.inference_mode():
                predicted = model(**inputs).logits[:, :-1].argmax(-1)
            for row, (encoded, _) in enumerate(items):
                n = len(encoded.input_ids)
                correct = predicted[row, : n - 1] == torch.tensor(encoded.input_ids[1:n])
                scored = torch.tensor(encoded.assistant[1:n])
                exact += int((correct | ~scored).all())
                total += 1
                right += int((correct & scored).sum())
                scored_total += int(scored.sum())
        results[family] = (exact / total, right / scored_total)
    return results


def answer_copying(model, processor, eval_dir: Path) -> dict[str, float]:
    """``category -> share`` of the held-out answers in ``eval_dir``'s TSVs written back
    exactly (teacher forcing) after ``Copy:``; grounding boxes are left out."""
    import pandas as pd

    encoder = pretrain.ConversationEncoder(processor)
    outcomes: dict[str, list[int]] = defaultdict(list)
    for tsv in sorted(eval_dir.glob("*.tsv")):
        frame = pd.read_csv(tsv, sep="\t", dtype=str, usecols=["answer", "category"])
        for answer, category in zip(frame["answer"], frame["category"]):
            if category == "grounding":
                continue
            encoded = encoder.encode([{"role": "user", "content": f"Copy: {answer}"}, {"role": "assistant", "content": answer}], random.Random(0))
            inputs = pretrain.collate(encoder, [encoded], "cpu")
            inputs.pop("labels")
            with torch.inference_mode():
                predicted = model(**inputs).logits[0, :-1].argmax(-1)
            correct = predicted == torch.tensor(encoded.input_ids[1:])
            outcomes[category].append(int((correct | ~torch.tensor(encoded.assistant[1:])).all()))
    return {category: sum(v) / len(v) for category, v in sorted(outcomes.items())}


def sft_records(records: int, workdir: Path) -> tuple[list[dict], Path]:
    """ShareGPT records (with their task) generated with :data:`DIAG_SEED`, and their image root."""
    subprocess.run(
        [sys.executable, "-m", "deepeyes.data.synth", "--out", str(workdir), "--seed", str(DIAG_SEED), "--sft", str(records),
         "--rl_train", "4", "--rl_val", "2", "--eval_visual", "4", "--eval_search", "4", "--no_progress"],
        check=True, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
    )
    rows = json.loads((workdir / "sft" / "sharegpt.json").read_text(encoding="utf-8"))
    seeds = [json.loads(line) for line in (workdir / "sft" / "seed.jsonl").read_text(encoding="utf-8").splitlines()]
    for row, seed in zip(rows, seeds):
        row["task"] = seed["task"]
    random.Random(0).shuffle(rows)
    return rows, workdir


def _encode(record: dict, processor, image_root: Path) -> tuple[dict, list[bool]]:
    """The record rendered as the chat template renders it, with its real images, and which
    positions are assistant reply tokens."""
    images = [Image.open(image_root / path).convert("RGB") for path in record["images"]]
    vision = processor.image_processor(images=images, return_tensors="pt") if images else None
    merge = processor.image_processor.merge_size
    counts = iter([int(grid.prod()) // merge**2 for grid in vision["image_grid_thw"]] if vision else [])
    ids: list[int] = []
    assistant: list[bool] = []
    for message in record["messages"]:
        content = re.sub(
            re.escape(wire.IMAGE_PLACEHOLDER),
            lambda _: wire.VISION_START + wire.IMAGE_PAD * next(counts) + wire.VISION_END,
            message["content"],
        )
        if message["role"] == "assistant":
            pieces = [(f"{wire.IM_START}assistant\n", False), (content + wire.IM_END, True), ("\n", False)]
        else:
            pieces = [(f"{wire.IM_START}{message['role']}\n{content}{wire.IM_END}\n", False)]
        for text, is_reply in pieces:
            piece_ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += piece_ids
            assistant += [is_reply] * len(piece_ids)
    inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    if vision:
        inputs.update(pixel_values=vision["pixel_values"], image_grid_thw=vision["image_grid_thw"])
    return inputs, assistant


def value_tokens(model, processor, rows: list[dict], image_root: Path, limit: int) -> dict[str, dict[str, float]]:
    """``task -> column -> share`` for the columns of :data:`COLUMNS`."""
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for record in rows[:limit]:
        inputs, assistant = _encode(record, processor, image_root)
        ids = inputs["input_ids"][0].tolist()
        with torch.inference_mode():
            predicted = model(**inputs).logits[0, :-1].argmax(-1).tolist()
        tokens = processor.tokenizer.convert_ids_to_tokens(ids)
        whole = True
        column = counts[record["task"]]
        for i in range(1, len(ids)):
            if not assistant[i]:
                continue
            correct = predicted[i - 1] == ids[i]
            whole &= correct
            for name in ("tokens", ("digit_cont" if tokens[i - 1].isdigit() else "digit_first") if tokens[i].isdigit() else None):
                if name:
                    column[name][0] += int(correct)
                    column[name][1] += 1
        column["exact"][0] += int(whole)
        column["exact"][1] += 1
    return {task: {name: right / max(1, seen) for name, (right, seen) in columns.items()} for task, columns in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model directory (a cold-start OUTPUT_DIR, or the base)")
    parser.add_argument("--records", type=int, default=100, help="SFT records generated and scored (default: 100)")
    parser.add_argument("--eval_dir", type=Path, default=REPO_ROOT / "data" / "sample" / "eval", help="held-out TSVs whose answers are copied (default: data/sample/eval)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1; see docs/pretrain.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    processor = AutoProcessor.from_pretrained(args.model)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.model).eval()
    print(f"model: {args.model}")
    for family, (exact, token) in copy_retention(model, processor).items():
        print(f"pretraining held-out {family:10s}  exact {exact:6.1%}  tokens {token:6.1%}")
    if args.eval_dir.is_dir():
        for category, share in answer_copying(model, processor, args.eval_dir).items():
            print(f"held-out answers copied  {category:14s} {share:6.1%}")
    with tempfile.TemporaryDirectory(prefix="deepeyes-copy-diag-") as tmp:
        rows, image_root = sft_records(args.records, Path(tmp))
        table = value_tokens(model, processor, rows, image_root, args.records)
    print(f"\n{'task':14s}" + "".join(f"{name:>13s}" for name in COLUMNS))
    for task, columns in sorted(table.items()):
        print(f"{task:14s}" + "".join(f"{columns.get(name, 0.0):13.2f}" for name in COLUMNS))


if __name__ == "__main__":
    main()
