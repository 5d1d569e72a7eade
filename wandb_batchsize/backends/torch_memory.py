"""PyTorch device memory: allocator readings, a budget cap, cache release, host sync.

- :class:`TorchDeviceMeter`: on CUDA and XPU the caching allocator's own peak
  (``max_memory_allocated`` for the report, ``max_memory_reserved`` for the
  headroom), with the device's budget (``mem_get_info``);
- :func:`device_memory_cap`: ``target_memory`` applied through
  ``set_per_process_memory_fraction`` for the duration of a search;
- :func:`empty_caches`: ``empty_cache`` of every initialised accelerator;
- :func:`synchronize`: wait for a device's queued work (timing only);
- :func:`tensors_to_host`: many device scalars to the host in one transfer.

The CPU uses the host-process meter of :mod:`wandb_batchsize.backends.host_memory`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from wandb_batchsize.backends.host_memory import NullMeter, Reading, host_meter


class TorchDeviceMeter:
    """Peak memory of a CUDA or XPU device during a probe, from the caching allocator."""

    def __init__(self, device: torch.device, target_bytes: int | None = None) -> None:
        self.device = device
        self.backend = getattr(torch, device.type)
        self.target_bytes = target_bytes
        self.name = device.type
        self._budget: int | None = None

    def _sync(self) -> None:
        with contextlib.suppress(Exception):
            self.backend.synchronize(self.device)

    def budget_now(self) -> int | None:
        try:
            free, total = self.backend.mem_get_info(self.device)
        except Exception:  # noqa: BLE001 - no mem_get_info on this backend
            return self.target_bytes
        reserved = self.backend.memory_reserved(self.device)
        budget = free + reserved
        if self.target_bytes is not None:
            # the target counts all the memory this process holds, as a smaller card would
            budget = min(budget, self.target_bytes)
        return int(budget)

    def start(self) -> None:
        self._sync()
        self.backend.reset_peak_memory_stats(self.device)
        self._budget = self.budget_now()

    def stop(self) -> Reading:
        self._sync()
        peak = int(self.backend.max_memory_allocated(self.device))
        reserved_peak = int(self.backend.max_memory_reserved(self.device))
        budget = self._budget
        headroom = None if budget is None else budget - reserved_peak
        return Reading(peak_bytes=peak, headroom_bytes=headroom, budget_bytes=budget)

    def over_budget(self, reading: Reading) -> bool:
        return reading.exceeds(self.target_bytes)


def meter_for(device: torch.device, target_bytes: int | None, resident_bytes: int) -> Any:
    """The meter of ``device``: the allocator on CUDA/XPU, the process on the CPU, none on MPS."""
    if device.type in ("cuda", "xpu"):
        return TorchDeviceMeter(device, target_bytes)
    if device.type == "cpu":
        return host_meter(target_bytes, resident_bytes)
    return NullMeter()


@contextlib.contextmanager
def device_memory_cap(device: torch.device, target_bytes: int | None) -> Iterator[None]:
    """Make the allocator fail above ``target_bytes`` (CUDA/XPU), restoring the old fraction."""
    backend = getattr(torch, device.type, None)
    setter = getattr(backend, "set_per_process_memory_fraction", None)
    if target_bytes is None or device.type not in ("cuda", "xpu") or setter is None:
        yield
        return
    total = backend.get_device_properties(device).total_memory
    getter = getattr(backend, "get_per_process_memory_fraction", None)
    old = getter(device) if getter is not None else 1.0
    setter(min(1.0, target_bytes / total), device)
    try:
        yield
    finally:
        setter(old, device)


def empty_caches() -> None:
    """``empty_cache`` of CUDA, MPS and XPU where they are initialised; never raises."""
    for name in ("cuda", "mps", "xpu"):
        backend = getattr(torch, name, None)
        if backend is None:
            continue
        with contextlib.suppress(Exception):
            initialized = getattr(backend, "is_initialized", None)
            available = getattr(backend, "is_available", None)
            if initialized is not None and not initialized():
                continue
            if initialized is None and (available is None or not available()):
                continue
            backend.empty_cache()


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
    elif device.type == "xpu":
        torch.xpu.synchronize(device)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module that computes, without DDP/DataParallel's collectives."""
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for an empty model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def device_label(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200)`` for a GPU, ``cpu`` etc. otherwise."""
    if device.type == "cuda":
        with contextlib.suppress(Exception):
            return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    return str(device)


# -- host transfers ----------------------------------------------------------------


def tensors_to_host(tensors: Sequence[Any]) -> np.ndarray:
    """Stack one-element tensors on their device and copy them to the host at once."""
    try:
        stacked = torch.stack(list(tensors)).reshape(-1)  # shape () or (1,): one value each
    except (RuntimeError, TypeError):  # mixed shapes, dtypes or devices: rare
        stacked = torch.stack([t.reshape(()).float().cpu() for t in tensors])
    host = stacked.cpu()  # the one transfer, in the losses' own dtype
    if host.dtype not in (torch.float32, torch.float64):
        host = host.float()  # half, bfloat16, integers: numpy-compatible first
    return host.numpy().astype(np.float64)


def combine_losses(values: Sequence[Any], reduce: str) -> Any:
    """One optimizer step's loss from its micro-batch losses, on their device."""
    stacked = torch.stack(
        [
            v.detach().reshape(()).float() if hasattr(v, "detach") else torch.tensor(float(v))
            for v in values
        ]
    )
    return stacked.sum() if reduce == "sum" else stacked.mean()
