"""One backend per framework: the training step, its state and its memory in one place.

- :mod:`.base`: the :class:`~.base.Backend` contract and the framework-free
  helpers (host RNG, restore-on-exit);
- :mod:`.torch` (with ``torch_data``, ``torch_loss``, ``torch_state``,
  ``torch_memory``, ``torch_distributed``, ``torch_grads``): PyTorch;
- :mod:`.keras` (with ``keras_data``, ``keras_state``): Keras 3;
- :mod:`.oom` and :mod:`.host_memory`: OOM recognition and release, and the
  host-process memory meter, shared by both.

:func:`backend_for` picks the backend of a model without importing a framework
the model does not come from. These modules are the only ones (with
``integrations/``) that import torch, TensorFlow or Keras.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from wandb_batchsize.backends.base import Backend, Snapshot, restoring

__all__ = ["Backend", "Snapshot", "backend_for", "combine_losses", "restoring", "values_to_host"]


def _is_torch_module(model: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def backend_for(model: Any, **options: Any) -> Backend:
    """The backend of ``model``: a ``torch.nn.Module`` or a Keras model.

    ``options`` common to both: ``loss_fn``, ``optimizer``, ``input_shape``
    (builds an unbuilt Keras model), ``step_fn`` and ``precision`` (PyTorch
    only); the rest are the backend's own (``TorchBackend``: ``optimizer_kwargs``,
    ``device``, ``stand_in_loss``, ``num_workers``, ``collate_fn``).
    """
    if _is_torch_module(model):
        from wandb_batchsize.backends.torch import TorchBackend

        return TorchBackend(model, **options)
    from wandb_batchsize.backends.keras import is_keras_model

    if is_keras_model(model):
        from wandb_batchsize.backends.keras import KerasBackend

        return KerasBackend(model, **options)
    raise TypeError(f"expected a torch.nn.Module or a Keras model, got {type(model).__name__}")


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and torch.is_tensor(value)


def values_to_host(values: Sequence[Any]) -> np.ndarray:
    """Losses as one float64 host array: torch tensors in one transfer, the rest by value."""
    if values and all(_is_tensor(v) for v in values):
        from wandb_batchsize.backends.torch_memory import tensors_to_host

        return tensors_to_host(values)
    host = []
    for value in values:
        numpy = getattr(value, "numpy", None)
        host.append(float(np.asarray(numpy() if numpy is not None else value).reshape(-1).mean()))
    return np.asarray(host, dtype=np.float64)


def combine_losses(values: Sequence[Any], reduce: str = "sum") -> Any:
    """One step's loss from its micro-batch losses (sum or mean), on their device."""
    if all(isinstance(v, (float, int)) for v in values):
        total = float(sum(values))
        return total if reduce == "sum" else total / len(values)
    if any(_is_tensor(v) for v in values):
        from wandb_batchsize.backends.torch_memory import combine_losses as combine

        return combine(values, reduce)
    host = values_to_host(values)
    return float(host.sum() if reduce == "sum" else host.mean())
