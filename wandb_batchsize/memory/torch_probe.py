"""The PyTorch probe: one real training step (forward, loss, backward, optimizer step).

Built by :func:`wandb_batchsize.find_batch_size` for a ``torch.nn.Module``. It
runs the step the user's training will run, at a given batch size, and
reports whether it fitted and the memory it peaked at:

- on CUDA and XPU the reading is the caching allocator's own peak
  (``max_memory_allocated`` for the report, ``max_memory_reserved`` for the
  headroom), with the budget of the device (``mem_get_info``), capped by
  ``target_memory`` through ``set_per_process_memory_fraction`` for the
  duration of the search;
- on CPU the host-process meter of :mod:`wandb_batchsize.memory.meters`;
- on MPS there is no peak counter: doubling + bisection.

A model wrapped in ``DistributedDataParallel`` or ``DataParallel`` is probed
through its ``.module``: the probe's step must run no collective, so that a
rank that runs out of memory cannot leave the others waiting in a gradient
all-reduce (the ranks agree through :mod:`wandb_batchsize.memory.distributed`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from wandb_batchsize.memory.meters import NullMeter, Reading, host_meter
from wandb_batchsize.memory.oom import is_oom_error, release_memory, short_message
from wandb_batchsize.memory.search import ProbeOutcome
from wandb_batchsize.memory.state import TorchSnapshot


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
        return (
            self.target_bytes is not None
            and reading.headroom_bytes is not None
            and reading.headroom_bytes < 0
        )


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


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module that computes, without DDP/DataParallel's collectives."""
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


def model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _map(obj: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    if torch.is_tensor(obj):
        return fn(obj)
    if isinstance(obj, Mapping):
        mapped = {k: _map(v, fn) for k, v in obj.items()}
        try:
            return type(obj)(mapped)
        except Exception:  # noqa: BLE001 - a mapping type that cannot be rebuilt from a dict
            return mapped
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_map(v, fn) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map(v, fn) for v in obj)
    return obj


def _leading_size(obj: Any) -> int | None:
    sizes: list[int] = []
    _map(obj, lambda t: sizes.append(t.shape[0]) if t.dim() > 0 else None)
    return max(sizes) if sizes else None


def batch_maker(
    sample: Any = None,
    input_shape: tuple[int, ...] | None = None,
    sample_fn: Callable[[int], Any] | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Callable[[int], Any]:
    """A function ``batch_size -> batch`` on ``device``, from one of the three sources.

    ``sample``: a batch (tensor, tuple/list, dict) whose tensors share a leading
    batch dimension; rows are repeated cyclically to reach the batch size (use
    your *longest* sequences: the probe's memory is the worst case you give it).
    ``input_shape``: per-sample shape, random normal inputs. ``sample_fn``: called
    with the batch size, returns the batch.
    """
    given = sum(x is not None for x in (sample, input_shape, sample_fn))
    if given != 1:
        raise ValueError(
            "give exactly one of: a sample batch, input_shape=(...) (per-sample shape), "
            f"or sample_fn=lambda batch_size: ...; got {given}"
        )
    device = device or torch.device("cpu")
    if sample_fn is not None:
        return lambda b: _map(sample_fn(b), lambda t: t.to(device))
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        generator = torch.Generator().manual_seed(0)  # never the global RNG

        def from_shape(b: int) -> torch.Tensor:
            return torch.randn((b, *shape), generator=generator, dtype=dtype).to(device)

        return from_shape
    n = _leading_size(sample)
    if not n:
        raise ValueError(
            "the sample batch has no tensor with a batch dimension; pass a tensor, a tuple "
            "(inputs, targets) or a dict of tensors whose first dimension is the batch"
        )

    def tile(b: int) -> Any:
        def grow(t: torch.Tensor) -> torch.Tensor:
            if t.dim() == 0 or t.shape[0] != n:
                return t.to(device)
            index = torch.arange(b, device=t.device) % n
            return t.index_select(0, index).to(device)

        return _map(sample, grow)

    return tile


def default_loss(output: Any, target: Any) -> torch.Tensor:
    """A loss with the memory profile of a real one when the user gives none.

    ``output.loss`` (Hugging Face) or ``output["loss"]`` when present; with an
    integer target, cross-entropy; with a float target of the output's shape,
    mean squared error; otherwise the mean of the output's floating tensors.
    """
    loss = getattr(output, "loss", None)
    if loss is None and isinstance(output, Mapping):
        loss = output.get("loss")
    if torch.is_tensor(loss):
        return loss
    first = output
    if isinstance(output, (tuple, list)) and output:
        first = output[0]
    if isinstance(output, Mapping):
        first = next((v for v in output.values() if torch.is_tensor(v)), None)
    first = getattr(first, "logits", first)
    if torch.is_tensor(first) and torch.is_tensor(target):
        if not target.is_floating_point() and first.dim() >= 2:
            logits = first.reshape(-1, first.shape[-1]) if first.dim() > 2 else first
            return torch.nn.functional.cross_entropy(logits.float(), target.reshape(-1).long())
        if target.shape == first.shape:
            return torch.nn.functional.mse_loss(first.float(), target.float())
    tensors: list[torch.Tensor] = []
    _map(output, lambda t: tensors.append(t) if t.is_floating_point() and t.requires_grad else None)
    if not tensors:
        raise ValueError(
            "cannot make a loss from the model's output: pass loss_fn=(output, target) -> loss"
        )
    return sum(t.float().mean() for t in tensors)


class TorchProbe:
    """Runs training steps of a PyTorch model at a given batch size (see module docstring)."""

    framework = "pytorch"

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        sample: Any = None,
        input_shape: tuple[int, ...] | None = None,
        sample_fn: Callable[[int], Any] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        loss_fn: Callable[..., torch.Tensor] | None = None,
        target_bytes: int | None = None,
        steps_per_probe: int = 1,
        eval_step: bool = False,
    ) -> None:
        self.wrapped = model
        self.model = unwrap(model)
        self.device = model_device(self.model)
        self.make_batch = batch_maker(sample, input_shape, sample_fn, self.device)
        self.user_optimizer = optimizer
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.target_bytes = target_bytes
        self.steps_per_probe = max(1, int(steps_per_probe))
        self.eval_step = eval_step
        params = list(self.model.parameters())
        self.model_params = sum(p.numel() for p in params)
        # the seed's estimate: weights + gradients + Adam m and v, 4 copies of the weights
        self.model_memory_bytes = 4 * sum(p.numel() * p.element_size() for p in params)
        resident = sum(t.numel() * t.element_size() for t in [*params, *self.model.buffers()])
        if self.device.type in ("cuda", "xpu"):
            self.meter: Any = TorchDeviceMeter(self.device, target_bytes)
        elif self.device.type == "cpu":
            self.meter = host_meter(target_bytes, resident)
        else:
            self.meter = NullMeter()

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            with contextlib.suppress(Exception):
                return f"cuda:{self.device.index or 0} ({torch.cuda.get_device_name(self.device)})"
        return str(self.device)

    @property
    def budget_label(self) -> str:
        return getattr(self.meter, "name", "none")

    @contextlib.contextmanager
    def preserved(self) -> Iterator[None]:
        """Snapshot everything a probe changes; restore it on any exit (KeyboardInterrupt too)."""
        owned = self.optimizer is None
        if owned:
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = torch.optim.Adam(params) if params else None
        optimizers = [] if owned or self.optimizer is None else [self.optimizer]
        snapshot = TorchSnapshot.take(self.model, optimizers)
        try:
            with device_memory_cap(self.device, self.target_bytes):
                yield
        finally:
            try:
                if owned:
                    self.optimizer = None
                snapshot.restore()
            finally:
                del snapshot
                release_memory()

    def _forward(self, batch: Any) -> tuple[Any, Any]:
        target = None
        inputs = batch
        if isinstance(batch, (tuple, list)) and len(batch) == 2 and not isinstance(batch, dict):
            inputs, target = batch[0], batch[1]
        if isinstance(inputs, Mapping):
            output = self.model(**inputs)
        elif isinstance(inputs, (tuple, list)):
            output = self.model(*inputs)
        else:
            output = self.model(inputs)
        return output, target

    def _loss(self, output: Any, target: Any) -> torch.Tensor:
        if self.loss_fn is None:
            return default_loss(output, target)
        return self.loss_fn(output) if target is None else self.loss_fn(output, target)

    def _train_step(self, batch_size: int) -> None:
        self.model.train()
        batch = self.make_batch(batch_size)
        output, target = self._forward(batch)
        loss = self._loss(output, target)
        del output
        loss.backward()
        del loss
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        if self.eval_step:
            self.model.eval()
            with torch.no_grad():
                self._forward(batch)
            self.model.train()

    def __call__(self, batch_size: int) -> ProbeOutcome:
        error: str | None = None
        self.meter.start()
        try:
            for _ in range(self.steps_per_probe):
                self._train_step(batch_size)
        except Exception as exc:
            if not is_oom_error(exc):
                raise
            error = short_message(exc)
            release_memory(exc)
        finally:
            self.model.zero_grad(set_to_none=True)
        reading = self.meter.stop()
        release_memory(full=False)
        over = self.meter.over_budget(reading)
        if over and error is None:
            error = "over target_memory"
        return ProbeOutcome(
            fitted=error is None,
            peak_bytes=reading.peak_bytes,
            headroom_bytes=reading.headroom_bytes,
            budget_bytes=reading.budget_bytes,
            error=error,
            complete=error is None or (over and error == "over target_memory"),
        )


def is_torch_model(model: Any) -> bool:
    return isinstance(model, torch.nn.Module)
