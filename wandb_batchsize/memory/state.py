"""Snapshot and restore of everything a probe changes, in memory (never on disk).

A probe runs real training steps, so it changes the weights, the optimizer's
moments and step counters, the gradients, batch-norm statistics, the RNG
streams (dropout, random inputs) and possibly the train/eval mode. The search
takes a snapshot before the first probe and restores it in a ``finally``
block: after success, after an unexpected error in a probe, and after
``KeyboardInterrupt``. Restored values are bitwise the values saved
(``Tensor.copy_`` / ``Variable.assign`` of exact copies).

The snapshot of a CUDA/XPU/MPS model is kept in host memory, so it does not
take device memory from the probes. Frameworks are imported inside the
functions that need them.
"""

from __future__ import annotations

import contextlib
import copy
import random
import sys
from dataclasses import dataclass, field
from typing import Any


def _numpy_state() -> Any:
    np = sys.modules.get("numpy")
    return None if np is None else np.random.get_state()


def _restore_numpy(state: Any) -> None:
    if state is not None:
        sys.modules["numpy"].random.set_state(state)


# -- PyTorch ---------------------------------------------------------------------


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
    python_rng: Any = None
    numpy_rng: Any = None
    requires_grad: list[tuple[Any, bool]] = field(default_factory=list)

    @classmethod
    def take(cls, model: Any, optimizers: list[Any] = ()) -> TorchSnapshot:
        import torch

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
        snap.python_rng = random.getstate()
        snap.numpy_rng = _numpy_state()
        return snap

    def restore(self) -> None:
        import torch

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
        random.setstate(self.python_rng)
        _restore_numpy(self.numpy_rng)


# -- Keras -----------------------------------------------------------------------


@dataclass
class KerasSnapshot:
    """All variables of a Keras model and of its optimizer, plus the RNG streams.

    ``model.variables`` covers weights, non-trainable state (batch-norm moving
    statistics), metric accumulators and the seed-generator states of dropout
    layers. An optimizer that was not built yet is built first (with the
    initial values ``fit`` would give it) so that its variables can be restored.
    """

    variables: list[tuple[Any, Any]] = field(default_factory=list)
    trainable: list[tuple[Any, bool]] = field(default_factory=list)
    python_rng: Any = None
    numpy_rng: Any = None
    tf_rng: Any = None

    @classmethod
    def take(cls, model: Any, optimizers: list[Any] = ()) -> KerasSnapshot:
        import numpy as np

        snap = cls()
        seen: set[int] = set()
        live = list(model.variables)
        with contextlib.suppress(Exception):  # a model without compiled metrics has none
            live.extend(model.metrics_variables)  # compiled metrics' accumulators
        for opt in optimizers:
            if opt is None:
                continue
            if not getattr(opt, "built", True):
                opt.build(model.trainable_variables)
            live.extend(opt.variables)
        for var in live:
            if id(var) in seen:
                continue
            seen.add(id(var))
            snap.variables.append((var, np.array(var.numpy(), copy=True)))
        snap.trainable = [(layer, layer.trainable) for layer in _layers(model)]
        snap.python_rng = random.getstate()
        snap.numpy_rng = _numpy_state()
        generator = _tf_global_generator()
        if generator is not None:
            snap.tf_rng = (generator, generator.state.numpy().copy())
        return snap

    def restore(self) -> None:
        for var, value in self.variables:
            var.assign(value)
        for layer, flag in self.trainable:
            if layer.trainable != flag:
                layer.trainable = flag
        random.setstate(self.python_rng)
        _restore_numpy(self.numpy_rng)
        if self.tf_rng is not None:
            generator, state = self.tf_rng
            generator.state.assign(state)


def _tf_global_generator() -> Any:
    """TensorFlow's global ``tf.random.Generator`` if one was created, else None (none is made)."""
    module = sys.modules.get("tensorflow.python.ops.stateful_random_ops")
    return None if module is None else getattr(module, "global_generator", None)


def _layers(model: Any) -> list[Any]:
    try:
        return [model, *model._flatten_layers(include_self=False)]
    except Exception:  # noqa: BLE001 - a model without nested layers
        return [model]
