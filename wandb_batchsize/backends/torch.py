"""The PyTorch backend: the one place that runs a training step of a ``torch.nn.Module``.

:class:`TorchBackend` meets :class:`wandb_batchsize.backends.base.Backend`. What
a step is:

- **forward + loss**: the batch conventions of
  :mod:`wandb_batchsize.backends.torch_loss` (``(*inputs, target)`` tuples,
  dicts, bare tensors; the model's own ``.loss``; a stand-in loss for the
  memory search);
- **one optimizer step** (:meth:`TorchBackend.train_step`): gradients cleared,
  forward + loss under ``torch.autocast`` for ``precision="bf16"|"fp16"``
  (fp16 with a ``GradScaler``), backward, optimizer step; a batch larger than
  ``micro_batch_size`` is accumulated over micro-batches (loss weighted by
  their share of the batch). A user ``step_fn(model, batch, optimizer) -> loss``
  replaces all of it.

A model wrapped in ``DistributedDataParallel``/``DataParallel`` is run through
its ``.module``, so no step runs a collective (ranks agree through
:mod:`wandb_batchsize.memory.distributed`).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from wandb_batchsize.backends import oom, torch_data, torch_memory
from wandb_batchsize.backends.base import check_precision, seed_host
from wandb_batchsize.backends.torch_loss import forward_loss, one_argument
from wandb_batchsize.backends.torch_state import TorchSnapshot

DEFAULT_OPTIMIZER = torch.optim.Adam
DEFAULT_LR = 1e-3
EVAL_BATCH_SIZE = 1024
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def default_lr(optimizer_cls: Any) -> float | None:
    """The ``lr`` default of an optimizer class's signature, if it has one."""
    try:
        default = inspect.signature(optimizer_cls).parameters["lr"].default
    except (KeyError, TypeError, ValueError):
        return None
    if default is inspect.Parameter.empty:
        return None
    try:
        return float(default)
    except (TypeError, ValueError):
        return None


def optimizer_class(name: str) -> type:
    """The ``torch.optim`` class called ``name``, case-insensitive (``"sgd"``, ``"adamw"``)."""
    classes = {
        n.lower(): getattr(torch.optim, n)
        for n in dir(torch.optim)
        if isinstance(getattr(torch.optim, n), type)
        and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)
    }
    try:
        return classes[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown optimizer name {name!r}; use a torch.optim class name such as "
            "'sgd', 'adam' or 'adamw', or pass the class itself"
        ) from None


class TorchBackend:
    """Runs steps of one PyTorch model (see the module docstring).

    Args:
        model: the module (a DDP/DataParallel wrapper is run through ``.module``).
        loss_fn: ``loss_fn(output, target)``; None: the model returns the loss.
        optimizer: the class (``cls(params, lr=..., **optimizer_kwargs)``), its
            name (``"sgd"``, ``"adam"``: a ``torch.optim`` class), or a
            factory ``f(params, lr) -> optimizer`` of the fresh optimizers that
            :meth:`new_optimizer` makes (default ``Adam(lr=1e-3)``).
        step_fn: ``step_fn(model, batch, optimizer) -> loss``: the user's whole
            training step (custom losses, GradScaler, several optimizers).
        precision: None, ``"bf16"`` or ``"fp16"`` autocast for the default step.
        device: where to run (default the model's device); see :meth:`on_device`.
        stand_in_loss: make a loss when the model returns none (memory search).
    """

    framework = "pytorch"

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        loss_fn: Callable[..., Any] | None = None,
        optimizer: Any = None,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        step_fn: Callable[[Any, Any, Any], Any] | None = None,
        precision: str | None = None,
        device: str | torch.device | None = None,
        stand_in_loss: bool = False,
        num_workers: int = 0,
        collate_fn: Any = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        del input_shape  # a torch module needs no build; batches come from batch_maker
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.module = torch_memory.unwrap(model)
        self.loss_fn = loss_fn
        self._one_argument = one_argument(loss_fn)
        self.step_fn = step_fn
        self.precision = check_precision(precision)
        self.stand_in = bool(stand_in_loss)
        self.num_workers = int(num_workers)
        self.collate_fn = collate_fn
        if isinstance(optimizer, str):
            optimizer = optimizer_class(optimizer)
        kwargs = dict(optimizer_kwargs or {})
        if optimizer is None and "lr" not in kwargs:
            kwargs["lr"] = DEFAULT_LR
        self.optimizer_factory = optimizer or DEFAULT_OPTIMIZER
        self.optimizer_kwargs = kwargs
        self.base_lr = kwargs.get("lr")
        if self.base_lr is None and isinstance(self.optimizer_factory, type):
            self.base_lr = default_lr(self.optimizer_factory)
        self.home_device = torch_memory.model_device(self.module)
        self.device = torch.device(device) if device is not None else self.home_device
        self._scalers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    # -- facts -----------------------------------------------------------------
    @property
    def device_name(self) -> str:
        return torch_memory.device_label(self.device)

    @property
    def model_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    @property
    def model_memory_bytes(self) -> int:
        """The seed's estimate: weights + gradients + Adam m and v, 4 copies of the weights."""
        return 4 * sum(p.numel() * p.element_size() for p in self.module.parameters())

    @property
    def resident_bytes(self) -> int:
        tensors = [*self.module.parameters(), *self.module.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    # -- batches ---------------------------------------------------------------
    def batch_maker(
        self,
        sample: Any = None,
        input_shape: tuple[int, ...] | None = None,
        sample_fn: Callable[[int], Any] | None = None,
    ) -> Callable[[int], Any]:
        return torch_data.batch_maker(sample, input_shape, sample_fn, self.device)

    def data_batches(self, data: Any, batch_size: int, seed: int) -> Iterator[Any]:
        """Endless full batches on the device (see :func:`torch_data.data_batches`)."""
        source = torch_data.data_batches(
            data, batch_size, seed, self.num_workers, self.collate_fn
        )
        try:
            for batch in source:
                yield torch_data.to_device(batch, self.device)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def data_len(self, data: Any) -> int | None:
        return torch_data.data_len(data)

    def batch_len(self, batch: Any) -> int:
        return torch_data.batch_len(batch)

    # -- training --------------------------------------------------------------
    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)  # also seeds every CUDA device
        seed_host(seed)

    def new_optimizer(
        self, lr: float | None = None, lr_factor: float = 1.0
    ) -> tuple[Any, float | None]:
        """A fresh optimizer over the model's parameters, and its learning rate.

        ``lr`` sets the learning rate; else ``lr_factor`` scales the configured one.
        """
        if lr is None and lr_factor != 1.0:
            if self.base_lr is None:
                raise ValueError("lr scaling needs a learning rate: pass optimizer_kwargs={'lr': ...}")
            lr = float(self.base_lr) * lr_factor
        params = self.module.parameters()
        factory = self.optimizer_factory
        if not isinstance(factory, type):
            chosen = lr if lr is not None else self.base_lr
            if chosen is None:
                raise ValueError("an optimizer factory f(params, lr) needs a learning rate")
            return factory(params, float(chosen)), float(chosen)
        kwargs = dict(self.optimizer_kwargs)
        if lr is not None:
            kwargs["lr"] = float(lr)
        chosen = kwargs.get("lr", self.base_lr)
        return factory(params, **kwargs), None if chosen is None else float(chosen)

    def search_optimizer(self, optimizer: Any = None) -> tuple[Any, bool]:
        """``(optimizer, owned)`` for the memory search: the user's, or a temporary Adam."""
        if optimizer is not None:
            return optimizer, False
        params = [p for p in self.module.parameters() if p.requires_grad]
        return (torch.optim.Adam(params) if params else None), True

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_AUTOCAST_DTYPES[self.precision])

    def _scaler(self, optimizer: Any) -> Any:
        if self.precision != "fp16" or optimizer is None:
            return None
        scaler = self._scalers.get(optimizer)
        if scaler is None:
            scaler = torch.amp.GradScaler(self.device.type)
            self._scalers[optimizer] = scaler
        return scaler

    def loss(self, batch: Any) -> torch.Tensor:
        """Forward + loss under the backend's precision (gradients as the caller's mode)."""
        with self._autocast():
            return forward_loss(
                self.module,
                batch,
                self.loss_fn,
                stand_in=self.stand_in,
                single=self._one_argument,
            )

    def train_step(
        self, batch: Any, optimizer: Any, micro_batch_size: int | None = None
    ) -> torch.Tensor | None:
        """One optimizer step on ``batch``; returns the batch's loss, detached, on the device."""
        module = self.module
        module.train()
        if self.step_fn is not None:
            loss = self.step_fn(module, batch, optimizer)
            return loss.detach() if torch.is_tensor(loss) else loss
        module.zero_grad(set_to_none=True)
        n = torch_data.batch_len(batch)
        parts = 1 if not micro_batch_size else max(1, math.ceil(n / int(micro_batch_size)))
        scaler = self._scaler(optimizer)
        total = None
        for part in torch_data.split_batch(batch, parts):
            weight = torch_data.batch_len(part) / n if parts > 1 else 1.0
            loss = self.loss(part)
            scaled = loss * weight if weight != 1.0 else loss
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            value = loss.detach() * weight if weight != 1.0 else loss.detach()
            total = value if total is None else total + value
            del loss, scaled
        if optimizer is not None:
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return total

    def eval_step(self, batch: Any) -> torch.Tensor:
        """Forward + loss in eval mode without gradients; the mode is put back."""
        module = self.module
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                return self.loss(batch).detach()
        finally:
            module.train(was_training)

    def evaluate(self, data: Any) -> float:
        """Mean loss over ``data`` (a Dataset or an iterable of batches), per-sample weighted."""
        batches = torch_data.eval_batches(data, EVAL_BATCH_SIZE, self.num_workers, self.collate_fn)
        total, count = 0.0, 0
        for batch in batches:
            batch = torch_data.to_device(batch, self.device)
            n = torch_data.batch_len(batch)
            total += float(self.eval_step(batch)) * n
            count += n
        if count == 0:
            raise ValueError("val_data yielded no batches")
        return total / count if math.isfinite(total) else float("nan")

    def zero_grad(self) -> None:
        self.module.zero_grad(set_to_none=True)

    def forget_steps(self) -> None:
        """Drop the per-optimizer gradient scalers (nothing else is cached)."""
        self._scalers = weakref.WeakKeyDictionary()

    # -- state -----------------------------------------------------------------
    def snapshot(self, optimizers: Sequence[Any] = ()) -> TorchSnapshot:
        return TorchSnapshot.take(self.module, [o for o in optimizers if o is not None])

    @contextlib.contextmanager
    def on_device(self) -> Iterator[None]:
        """Move the model to ``device`` for the duration (and back to where it was)."""
        moved = self.device != self.home_device
        if moved:
            self.model.to(self.device)
        try:
            yield
        finally:
            if moved or torch_memory.model_device(self.module) != self.home_device:
                self.model.to(self.home_device)

    # -- memory ----------------------------------------------------------------
    def meter(self, target_bytes: int | None = None) -> Any:
        return torch_memory.meter_for(self.device, target_bytes, self.resident_bytes)

    def memory_cap(self, target_bytes: int | None) -> contextlib.AbstractContextManager[Any]:
        return torch_memory.device_memory_cap(self.device, target_bytes)

    def is_oom(self, exc: BaseException) -> bool:
        return oom.is_oom_error(exc)

    def release(self, *objects: Any, full: bool = True) -> None:
        oom.release_memory(*objects, full=full)

    # -- host ------------------------------------------------------------------
    def to_host(self, values: Sequence[Any]) -> np.ndarray:
        """Device losses (and floats) as one float64 array, in one transfer."""
        if not values:
            return np.empty(0)
        if all(torch.is_tensor(v) for v in values):
            return torch_memory.tensors_to_host(values)
        return np.array([float(v) for v in values], dtype=np.float64)

    def synchronize(self, value: Any = None) -> None:
        torch_memory.synchronize(self.device)


def is_torch_model(model: Any) -> bool:
    return isinstance(model, torch.nn.Module)
