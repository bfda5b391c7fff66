"""Build the tiny offline Qwen2.5-VL used by every CPU default.

Why a real (random) Qwen2.5-VL rather than a toy model: SFT, RL, evaluation and the demo
then run the exact code paths a 7B checkpoint takes (processor, chat template, vision
tower, M-RoPE, LLaMA-Factory's ``qwen2_vl`` template, peft LoRA), just small enough for a
laptop CPU. Nothing is downloaded: the byte-level BPE tokenizer is trained here on a
bundled corpus, the weights come from a seeded initialisation, and two builds give
byte-identical files.

Sizes (``TinyModelSpec`` defaults): text decoder hidden 256, 4 layers, 8 heads (4 KV
heads), MLP 768, vocabulary at most 2k (~1.4k with the bundled corpus); vision tower depth 2, hidden 64, patch 14, merge 2;
images resized to at most 224×224 pixels (64 visual tokens).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from deepeyes import wire
from deepeyes.cli import LoggingArguments, parse_cli
from deepeyes.paths import TINY_MODEL_DIR
from deepeyes.prompts import system_prompt

logger = logging.getLogger(__name__)

CORPUS_PATH = Path(__file__).with_name("tokenizer_corpus.txt")
CHAT_TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")

#: Qwen2.5-VL's special tokens, in Qwen's id order (spelled in :mod:`deepeyes.wire.tokens`).
QWEN_SPECIAL_TOKENS: tuple[str, ...] = wire.QWEN_SPECIAL_TOKENS
#: Wire-format tags get a token each (not "special": they must survive decoding with
#: ``skip_special_tokens=True``), which makes the format cheap for a tiny model to learn.
WIRE_TOKENS: tuple[str, ...] = (
    wire.TOOL_CALL_OPEN,
    wire.TOOL_CALL_CLOSE,
    wire.THINK_OPEN,
    wire.THINK_CLOSE,
    wire.CODE_OPEN,
    wire.CODE_CLOSE,
    wire.ANSWER_OPEN,
    wire.ANSWER_CLOSE,
    wire.TOOL_RESPONSE_OPEN,
    wire.TOOL_RESPONSE_CLOSE,
    "```python",
    "```",
)


@dataclass(frozen=True)
class TinyModelSpec:
    vocab_size: int = 2048
    #: Hidden 256 rather than 128: on the curriculum SFT the wider decoder reached 94 % valid
    #: actions and the right tool for 92 % of tool-needing questions where hidden 128 reached
    #: 79 % and 68 % (docs/cold_start.md), at ~2x the CPU time per step (SFT 375 s against 183 s).
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    intermediate_size: int = 768
    max_position_embeddings: int = 8192
    vision_depth: int = 2
    vision_hidden_size: int = 64
    vision_heads: int = 2
    vision_intermediate_size: int = 128
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    min_pixels: int = 56 * 56
    max_pixels: int = 224 * 224
    seed: int = 0
    mrope_section: tuple[int, ...] = field(default=(4, 6, 6))


def train_tokenizer(spec: TinyModelSpec):
    """Byte-level BPE on the bundled corpus (plus the system prompt), Qwen special tokens first.

    Digits are split one per token, as Qwen2's own pre-tokenizer does: a number is then the same
    tokens wherever it appears (``51`` in a question, in code, in printed output, in the answer),
    so copying it is a token-for-token copy. With merged digits ``4743`` became ``4|74|3``
    in one place and ``51`` one token here but ``Ġ51`` there, which a tiny model cannot learn
    to copy.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        min_frequency=1,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [CORPUS_PATH.read_text(encoding="utf-8"), system_prompt()]
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.add_tokens(list(WIRE_TOKENS))
    return tokenizer


def build_processor(spec: TinyModelSpec):
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(spec),
        bos_token=None,
        eos_token=wire.IM_END,
        pad_token=wire.END_OF_TEXT,
        unk_token=None,
        model_max_length=spec.max_position_embeddings,
        padding_side="left",
    )
    chat_template = CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")
    tokenizer.chat_template = chat_template
    vision = {
        "min_pixels": spec.min_pixels,
        "max_pixels": spec.max_pixels,
        "patch_size": spec.patch_size,
        "temporal_patch_size": spec.temporal_patch_size,
        "merge_size": spec.spatial_merge_size,
    }
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**vision),
        video_processor=Qwen2VLVideoProcessor(**vision),
        tokenizer=tokenizer,
        chat_template=chat_template,
    )


def build_model(spec: TinyModelSpec, tokenizer):
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in QWEN_SPECIAL_TOKENS}
    head_dim = spec.hidden_size // spec.num_attention_heads
    if sum(spec.mrope_section) * 2 != head_dim:
        raise ValueError(f"mrope_section {spec.mrope_section} must sum to head_dim/2 = {head_dim // 2}")
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": spec.hidden_size,
            "num_hidden_layers": spec.num_hidden_layers,
            "num_attention_heads": spec.num_attention_heads,
            "num_key_value_heads": spec.num_key_value_heads,
            "intermediate_size": spec.intermediate_size,
            "max_position_embeddings": spec.max_position_embeddings,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": list(spec.mrope_section)},
            "tie_word_embeddings": True,
            "bos_token_id": ids[wire.END_OF_TEXT],
            "eos_token_id": ids[wire.IM_END],
            "pad_token_id": ids[wire.END_OF_TEXT],
        },
        vision_config={
            "depth": spec.vision_depth,
            "hidden_size": spec.vision_hidden_size,
            "num_heads": spec.vision_heads,
            "intermediate_size": spec.vision_intermediate_size,
            "out_hidden_size": spec.hidden_size,
            "patch_size": spec.patch_size,
            "spatial_merge_size": spec.spatial_merge_size,
            "temporal_patch_size": spec.temporal_patch_size,
            "window_size": spec.patch_size * spec.spatial_merge_size * 4,
            "fullatt_block_indexes": [spec.vision_depth - 1],
        },
        image_token_id=ids[wire.IMAGE_PAD],
        video_token_id=ids[wire.VIDEO_PAD],
        vision_start_token_id=ids[wire.VISION_START],
        vision_end_token_id=ids[wire.VISION_END],
        tie_word_embeddings=True,
    )
    torch.manual_seed(spec.seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [ids[wire.IM_END], ids[wire.END_OF_TEXT]]
    model.generation_config.pad_token_id = ids[wire.END_OF_TEXT]
    model.generation_config.do_sample = False
    return model


def build(out: Path, spec: TinyModelSpec = TinyModelSpec()) -> Path:
    """Write processor + model to ``out`` (replacing what is there) and return ``out``."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    processor = build_processor(spec)
    model = build_model(spec, processor.tokenizer)
    processor.save_pretrained(out)
    model.save_pretrained(out)
    (out / "tiny_spec.json").write_text(json.dumps(spec.__dict__, indent=2, sort_keys=True, default=list) + "\n")
    logger.info("tiny Qwen2.5-VL with %d parameters written to %s", model.num_parameters(), out)
    return out


@dataclass(frozen=True)
class TinyBuildArguments:
    out: Path = field(default=TINY_MODEL_DIR, metadata={"help": "output directory (replaced if present)"})
    seed: int = field(default=0, metadata={"help": "weight initialisation seed"})


def main(argv: list[str] | None = None) -> None:
    args, logging_args = parse_cli(
        [TinyBuildArguments, LoggingArguments],
        argv,
        prog="python -m deepeyes.models.tiny",
        description="Build the tiny random Qwen2.5-VL (model + processor) fully offline and deterministically.",
    )
    logging.basicConfig(level=logging_args.log_level, format="%(message)s")
    build(args.out, TinyModelSpec(seed=args.seed))
    print(f"tiny model written to {args.out}")


if __name__ == "__main__":
    main()
