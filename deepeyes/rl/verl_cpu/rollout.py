"""An HF-transformers rollout backend for verl, registered as ``hf``.

verl generates through a rollout *replica* (a server other actors call token-in,
token-out) and keeps it in step with the trainer through a *server adapter* that lives in
the training worker and receives the new weights after every update. vLLM, SGLang and
TensorRT-LLM are verl's built-in backends; this one runs ``model.generate`` of
transformers on CPU so that verl's own trainer runs end to end on a machine without an
accelerator. It is registered with verl's ``RolloutReplicaRegistry`` (the replica) and
verl's rollout-class table (the adapter), and selected with ``actor_rollout_ref.rollout.name=hf``.

Generation honours verl's sampling parameters (temperature, top-p, top-k, the token
budget, stop strings; ``<|im_end|>`` and the model's EOS end a turn) and returns the
sampled ids with their log-probabilities under the sampling distribution.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Generator
from typing import Any

import ray
import torch
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import HFModelConfig
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from deepeyes import wire

logger = logging.getLogger(__name__)

BACKEND_NAME = "hf"


def server_name(replica_rank: int) -> str:
    """The Ray actor name of a replica's server (the adapter finds it by name)."""
    return f"deepeyes_hf_rollout_server_{replica_rank}"


class HFRolloutServer:
    """One replica's generation server: a transformers model on CPU behind verl's server interface.

    Requests are served one at a time (one model, CPU threads shared); the Ray actor is
    async so that queued requests and control calls do not block each other.
    """

    def __init__(self, model_path: str, trust_remote_code: bool = False, num_threads: int | None = None):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if num_threads:
            torch.set_num_threads(num_threads)
        self.processor = AutoProcessor.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        self.tokenizer = self.processor.tokenizer
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch.float32, trust_remote_code=trust_remote_code)
        self.model.eval()
        eos = self.model.generation_config.eos_token_id
        end_ids = {self.tokenizer.convert_tokens_to_ids(wire.IM_END), *(eos if isinstance(eos, list) else [eos])}
        self.end_ids = sorted(i for i in end_ids if isinstance(i, int))
        #: Vision placeholders are the processor's to place: a sampled one would claim an image
        #: that does not exist (verl's M-RoPE positions would then fail for the whole batch).
        placeholders = (wire.VISION_START, wire.VISION_END, wire.IMAGE_PAD, wire.VIDEO_PAD, wire.VISION_PAD)
        self.suppressed_ids = sorted({i for i in self.tokenizer.convert_tokens_to_ids(list(placeholders)) if isinstance(i, int) and i != self.tokenizer.unk_token_id})
        self._lock = threading.Lock()
        self.weight_version = 0

    def _generate(self, prompt_ids: list[int], sampling_params: dict[str, Any], image_data: list[Any] | None) -> TokenOutput:
        inputs: dict[str, Any] = {"input_ids": torch.tensor([prompt_ids])}
        if image_data:
            vision = self.processor.image_processor(images=list(image_data), return_tensors="pt")
            inputs.update(pixel_values=vision["pixel_values"], image_grid_thw=vision["image_grid_thw"])
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        temperature = float(sampling_params.get("temperature", 1.0) or 0.0)
        budget = int(sampling_params.get("max_tokens") or sampling_params.get("max_new_tokens") or 256)
        options: dict[str, Any] = {
            "max_new_tokens": max(1, budget),
            "do_sample": temperature > 0,
            "eos_token_id": self.end_ids,
            "pad_token_id": self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.end_ids[0],
            "suppress_tokens": self.suppressed_ids,
            "return_dict_in_generate": True,
            "output_scores": True,
        }
        if temperature > 0:
            top_k = int(sampling_params.get("top_k", -1) or -1)
            options.update(temperature=temperature, top_p=float(sampling_params.get("top_p", 1.0)), top_k=top_k if top_k > 0 else None)
        if sampling_params.get("stop"):
            options.update(stop_strings=list(sampling_params["stop"]), tokenizer=self.tokenizer)
        with self._lock, torch.no_grad():
            output = self.model.generate(**inputs, **options)
        ids = output.sequences[0, len(prompt_ids) :].tolist()
        log_probs = [float(torch.log_softmax(score[0].float(), dim=-1)[token]) for score, token in zip(output.scores, ids, strict=False)]
        return TokenOutput(token_ids=ids, log_probs=log_probs, stop_reason="completed")

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: list[Any] | None = None,
        video_data: list[Any] | None = None,
        **kwargs: Any,
    ) -> TokenOutput:
        """verl's token-in, token-out call: prompt ids (images already expanded) → sampled ids."""
        if video_data:
            raise ValueError("the hf rollout backend takes images, not videos")
        return await asyncio.to_thread(self._generate, list(prompt_ids), dict(sampling_params), image_data)

    def update_weights(self, state_dict: dict[str, torch.Tensor], version: int | None = None) -> int:
        """Load the trainer's new weights (HF parameter names); returns how many tensors were loaded.

        Raises ``ValueError`` when none arrive or some name no parameter of the rollout model.
        """
        if not state_dict:
            raise ValueError("the trainer sent no weights")
        with self._lock:
            result = self.model.load_state_dict(state_dict, strict=False)
        loaded = len(state_dict) - len(result.unexpected_keys)
        if result.unexpected_keys:
            raise ValueError(f"weights the rollout model does not have: {result.unexpected_keys[:5]}")
        self.weight_version = version if version is not None else self.weight_version + 1
        logger.info("rollout weights updated: %d tensors (version %s)", loaded, self.weight_version)
        return loaded

    # verl's lifecycle calls; on CPU there is no device memory to release or KV cache to keep.
    async def wake_up(self) -> None: ...
    async def sleep(self) -> None: ...
    async def clear_kv_cache(self) -> None: ...
    async def release_kv_cache(self) -> None: ...
    async def resume_kv_cache(self) -> None: ...
    async def abort_all_requests(self, reject_request: bool = False) -> dict[str, Any]:
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None: ...
    async def start_profile(self, **kwargs: Any) -> None: ...
    async def stop_profile(self) -> None: ...


class HFReplica(RolloutReplica):
    """A rollout replica served by :class:`HFRolloutServer` (one server per replica, any mode)."""

    async def launch_servers(self) -> None:
        model = omega_conf_to_dataclass(self.model_config, dataclass_type=HFModelConfig)
        server = (
            ray.remote(HFRolloutServer)
            .options(name=server_name(self.replica_rank), num_cpus=0, max_concurrency=self.max_concurrency)
            .remote(model.local_path, bool(model.trust_remote_code))
        )
        await server.__ray_ready__.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"hf-rollout-{self.replica_rank}"

    def rollout_worker_use_gpu(self) -> bool:
        return False


class HFServerAdapter(BaseRollout):
    """The training worker's side of the ``hf`` backend: forwards new weights to its replica's server."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, *args: Any, replica_rank: int | None = None, **kwargs: Any):
        super().__init__(config, model_config, device_mesh)
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_initialized() else 0
        world = self.config.tensor_model_parallel_size * self.config.data_parallel_size * self.config.pipeline_model_parallel_size
        self.replica_rank = replica_rank if replica_rank is not None else rank // world
        self.is_leader_rank = rank % world == 0
        self.sleep_level = 1

    async def resume(self, tags: list[str]) -> None: ...
    async def release(self) -> None: ...

    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        wire_format: str = "named_tensors",
        **kwargs: Any,
    ) -> None:
        if wire_format != "named_tensors":
            raise ValueError(f"the hf rollout backend takes full named tensors, not {wire_format!r}")
        state = {name: tensor.detach().to("cpu", copy=True) for name, tensor in weights}
        if self.is_leader_rank:
            await ray.get_actor(server_name(self.replica_rank)).update_weights.remote(state, kwargs.get("global_steps"))
