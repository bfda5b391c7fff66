"""Generation speed of the policy: ``model.generate`` (the path before issue 24) against the decode loop.

RL rollouts and every evaluation wait on :meth:`HFPolicy.generate_batch
<deepeyes.policies.hf.HFPolicy.generate_batch>`. This script times, on realistic prompts
(the bundled system prompt, one RL sample image and its question per row), interleaved
round by round so that the shared machine's drift hits every path alike:

- ``generate``: the previous path, ``model.generate`` with the settings the policy passed
  it (stop strings, pad id, the policy's logits processors), cut where the policy cut;
- ``generate N thr``: the same under the policy's ``generation_threads`` (one), to show
  how much of the gain is the thread count and how much the loop;
- ``decoder``: the policy as it is now (:class:`~deepeyes.policies.decoding.Decoder`,
  ``generation_threads`` threads);
- ``floor``: a bare cached decode loop of the same model with the decoder's model-level
  settings (threads, preallocated cache, grouped decode attention): prefill, then
  single-token forwards and argmax, nothing else, for as many steps as the decoder took.
  ``decoder / floor`` is what the loop's own work (processors, stop checks) costs.

Every path includes the processor (tokenising, image preprocessing). It prints completion
tokens per second (wall clock) per round, and the medians of those and of the CPU seconds
each path used (steadier than wall time on a shared machine: a path that waits for a busy
core does not count the wait), the speed-ups, and whether the greedy texts and token ids
of ``generate`` and ``decoder`` are identical, and, from one untimed run each, whether
every step's scores are (greedy text alone says little on a random model). With
``--temperature`` every path samples from the same seed. Figures are printed, never asserted.
Example::

    python benchmarks/generation_bench.py --batch_size 8 --max_new_tokens 96 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import torch

from deepeyes import wire
from deepeyes.chat import Message, all_images
from deepeyes.images import load_image, prepare_for_qwen
from deepeyes.paths import SAMPLE_DIR, TINY_MODEL_DIR
from deepeyes.policies.decoding import (
    decode_cache,
    grouped_decode_attention,
    intra_op_threads,
)
from deepeyes.policies.hf import HFPolicy, to_hf_messages, trim_turn
from deepeyes.prompts import system_prompt, user_prompt
from deepeyes.rl.data import load_prompts

Texts = list[tuple[str, list[int]]]
T = TypeVar("T")


def conversations(data: Path, count: int) -> list[list[Message]]:
    """The first ``count`` RL prompts as the agent loop opens them: system prompt, then image and question."""
    prompts = load_prompts(data)[:count]
    if len(prompts) < count:
        raise SystemExit(f"{data} has {len(prompts)} rows, fewer than --batch_size {count}")
    return [
        [Message("system", system_prompt()), Message("user", user_prompt(p.question, len(p.images)), [load_image(i) for i in p.images])]
        for p in prompts
    ]


def model_inputs(policy: HFPolicy, batch: list[list[Message]]) -> dict[str, torch.Tensor]:
    """The left-padded processor output for ``batch``, exactly as the policy builds it."""
    prompts = [policy.processor.apply_chat_template(to_hf_messages(m), add_generation_prompt=True, tokenize=False) for m in batch]
    images = [prepare_for_qwen(image, policy.min_pixels, policy.max_pixels) for m in batch for image in all_images(m)]
    policy.tokenizer.padding_side = "left"
    return dict(policy.processor(text=prompts, images=images or None, padding=True, return_tensors="pt"))


def previous_path(policy: HFPolicy, batch: list[list[Message]]) -> Texts:
    """``HFPolicy.generate_batch`` before the decode loop: ``model.generate``, then the cut from the left."""
    inputs = model_inputs(policy, batch)
    sampling = policy.config.temperature > 0
    with torch.no_grad():
        output = policy.model.generate(
            **inputs,
            max_new_tokens=policy.config.max_new_tokens,
            do_sample=sampling,
            temperature=policy.config.temperature if sampling else None,
            top_p=policy.config.top_p if sampling else None,
            top_k=None,
            stop_strings=list(wire.STOP_STRINGS),
            tokenizer=policy.tokenizer,
            pad_token_id=policy.tokenizer.pad_token_id,
            logits_processor=policy._logits_processors,
        )
    end_ids = policy._end_ids()
    results = []
    for row in output[:, inputs["input_ids"].shape[1] :].tolist():
        cut = len(row)
        for index, token in enumerate(row):
            piece = policy.tokenizer.decode(row[max(0, index - 8) : index + 1], skip_special_tokens=False)
            if token in end_ids or piece.rstrip().endswith(wire.STOP_STRINGS):
                cut = index + 1
                break
        results.append((trim_turn(policy.tokenizer.decode(row[:cut], skip_special_tokens=False)), row[:cut]))
    return results


def floor_path(policy: HFPolicy, batch: list[list[Message]], steps: int) -> int:
    """A bare cached decode loop: prefill, then ``steps - 1`` single-token forwards with argmax; returns tokens made."""
    inputs = model_inputs(policy, batch)
    mask = inputs["attention_mask"]
    positions = policy._decoder.prompt_positions(inputs)
    text_config = policy.model.config.get_text_config(decoder=True)
    cache = decode_cache(text_config, mask.shape[1] + steps)
    with torch.inference_mode():
        logits = policy.model(**inputs, position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
        with grouped_decode_attention(text_config, mask.device):
            for step in range(1, steps):
                tokens = logits[:, -1].argmax(-1, keepdim=True)
                mask = torch.cat([mask, torch.ones_like(tokens)], dim=-1)
                logits = policy.model(
                    input_ids=tokens, attention_mask=mask, position_ids=positions[..., -1:] + step,
                    past_key_values=cache, use_cache=True, logits_to_keep=1,
                ).logits
    return len(batch) * steps


def scores_identical(policy: HFPolicy, batch: list[list[Message]], seed: int, generate_threads: int | None) -> str:
    """Whether every step's processed scores of the decoder equal ``generate``'s bit for bit (one untimed run each).

    Text alone says little on a random model, whose greedy text is often one token repeated.
    ``generate_threads``: torch's intra-op threads for ``generate`` (``None``: torch's setting);
    a different thread count may split sums differently, so equality holds only at the
    decoder's own count.
    """
    def reference() -> Texts:
        with intra_op_threads(generate_threads):
            return previous_path(policy, batch)

    seen: dict[str, list[torch.Tensor]] = {"generate": [], "decoder": []}
    for name, run in (("generate", reference), ("decoder", lambda: policy.generate_batch(batch))):
        def record(input_ids: torch.Tensor, scores: torch.Tensor, steps: list[torch.Tensor] = seen[name]) -> torch.Tensor:
            steps.append(scores.clone())
            return scores

        policy._logits_processors.append(record)
        try:
            torch.manual_seed(seed)
            run()
        finally:
            policy._logits_processors.remove(record)
    if len(seen["generate"]) != len(seen["decoder"]):
        return f"no ({len(seen['generate'])} steps against {len(seen['decoder'])})"
    worst = max(float((a - b).nan_to_num(posinf=0, neginf=0).abs().max()) for a, b in zip(seen["generate"], seen["decoder"], strict=True))
    same = all(torch.equal(a, b) for a, b in zip(seen["generate"], seen["decoder"], strict=True))
    return f"{'yes' if same else 'no'} ({len(seen['decoder'])} steps, largest difference {worst:.3g})"


def timed(run: Callable[[], T]) -> tuple[float, float, T]:
    """Wall seconds and CPU seconds (this process, all threads) ``run`` took, and what it returned."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_path", default=str(TINY_MODEL_DIR), help="model directory or hub id")
    parser.add_argument("--data", default=str(SAMPLE_DIR / "rl" / "train.parquet"), help="RL parquet whose first rows are the prompts")
    parser.add_argument("--batch_size", type=int, default=8, help="conversations per generate_batch call")
    parser.add_argument("--max_new_tokens", type=int, default=96, help="new tokens per conversation at most")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each path once per round, after one warm-up round)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy; above 0 every path samples from the same seed each round")
    parser.add_argument("--top_p", type=float, default=1.0, help="nucleus sampling mass when --temperature > 0")
    parser.add_argument("--seed", type=int, default=0, help="torch seed set before each sampled path")
    parser.add_argument("--generation_threads", type=int, default=1, help="torch intra-op threads of the decoder, the floor and 'generate N thr' (HFPolicyConfig.generation_threads)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    policy = HFPolicy(args.model_path, max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                      generation_threads=args.generation_threads)
    threads = args.generation_threads
    batch = conversations(Path(args.data), args.batch_size)
    print(f"model {args.model_path}, batch {args.batch_size}, max_new_tokens {args.max_new_tokens}, temperature {args.temperature}, "
          f"torch threads {torch.get_num_threads()}, generation threads {threads}, cpus {os.cpu_count()}")
    print(f"step scores bit-identical to generate's at {threads} thread(s): {scores_identical(policy, batch, args.seed, threads)}; "
          f"at torch's {torch.get_num_threads()}: {scores_identical(policy, batch, args.seed, None)}")

    def old() -> Texts:
        torch.manual_seed(args.seed)
        return previous_path(policy, batch)

    def old_same_threads() -> Texts:
        torch.manual_seed(args.seed)
        with intra_op_threads(threads):
            return previous_path(policy, batch)

    def new() -> Texts:
        torch.manual_seed(args.seed)
        return [(g.text, g.token_ids or []) for g in policy.generate_batch(batch)]

    def floor(steps: int) -> int:
        with intra_op_threads(threads):
            return floor_path(policy, batch, steps)

    same = f"generate {threads} thr"
    names = ("generate", same, "decoder", "floor")
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    identical_text = identical_ids = 0
    for round_index in range(args.rounds + 1):  # round 0 warms up every path and is not counted
        load = os.getloadavg()[0]
        wall_old, cpu_old, before = timed(old)
        wall_same, cpu_same, _ = timed(old_same_threads)
        wall_new, cpu_new, after = timed(new)
        steps = max(len(ids) for _, ids in after)
        wall_floor, cpu_floor, floor_tokens = timed(partial(floor, steps))
        tokens_old = sum(len(ids) for _, ids in before)
        tokens_new = sum(len(ids) for _, ids in after)
        round_rates = dict(zip(names, (tokens_old / wall_old, tokens_old / wall_same, tokens_new / wall_new, floor_tokens / wall_floor), strict=True))
        same_text = sum(a[0] == b[0] for a, b in zip(before, after, strict=True))
        same_ids = sum(a[1] == b[1] for a, b in zip(before, after, strict=True))
        label = "warm-up" if round_index == 0 else f"round {round_index}"
        print(f"{label:8s} load {load:4.1f}  " + "  ".join(f"{name} {rate:6.0f} tok/s" for name, rate in round_rates.items())
              + f"  ({tokens_new} tokens; identical text {same_text}/{len(batch)}, ids {same_ids}/{len(batch)})")
        if round_index:
            for name, rate, seconds in zip(names, round_rates.values(), (cpu_old, cpu_same, cpu_new, cpu_floor), strict=True):
                rates[name].append(rate)
                cpu[name].append(seconds)
            identical_text += same_text
            identical_ids += same_ids
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print("median   " + "  ".join(f"{name} {rate:6.0f} tok/s" for name, rate in medians.items()))
    print("cpu s    " + "  ".join(f"{name} {statistics.median(cpu[name]):6.2f}" for name in names))
    print(f"speed-up decoder / generate: {medians['decoder'] / medians['generate']:.1f}x; "
          f"decoder / {same}: {medians['decoder'] / medians[same]:.2f}x; "
          f"decoder / floor: {medians['decoder'] / medians['floor']:.2f}")
    total = args.rounds * len(batch)
    kind = "sampled (same seed)" if args.temperature > 0 else "greedy"
    print(f"{kind} text identical to generate: {identical_text}/{total}; token ids identical: {identical_ids}/{total}")


if __name__ == "__main__":
    main()
