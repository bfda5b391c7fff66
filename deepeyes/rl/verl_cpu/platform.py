"""A CPU hardware platform for verl, registered through verl's platform registry.

verl resolves its device, communication backend and Ray resource through the platform
named by ``VERL_PLATFORM``; without a registered CPU platform it falls back to 'nvidia'
on a machine with no accelerator. This one names the ``cpu`` device, the ``gloo``
backend, and Ray's ``GPU`` resource as the per-worker slot: verl's resource-pool check
counts only ``GPU``/``NPU`` resources, so a CPU run declares logical slots with
``ray_kwargs.ray_init.num_gpus`` (they hold no device; each is one training process).
The default process group is made over gloo (see :meth:`PlatformCPU.communication_backend_name`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import torch
import torch.distributed as dist
from verl.plugin.platform import PlatformBase, PlatformRegistry

PLATFORM_NAME = "cpu"


def _init_gloo_process_group() -> None:
    """The default gloo process group of a Ray training worker (no-op elsewhere or when it exists)."""
    if dist.is_initialized() or not all(key in os.environ for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
        return
    dist.init_process_group(backend="gloo", rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))


def _cpu_device_module() -> SimpleNamespace:
    """``torch.cpu`` plus the calls verl makes on an accelerator module: memory statistics
    (0 on CPU), the device name, the RNG state (the CPU generator's) and allocator no-ops."""
    zero = lambda *args, **kwargs: 0
    module = SimpleNamespace(**{name: getattr(torch.cpu, name) for name in dir(torch.cpu) if not name.startswith("_")})
    module.__dict__.update(
        memory_allocated=zero,
        memory_reserved=zero,
        max_memory_allocated=zero,
        max_memory_reserved=zero,
        reset_peak_memory_stats=lambda *args, **kwargs: None,
        empty_cache=lambda: None,
        mem_get_info=lambda *args, **kwargs: (0, 0),
        manual_seed=torch.manual_seed,
        manual_seed_all=torch.manual_seed,
        set_device=lambda *args, **kwargs: None,
        set_per_process_memory_fraction=lambda *args, **kwargs: None,
        ipc_collect=lambda: None,
        get_device_name=lambda *args, **kwargs: "CPU",
        get_rng_state=lambda *args, **kwargs: torch.get_rng_state(),
        set_rng_state=lambda state, *args, **kwargs: torch.set_rng_state(state),
    )
    return module


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """verl on CPUs: device ``cpu``, collectives over gloo, no device memory to manage."""

    _module = _cpu_device_module()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> Any:
        return self._module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return False  # chosen only by name (VERL_PLATFORM=cpu), never auto-detected over an accelerator

    def current_device(self) -> Any:
        return "cpu"  # what torch.cpu.current_device() answers; verl passes it to .to() and torch.device()

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        """``gloo``; and, in a training worker, the default process group over it, made now.

        verl's ``initialize_global_process_group_ray`` asks for this name to build the
        backend string ``f"cpu:gloo,{device}:{backend}"``, which for the ``cpu`` device is
        ``"cpu:gloo,cpu:gloo"`` — refused by ``torch.distributed`` (duplicate device type),
        and no setting changes the string. It skips its own initialisation when a default
        group exists, so the group verl is about to create is created here, over gloo,
        from the same ``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` / ``MASTER_PORT`` it would use.
        This is the one step of a CPU run that is not reached by a verl extension point.
        """
        _init_gloo_process_group()
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None
