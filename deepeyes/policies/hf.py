"""Qwen2.5-VL through transformers (the tiny model, a local checkpoint, optionally with a LoRA adapter).

Images and videos go through the model's own processor: a video as its clip's frames
(:mod:`deepeyes.policies.video`) with the clip's sampled rate, from which the processor
derives ``video_grid_thw`` and ``second_per_grid_ts`` for Qwen2.5-VL's absolute-time M-RoPE.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessorList

from deepeyes import wire
from deepeyes.chat import Message, all_images, all_videos
from deepeyes.images import prepare_for_qwen
from deepeyes.policies.base import Generation, SamplingParams
from deepeyes.policies.decoding import Decoder, intra_op_threads
from deepeyes.policies.tool_gate import ToolCallGate
from deepeyes.policies.video import fit_clip, processor_metadata
from deepeyes.videos import VideoClip

logger = logging.getLogger(__name__)


def to_hf_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Our messages → the content-list form HF chat templates take (``{"type": "image"}``, ``{"type": "video"}``)."""
    converted = []
    for message in messages:
        parts = [_hf_part(piece) for piece in message.segments()]
        converted.append({"role": message.role, "content": parts})
    return converted


def _hf_part(piece: str | Any) -> dict[str, Any]:
    if isinstance(piece, str):
        return {"type": "text", "text": piece}
    return {"type": "video"} if isinstance(piece, VideoClip) else {"type": "image"}


def forbid_structural_tokens(model: Any, processor: Any) -> None:
    """Make ``generate`` never sample :data:`deepeyes.wire.STRUCTURAL_TOKENS` (set on the model's generation config).

    A turn must never contain them: they would add image slots without images, or open a fake
    turn, when the conversation is tokenized again, and a young or hot policy samples them.
    """
    ids = [processor.tokenizer.convert_tokens_to_ids(token) for token in wire.STRUCTURAL_TOKENS]
    unknown = processor.tokenizer.unk_token_id
    model.generation_config.suppress_tokens = sorted({i for i in ids if i is not None and i != unknown})


def trim_turn(text: str) -> str:
    """Cut generated text at the end-of-turn marker; ``</code>``/``</tool_call>`` stay in."""
    return wire.trim_end_of_turn(text)


def processor_media(processor: Any, conversations: list[list[Message]], *, min_pixels: int, max_pixels: int) -> dict[str, Any]:
    """The Qwen2.5-VL processor's image and video arguments for ``conversations``, in prompt order.

    Images are brought within ``[min_pixels, max_pixels]``; each video is its clip's frames at
    one size within the video processor's own bounds (a request lowers the upper one when its
    clip is decoded: ``VideoSampling.max_pixels``), with the clip's sampled rate as metadata
    (:func:`~deepeyes.policies.video.processor_metadata`). One function for generation and for
    RL's scoring pass, so the ids, ``pixel_values_videos``, ``video_grid_thw`` and
    ``second_per_grid_ts`` scored are the ones the rollout saw.
    """
    images = [prepare_for_qwen(image, min_pixels, max_pixels) for messages in conversations for image in all_images(messages)]
    media: dict[str, Any] = {"images": images or None}
    clips = [clip for messages in conversations for clip in all_videos(messages)]
    if clips:
        size = processor.video_processor.size
        fitted = [fit_clip(clip, int(size["shortest_edge"]), int(size["longest_edge"])) for clip in clips]
        media.update(videos=[clip.frames for clip in fitted], video_metadata=[processor_metadata(clip) for clip in fitted])
    return media


@dataclass
class HFPolicyConfig:
    #: A local directory or a hub id (``honglyhly/DeepEyesV2_7B_1031``); the same for ``adapter_path``.
    model_path: str
    adapter_path: str | None = None
    #: The default sampling settings (a call's own :class:`SamplingParams` replaces all three).
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    max_pixels: int | None = None  # None: the processor's own limit
    min_pixels: int | None = None
    device: str = "cpu"
    dtype: str = "float32"
    #: The seed's logits gate (deepeyes.policies.tool_gate): 0..1, the higher the less readily
    #: a tool call is opened. (``force_no_tool`` is a per-request switch of the agent loop.)
    tool_call_threshold: float = 0.0
    #: Torch intra-op threads while generating (``None``: leave torch's setting). One by default:
    #: the tiny model's products are too small to share out, and on a shared CPU every
    #: multi-threaded product waits for a core another process holds (deepeyes.policies.decoding).
    generation_threads: int | None = 1


class HFPolicy:
    """Generates one assistant turn with the model, stopping at the wire-format stop strings.

    Sampling settings come with each call (``generate(messages, sampling)``); the config's
    ``temperature``, ``top_p`` and ``max_new_tokens`` are only the defaults (:attr:`sampling`).
    The config is never changed after construction.

    Decoding runs in :class:`~deepeyes.policies.decoding.Decoder`, a lean cached loop that
    gives the tokens ``model.generate`` gave (bit for bit at the same thread count), faster.

    Calls are serialised with a lock: one model instance cannot run two generations at
    once, and the agent loop overlaps tool calls of other trajectories with the one
    generation in flight.
    """

    def __init__(self, model_path: str | Path, adapter_path: str | Path | None = None, **options: Any):
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        from deepeyes.hub import resolve as hub_resolve

        config = HFPolicyConfig(model_path=str(model_path), adapter_path=str(adapter_path) if adapter_path else None, **options)
        # A local directory, or a hub id fetched once into the hub cache (HubResolutionError is a FileNotFoundError).
        model_dir = hub_resolve(config.model_path, "model", what="model_path")
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model directory not found: {config.model_path}")
        processor = AutoProcessor.from_pretrained(model_dir)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=getattr(torch, config.dtype))
        if config.adapter_path:
            from peft import PeftModel

            adapter_dir = hub_resolve(config.adapter_path, "model", what="adapter_path")
            if not (adapter_dir / "adapter_config.json").is_file():
                raise FileNotFoundError(f"no adapter_config.json in adapter directory {config.adapter_path}")
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        forbid_structural_tokens(model, processor)
        self._setup(config, model.to(config.device).eval(), processor)

    @classmethod
    def from_model(cls, model: Any, processor: Any, **options: Any) -> HFPolicy:
        """Wrap a model that is already loaded (RL generates with the weights it is training)."""
        policy = cls.__new__(cls)
        policy._setup(HFPolicyConfig(model_path=str(getattr(model, "name_or_path", "<in-memory>")), **options), model, processor)
        return policy

    def _setup(self, config: HFPolicyConfig, model: Any, processor: Any) -> None:
        self.config = config
        self.model = model
        self.processor = processor
        size = self.processor.image_processor.size
        self.max_pixels = self.config.max_pixels or int(size["longest_edge"])
        self.min_pixels = self.config.min_pixels or int(size["shortest_edge"])
        #: The settings a call without its own gets.
        self.sampling = SamplingParams(config.temperature, config.top_p, config.max_new_tokens)
        self._lock = threading.Lock()
        gate = ToolCallGate(self.tokenizer, self.config.tool_call_threshold)
        #: Run after the generation config's processors and before temperature / top-p, where
        #: ``generate`` runs its ``logits_processor`` argument.
        self._logits_processors = LogitsProcessorList([gate] if gate.active else [])
        self._decoder = Decoder(
            model,
            self.tokenizer,
            end_ids=self._end_ids(),
            stop_strings=wire.STOP_STRINGS,
            pad_id=self.tokenizer.pad_token_id,
        )

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    def encode(self, messages: list[Message], add_generation_prompt: bool = True) -> dict[str, torch.Tensor]:
        """Model inputs for a conversation (also used by RL to score the same text it generated)."""
        prompt = self.processor.apply_chat_template(
            to_hf_messages(messages), add_generation_prompt=add_generation_prompt, tokenize=False
        )
        with self._lock:
            inputs = self.processor(text=[prompt], **self._media([messages]), return_tensors="pt")
        return {key: value.to(self.config.device) for key, value in inputs.items()}

    def _media(self, conversations: list[list[Message]]) -> dict[str, Any]:
        return processor_media(self.processor, conversations, min_pixels=self.min_pixels, max_pixels=self.max_pixels)

    def generate(self, messages: list[Message], sampling: SamplingParams | None = None) -> Generation:
        return self.generate_batch([messages], sampling)[0]

    def generate_batch(self, conversations: list[list[Message]], sampling: SamplingParams | None = None) -> list[Generation]:
        """One turn for each conversation, all sampled with ``sampling`` (default: :attr:`sampling`)."""
        prompts = [
            self.processor.apply_chat_template(to_hf_messages(messages), add_generation_prompt=True, tokenize=False)
            for messages in conversations
        ]
        media = self._media(conversations)
        sampling = sampling or self.sampling
        # The fast tokenizer is not re-entrant ("Already borrowed"), so tokenising shares the lock.
        with self._lock, intra_op_threads(self.config.generation_threads):
            self.tokenizer.padding_side = "left"
            inputs = self.processor(text=prompts, **media, padding=True, return_tensors="pt")
            inputs = {key: value.to(self.config.device) for key, value in inputs.items()}
            decoded = self._decoder.decode(inputs, sampling, self._logits_processors)
        generations = []
        for row, prompt_ids, attention in zip(decoded, inputs["input_ids"], inputs["attention_mask"], strict=True):
            generations.append(
                Generation(
                    text=trim_turn(self.tokenizer.decode(row.token_ids, skip_special_tokens=False)),
                    prompt_tokens=int(attention.sum()),
                    completion_tokens=len(row.token_ids),
                    token_ids=row.token_ids,
                    prompt_token_ids=prompt_ids[attention.bool()].tolist(),
                    finish_reason=row.finish_reason,
                )
            )
        return generations

    def _end_ids(self) -> set[int]:
        """Token ids that end a turn when sampled: the generation config's eos ids and the wire's end-of-turn tokens."""
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        ids |= {self.tokenizer.convert_tokens_to_ids(marker) for marker in wire.END_OF_TURN}
        return {i for i in ids if i is not None}
