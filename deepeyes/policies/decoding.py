"""A lean cached decode loop for :class:`~deepeyes.policies.hf.HFPolicy` (RL rollouts and evaluation).

Where the time went (tiny model, batch 8, ``benchmarks/generation_bench.py``): not in
``generate``'s per-step bookkeeping, which profiling put at a few per cent, but in the
model's own operations:

1. Thread hand-offs. Every product was split over torch's intra-op threads; a decode step
   is dozens of products of 8 rows, and on a shared 2-core machine each split waits for a
   core another process holds (a (8, 256) x (256, 768) product: ~0.1 ms on one thread,
   ~1.7 ms on two while the machine is loaded). :func:`intra_op_threads` runs a
   generation on one thread; this was most of the gain.
2. Memory churn in attention. With a padding mask, ``transformers``' SDPA attention copies
   the grouped keys and values to every query head (``repeat_kv``), and
   :class:`~transformers.DynamicCache` concatenates the whole cache into a fresh tensor:
   each step allocated and filled megabytes per layer. On CPU the decode steps here use
   SDPA's own grouped-query mode (``enable_gqa``) and a cache that writes each new column
   into a buffer sized for the whole generation (:class:`_PreallocatedLayer`). Both hand
   SDPA exactly the same numbers, so the logits are bit for bit those of ``generate``.

The loop itself: one prefill through the model's forward, then one single-token forward
per step under :func:`torch.inference_mode`, into preallocated id and mask buffers,
telling each row's end as it happens (``generate`` padded finished rows with a pad id that
is itself an end token, so its output had to be re-scanned to find where turns ended).

It reproduces ``generate``'s arithmetic, so greedy text is identical: the same forward
arguments (the [text; temporal; height; width] position ids ``generate`` builds for
Qwen2.5-VL, the 2-D attention mask, ``logits_to_keep=1``), the same logits processors in
``generate``'s order (the generation config's ``repetition_penalty`` and
``suppress_tokens``, then the policy's own, then temperature and top-p), the same
``torch.multinomial`` draw when sampling, padding fed to finished rows, and
``transformers``' own :class:`~transformers.StopStringCriteria` for the wire stop strings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import (
    AttentionInterface,
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    StopStringCriteria,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)
from transformers.cache_utils import Cache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from deepeyes.policies.base import SamplingParams

#: Generation-config settings that change the logits in ``generate`` and that this loop does
#: not apply, with the values that mean "off". A model whose generation config turns one
#: on is refused rather than decoded differently from ``generate``.
_UNSUPPORTED_OFF: dict[str, tuple[Any, ...]] = {
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "encoder_repetition_penalty": (None, 1.0),
    "bad_words_ids": (None,),
    "sequence_bias": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "exponential_decay_length_penalty": (None,),
    "guidance_scale": (None, 1.0),
    "watermarking_config": (None,),
    "renormalize_logits": (None, False),
    "remove_invalid_values": (None, False),
}

#: The attention implementation the decode steps switch a CPU SDPA model to (registered below).
DECODE_ATTENTION = "deepeyes_decode_sdpa"


def _decode_sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``transformers``' SDPA attention, except that one query token reads grouped keys in place.

    ``transformers`` only lets SDPA group heads itself when there is no mask; with the
    padding mask of a left-padded batch it copies keys and values once per query head
    first. For a single query token SDPA's grouped mode gives the same numbers without
    the copy; anything else goes to ``transformers``' function unchanged.
    """
    if query.shape[2] != 1 or dropout or key.shape[1] == query.shape[1]:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    output = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, scale=scaling, enable_gqa=True
    )
    return output.transpose(1, 2).contiguous(), None


AttentionInterface.register(DECODE_ATTENTION, _decode_sdpa)
AttentionMaskInterface.register(DECODE_ATTENTION, sdpa_mask)  # masks exactly as for "sdpa"


@dataclass(frozen=True)
class Decoded:
    """One row's new tokens, up to and including the one that ended it, and why it ended."""

    token_ids: list[int]
    finish_reason: Literal["stop", "length"]


@contextlib.contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads (``None``: leave the setting alone).

    ``torch.set_num_threads`` is global state, so the previous value is restored on exit;
    the policy's lock keeps two generations from interleaving their settings.
    """
    if count is None or count == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _PreallocatedLayer(DynamicLayer):
    """A cache layer whose keys and values live in one buffer sized for the whole generation.

    :class:`~transformers.cache_utils.DynamicLayer` concatenates past and new states into
    a fresh tensor at every step; this writes the new columns in place and hands out a view
    of the filled part (the same values, so attention computes the same numbers). Only the
    decode loop uses it, which never crops or reorders the cache.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.filled = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._key_buffer = key_states.new_empty((*key_states.shape[:2], self.capacity, key_states.shape[-1]))
        self._value_buffer = value_states.new_empty((*value_states.shape[:2], self.capacity, value_states.shape[-1]))

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.filled + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"decode cache overflow: {end} positions for a capacity of {self.capacity}")
        self._key_buffer[:, :, self.filled : end] = key_states
        self._value_buffer[:, :, self.filled : end] = value_states
        self.filled = end
        self.keys, self.values = self._key_buffer[:, :, :end], self._value_buffer[:, :, :end]
        return self.keys, self.values


def decode_cache(text_config: Any, capacity: int) -> Cache:
    """A preallocated cache for ``capacity`` positions; a plain DynamicCache for models with sliding-window layers."""
    layer_types = getattr(text_config, "layer_types", None) or ["full_attention"] * text_config.num_hidden_layers
    if any(kind != "full_attention" for kind in layer_types):
        return DynamicCache(config=text_config)
    return Cache(layers=[_PreallocatedLayer(capacity) for _ in layer_types])


@contextlib.contextmanager
def grouped_decode_attention(text_config: Any, device: torch.device) -> Iterator[None]:
    """Switch a CPU model's SDPA attention to :func:`_decode_sdpa` for the block.

    Only on CPU, where the grouped mode was checked to give the same logits. The setting
    lives on the model's config and is restored on exit; a forward that runs meanwhile
    elsewhere (scoring, training) is unaffected, since :func:`_decode_sdpa` hands anything
    but a single query token to ``transformers``' SDPA function and masks are built by
    the same function as for ``"sdpa"``.
    """
    if device.type != "cpu" or text_config._attn_implementation != "sdpa":
        yield
        return
    text_config._attn_implementation = DECODE_ATTENTION
    try:
        yield
    finally:
        text_config._attn_implementation = "sdpa"


class Decoder:
    """Decodes batches of left-padded prompts with one Qwen2.5-VL model; built once per policy.

    ``end_ids`` end a row when sampled (the generation config's eos ids and the wire's
    end-of-turn tokens); ``stop_strings`` end it when the decoded text completes one
    (``generate``'s ``stop_strings`` semantics, a stop string may end inside a token).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        end_ids: Sequence[int],
        stop_strings: Sequence[str],
        pad_id: int,
    ) -> None:
        self.model = model
        self.end_ids = torch.tensor(sorted(set(end_ids)), dtype=torch.long)
        self.stop_criteria = StopStringCriteria(tokenizer, list(stop_strings))
        self.pad_id = pad_id
        self._rope_index = _find_rope_index(model)

    def decode(
        self, inputs: dict[str, torch.Tensor], sampling: SamplingParams, extra_processors: Sequence[LogitsProcessor] = ()
    ) -> list[Decoded]:
        """Decode every row of ``inputs`` (the processor's output, left padded) until it ends.

        ``extra_processors`` run after the generation config's processors and before the
        sampling warpers, where ``generate`` runs its ``logits_processor`` argument.
        """
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        batch, prompt_length = input_ids.shape
        total = prompt_length + sampling.max_new_tokens
        device = input_ids.device
        processors = self._processors(sampling, extra_processors, device)
        # Preallocated so that each step writes one column instead of concatenating.
        sequence = torch.full((batch, total), self.pad_id, dtype=torch.long, device=device)
        sequence[:, :prompt_length] = input_ids
        mask = torch.ones((batch, total), dtype=attention_mask.dtype, device=device)
        mask[:, :prompt_length] = attention_mask
        positions = self.prompt_positions(inputs)
        end_ids = self.end_ids.to(device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        stopped = torch.zeros(batch, dtype=torch.bool, device=device)
        lengths = torch.full((batch,), sampling.max_new_tokens, dtype=torch.long, device=device)
        text_config = self.model.config.get_text_config(decoder=True)
        cache = decode_cache(text_config, total)

        with torch.inference_mode():
            outputs = self.model(
                **inputs, position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1, return_dict=True
            )
            with grouped_decode_attention(text_config, device):
                for step in range(sampling.max_new_tokens):
                    length = prompt_length + step
                    logits = outputs.logits[:, -1, :].to(copy=True, dtype=torch.float32)
                    scores = processors(sequence[:, :length], logits)
                    if sampling.temperature > 0:
                        tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
                    else:
                        tokens = torch.argmax(scores, dim=-1)
                    tokens = tokens.masked_fill(finished, self.pad_id)  # finished rows are fed padding
                    sequence[:, length] = tokens
                    ends = torch.isin(tokens, end_ids) | self.stop_criteria(sequence[:, : length + 1], scores)
                    newly = ends & ~finished
                    lengths[newly] = step + 1
                    stopped |= newly
                    finished |= ends
                    if step + 1 == sampling.max_new_tokens or bool(finished.all()):
                        break
                    outputs = self.model(
                        input_ids=tokens[:, None],
                        attention_mask=mask[:, : length + 1],
                        position_ids=positions[..., -1:] + (step + 1),
                        past_key_values=cache,
                        use_cache=True,
                        logits_to_keep=1,
                        return_dict=True,
                    )
        rows = sequence[:, prompt_length:].tolist()
        return [
            Decoded(row[:count], "stop" if stop else "length")
            for row, count, stop in zip(rows, lengths.tolist(), stopped.tolist(), strict=True)
        ]

    def _processors(self, sampling: SamplingParams, extra: Sequence[LogitsProcessor], device: torch.device) -> LogitsProcessorList:
        """``generate``'s processors for these settings, in ``generate``'s order.

        Read from the model's generation config at each call: a caller may change
        ``suppress_tokens`` after the policy is built.

        Raises:
            ValueError: the generation config turns on a logits setting this loop does not apply.
        """
        config = self.model.generation_config
        for name, off in _UNSUPPORTED_OFF.items():
            if getattr(config, name, None) not in off:
                raise ValueError(
                    f"generation_config.{name}={getattr(config, name)!r} is not applied by the decode loop "
                    "(deepeyes.policies.decoding); remove it from the model's generation_config.json"
                )
        processors = LogitsProcessorList()
        if config.repetition_penalty is not None and config.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(penalty=config.repetition_penalty))
        if config.suppress_tokens is not None:
            processors.append(SuppressTokensLogitsProcessor(config.suppress_tokens, device=device))
        processors.extend(extra)
        if sampling.temperature > 0:
            if sampling.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(sampling.temperature))
            if sampling.top_p < 1.0:
                processors.append(TopPLogitsWarper(top_p=sampling.top_p))
        return processors

    def prompt_positions(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The prompt's position ids as ``generate`` builds them for Qwen2.5-VL: ``(4, batch, length)``.

        Row 0 is the text position (padding at 0), rows 1-3 the M-RoPE temporal, height and
        width positions from the model's own ``get_rope_index`` (the text position again
        when there is no image). Each decode step adds one to the last column.
        """
        attention_mask = inputs["attention_mask"]
        text = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        grids = {key: inputs[key] for key in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts") if key in inputs}
        if "mm_token_type_ids" in inputs and ("image_grid_thw" in grids or "video_grid_thw" in grids):
            vision, _ = self._rope_index(
                inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"], attention_mask=attention_mask, **grids
            )
        else:
            vision = text.unsqueeze(0).expand(3, -1, -1)
        return torch.cat([text[None, ...], vision], dim=0)


def _find_rope_index(model: Any) -> Any:
    """The model's ``get_rope_index`` (on the inner Qwen2.5-VL model, under a peft wrapper when there is one).

    Raises:
        TypeError: the model has none (not a Qwen2-VL-family model).
    """
    for module in model.modules():
        if callable(getattr(module, "get_rope_index", None)):
            return module.get_rope_index
    raise TypeError(f"{type(model).__name__} has no get_rope_index: the decode loop needs a Qwen2.5-VL model")
