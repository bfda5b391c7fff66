"""verl on CPUs, through verl's extension points and one private table.

Imported in every verl process through ``VERL_USE_EXTERNAL_MODULES=deepeyes.rl.verl_cpu``
(verl imports the named modules when ``verl`` itself is imported), it registers:

- a CPU hardware platform (``PlatformRegistry``; selected with ``VERL_PLATFORM=cpu``);
- verl's FSDP training engines for the ``cpu`` device (``EngineRegistry``);
- the ``hf`` rollout backend: its replica (``RolloutReplicaRegistry``) and the server
  adapter the training worker builds by rollout name.

The last is not an extension point: verl 0.9.1 maps rollout names to server-adapter classes
in the private dict ``verl.workers.rollout.base._ROLLOUT_REGISTRY`` and offers no public way
to add one, so :func:`register` writes that dict directly. A verl upgrade that renames it
breaks the ``hf`` backend loudly (``AttributeError`` at import), not silently.
"""

from __future__ import annotations

from deepeyes.rl.verl_cpu.platform import PLATFORM_NAME, PlatformCPU
from deepeyes.rl.verl_cpu.rollout import BACKEND_NAME, HFReplica, HFServerAdapter


def _hf_replica() -> type[HFReplica]:
    return HFReplica


def register() -> None:
    """Register the CPU engines and the ``hf`` rollout backend (idempotent).

    verl's engine modules resolve the platform when imported, so they are imported here,
    after the CPU platform above is registered.
    """
    from verl.workers.engine import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import (
        FSDPEngineWithLMHead,
        FSDPEngineWithValueHead,
    )
    from verl.workers.rollout import base as rollout_base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    for model_type, engine in (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead)):
        if "cpu" not in EngineRegistry._engines.get(model_type, {}).get("fsdp2", {}):
            EngineRegistry.register(model_type=model_type, backend=["fsdp", "fsdp2"], device="cpu")(engine)
    RolloutReplicaRegistry.register(BACKEND_NAME, _hf_replica)
    rollout_base._ROLLOUT_REGISTRY[(BACKEND_NAME, "async")] = f"{HFServerAdapter.__module__}.{HFServerAdapter.__qualname__}"


register()

__all__ = ["BACKEND_NAME", "PLATFORM_NAME", "HFReplica", "HFServerAdapter", "PlatformCPU", "register"]
