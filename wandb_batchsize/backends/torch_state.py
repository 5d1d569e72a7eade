"""Snapshot and bitwise restore of a PyTorch model's training state, in memory (never on disk).

A probe runs real training steps, so it changes the weights, the optimizer's
moments and step counters, the gradients, batch-norm statistics, the RNG
streams (dropout, random inputs) and possibly the train/eval mode or
``requires_grad``. :class:`TorchSnapshot` copies all of it; ``restore()`` puts
back bitwise the values saved (``Tensor.copy_`` of exact copies), after a
normal search, an unexpected error or ``KeyboardInterrupt``.

The copies of a CUDA/XPU/MPS model are kept in host memory, so they do not
take device memory from the probes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from wandb_batchsize.backends.base import host_rng_state, restore_host_rng


def _host_copy(tensor: Any) -> Any:
    """An exact copy of ``tensor`` in host memory (a clone when already there)."""
    t = tensor.detach()
    if t.device.type == "cpu":
        return t.clone()
    return t.to("cpu", copy=True)


@dataclass
class TorchSnapshot:
    """Weights, buffers, grads, train flags, optimizer state and RNG of a PyTorch model."""

    tensors: list[tuple[Any, Any]] = field(default_factory=list)  # (live tensor, saved copy)
    grads: list[tuple[Any, Any]] = field(default_factory=list)  # (param, saved grad or None)
    training: list[tuple[Any, bool]] = field(default_factory=list)
    # (optimizer, {param: {key: (device or None, saved)}}, param-group hyper-parameters)
    optimizers: list[tuple[Any, dict, list[dict]]] = field(default_factory=list)
    cpu_rng: Any = None
    device_rng: dict[str, Any] = field(default_factory=dict)
    host_rng: Any = None
    requires_grad: list[tuple[Any, bool]] = field(default_factory=list)

    @classmethod
    def take(cls, model: Any, optimizers: list[Any] = ()) -> TorchSnapshot:
        snap = cls()
        seen: set[int] = set()
        for tensor in [*model.parameters(), *model.buffers()]:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            snap.tensors.append((tensor, _host_copy(tensor)))
        for param in model.parameters():
            grad = param.grad
            snap.grads.append((param, None if grad is None else _host_copy(grad)))
            snap.requires_grad.append((param, param.requires_grad))
        snap.training = [(m, m.training) for m in model.modules()]
        for opt in optimizers:
            state = {
                p: {
                    k: (
                        (v.device, _host_copy(v))
                        if torch.is_tensor(v)
                        else (None, copy.deepcopy(v))
                    )
                    for k, v in s.items()
                }
                for p, s in opt.state.items()
            }
            groups = [
                {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
                for g in opt.param_groups
            ]
            snap.optimizers.append((opt, state, groups))
        snap.cpu_rng = torch.get_rng_state()
        for name in ("cuda", "xpu"):
            backend = getattr(torch, name, None)
            try:
                if backend is not None and backend.is_initialized():
                    snap.device_rng[name] = backend.get_rng_state_all()
            except Exception:  # noqa: BLE001 - a backend without RNG state has none to restore
                pass
        try:
            if torch.backends.mps.is_available():
                snap.device_rng["mps"] = torch.mps.get_rng_state()
        except Exception:  # noqa: BLE001
            pass
        snap.host_rng = host_rng_state()
        return snap

    def restore(self) -> None:
        with torch.no_grad():
            for live, saved in self.tensors:
                live.copy_(saved)
            for param, saved in self.grads:
                if saved is None:
                    param.grad = None
                else:
                    param.grad = saved.to(param.device, copy=True)
        for param, flag in self.requires_grad:
            param.requires_grad_(flag)
        for module, flag in self.training:
            module.training = flag
        for opt, state, groups in self.optimizers:
            restored = {}
            for p, s in state.items():
                restored[p] = {
                    k: (copy.deepcopy(v) if device is None else v.to(device, copy=True))
                    for k, (device, v) in s.items()
                }
            opt.state.clear()
            opt.state.update(restored)
            for group, saved in zip(opt.param_groups, groups, strict=True):
                for k in list(group):
                    if k != "params" and k not in saved:
                        del group[k]
                group.update(copy.deepcopy(saved))
        torch.set_rng_state(self.cpu_rng)
        for name, state in self.device_rng.items():
            if name == "mps":
                torch.mps.set_rng_state(state)
            else:
                getattr(torch, name).set_rng_state_all(state)
        restore_host_rng(self.host_rng)
