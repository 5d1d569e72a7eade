"""Batch-size probes for a plain PyTorch model (``pip install wandb-batchsize[torch]``).

``probe_batch_sizes(model, dataset, loss_fn)`` trains ``model`` briefly at each
batch size from the same starting weights, with a fresh optimizer and the same
seed, and analyses the metric against the batch size in sweep mode. The model,
its buffers, ``requires_grad``/``.grad``, train/eval mode and the global RNG
states are put back exactly (bitwise) afterwards, also after an error or
KeyboardInterrupt.
"""

from __future__ import annotations

import inspect
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from wandb_batchsize.backends.oom import is_oom_error, release_memory
from wandb_batchsize.backends.torch_state import TorchSnapshot
from wandb_batchsize.probe.core import (
    ProbeResult,
    Progress,
    TrainOutcome,
    build_result,
    choose_metric,
    plan_budget,
    resolve_batch_sizes,
    run_probes,
)

__all__ = ["probe_batch_sizes", "TorchBackend"]

DEFAULT_OPTIMIZER = torch.optim.Adam
DEFAULT_LR = 1e-3
VAL_BATCH_SIZE = 1024


def probe_batch_sizes(
    model: nn.Module,
    dataset: Dataset | Callable[[int], Iterable[Any]],
    loss_fn: Callable[..., torch.Tensor] | None = None,
    *,
    batch_sizes: Sequence[int] | None = None,
    budget: str = "samples",
    samples_per_size: int | None = None,
    steps_per_size: int = 50,
    optimizer_cls: type[torch.optim.Optimizer] | None = None,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    lr_scaling: str | None = None,
    base_batch_size: int | None = None,
    repeats: int = 1,
    seed: int = 0,
    device: str | torch.device | None = None,
    max_batch: int | None = None,
    val_data: Dataset | Iterable[Any] | None = None,
    metric: str = "auto",
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    n_bootstrap: int = 1000,
    verbose: bool = True,
    log_to_wandb: bool = True,
) -> ProbeResult:
    """Train briefly at several batch sizes and find where the loss starts to suffer.

    Args:
        model: the model, at the weights the probes start from (left unchanged).
        dataset: a ``torch.utils.data.Dataset`` yielding ``(input, target)``
            (shuffled with a seeded generator, ``drop_last=True``, reshuffled
            each pass), or a factory ``f(batch_size) -> iterable of batches``
            (a DataLoader; seeded through ``torch.manual_seed``; batches smaller
            than the size asked for are skipped so each step has the full batch).
        loss_fn: ``loss_fn(model(x), y)`` for a batch ``(x, y)`` (``(*xs, y)``
            calls ``model(*xs)``; a dict batch calls ``model(**batch)`` and
            ``loss_fn(output, batch)``; a bare tensor ``x`` gives
            ``loss_fn(model(x), x)``). None: the model's output is the loss (a
            tensor, or an object with ``.loss`` / ``["loss"]`` as in transformers).
        batch_sizes: the sizes to probe; default powers of two from 8 to
            ``min(max_batch or 1024, len(dataset))``.
        budget: ``"samples"`` (default): every size sees ``samples_per_size``
            samples (default ``steps_per_size * max(batch_sizes)``), the honest
            comparison at equal data and compute. ``"steps"``: every size takes
            ``steps_per_size`` steps, as the published ``find_optimal_batch_size``
            does (larger batches then see more data and look better).
        optimizer_cls, optimizer_kwargs: a fresh optimizer per probe; default
            ``torch.optim.Adam(lr=1e-3)``.
        lr_scaling: None (same lr everywhere), ``"linear"`` or ``"sqrt"``: lr at
            size B is ``lr * (B / base_batch_size)`` or its square root;
            ``base_batch_size`` defaults to the smallest probed size.
        repeats: probes per size; repeat ``r`` uses seed ``seed + r`` at every
            size and the analysis aggregates them (mean, standard error and a
            bootstrap interval for K_c).
        device: where to train; default the model's device. The model is moved
            back afterwards.
        max_batch: the memory ceiling (e.g. from ``find_batch_size``): caps the
            default sizes and leaves out larger given sizes.
        val_data: a Dataset or an iterable of batches: when given, the metric is
            the validation loss after each probe (``metric="auto"``).
        metric: ``"auto"``, ``"train_loss"`` (mean of the last third of the
            probe's losses, as published) or ``"val_loss"``.
        verbose: one line per size on stderr (and a bar on a terminal).
        log_to_wandb: log the probe table, the chi chart and ``probe/K_c`` to
            the active W&B run, if there is one.

    A size that runs out of memory is recorded (status ``"oom"``) and larger
    sizes are skipped; the others are kept. With fewer than four successful
    sizes the result has the table but ``sweep=None`` and a ``message``.
    """
    n_samples = _dataset_len(dataset)
    sizes, left_out = resolve_batch_sizes(batch_sizes, n_samples=n_samples, max_batch=max_batch)
    plan = plan_budget(
        sizes, budget=budget, samples_per_size=samples_per_size, steps_per_size=steps_per_size
    )
    chosen = choose_metric(metric, val_data is not None)
    backend = TorchBackend(
        model,
        dataset,
        loss_fn,
        optimizer_cls=optimizer_cls,
        optimizer_kwargs=optimizer_kwargs,
        device=device,
        val_data=val_data,
        num_workers=num_workers,
        collate_fn=collate_fn,
    )
    progress = Progress(enabled=verbose, label=chosen)
    progress.header(plan, repeats, chosen, "pytorch")
    with backend:
        records = run_probes(
            backend,
            plan,
            repeats=repeats,
            seed=seed,
            lr_scaling=lr_scaling,
            base_batch_size=base_batch_size,
            use_val=chosen == "val_loss",
            progress=progress,
        )
    return build_result(
        records,
        plan,
        metric=chosen,
        framework="pytorch",
        left_out=left_out,
        n_bootstrap=n_bootstrap,
        seed=seed,
        log_to_wandb=log_to_wandb,
    )


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def _dataset_len(dataset: Any) -> int | None:
    if isinstance(dataset, DataLoader):
        raise TypeError(
            "pass the DataLoader's dataset, or a factory such as "
            "`lambda b: DataLoader(ds, batch_size=b, shuffle=True, drop_last=True)`: "
            "a DataLoader has one fixed batch size"
        )
    if isinstance(dataset, Dataset) or hasattr(dataset, "__getitem__"):
        try:
            return len(dataset)  # type: ignore[arg-type]
        except TypeError:
            return None
    if callable(dataset):
        try:
            loader = dataset(1)
            return len(loader.dataset)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - unknown length: bounded by max_batch only
            return None
    raise TypeError(
        f"dataset must be a torch Dataset or a factory f(batch_size) -> batches, "
        f"got {type(dataset).__name__}"
    )


def batch_len(batch: Any) -> int:
    """The number of samples in a batch: the first dimension of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, Mapping):
        for value in batch.values():
            try:
                return batch_len(value)
            except TypeError:
                continue
    if isinstance(batch, (tuple, list)) and batch:
        for value in batch:
            try:
                return batch_len(value)
            except TypeError:
                continue
    if isinstance(batch, np.ndarray):
        return int(batch.shape[0])
    raise TypeError(f"cannot tell the size of a batch of type {type(batch).__name__}")


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _dataset_batches(
    dataset: Dataset, b: int, seed: int, num_workers: int, collate_fn: Any
) -> Iterator[Any]:
    """Endless shuffled full batches of ``dataset``, reshuffled every pass, seeded."""
    gen = torch.Generator().manual_seed(int(seed))
    if type(dataset) is TensorDataset and collate_fn is None:
        tensors = dataset.tensors
        n = len(dataset)
        while True:  # indexing the tensors directly: no per-sample collate
            order = torch.randperm(n, generator=gen)
            for start in range(0, n - b + 1, b):
                idx = order[start : start + b]
                yield tuple(t[idx] for t in tensors)
    loader = DataLoader(
        dataset,
        batch_size=b,
        shuffle=True,
        drop_last=True,
        generator=gen,
        num_workers=num_workers,
        collate_fn=collate_fn,
    )
    while True:
        yield from loader


def _factory_batches(factory: Callable[[int], Iterable[Any]], b: int) -> Iterator[Any]:
    """Full batches from ``factory(b)``, restarted (or rebuilt) when a pass ends."""
    loader = factory(b)
    while True:
        full, seen = 0, set()
        iterator = iter(loader)
        for batch in iterator:
            size = batch_len(batch)
            if size != b:
                seen.add(size)
                continue
            full += 1
            yield batch
        if full == 0:
            raise ValueError(
                f"the loader made by the factory for batch size {b} yielded no batch of {b} "
                f"samples (sizes seen: {sorted(seen) or 'none'}); it must honour the size it "
                "is given, with enough data for one full batch"
            )
        if iterator is loader:  # a one-shot iterator: ask for a new one
            loader = factory(b)


def _forward_loss(model: nn.Module, batch: Any, loss_fn: Callable[..., Any] | None) -> torch.Tensor:
    if isinstance(batch, Mapping):
        output, target = model(**batch), batch
    elif isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            output, target = model(batch[0]), batch[0]
        else:
            *inputs, target = batch
            output = model(*inputs)
    else:
        output, target = model(batch), batch
    if loss_fn is not None:
        return loss_fn(output, target)
    if isinstance(output, torch.Tensor):
        return output
    loss = getattr(output, "loss", None)
    if loss is None and isinstance(output, Mapping):
        loss = output.get("loss")
    if loss is None:
        raise TypeError(
            "loss_fn is None, so the model must return the loss (a tensor, or an "
            f"object with .loss); it returned {type(output).__name__}"
        )
    return loss


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
    elif device.type == "xpu":
        torch.xpu.synchronize(device)


def _default_lr(optimizer_cls: type) -> float | None:
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


# ---------------------------------------------------------------------------
# the backend
# ---------------------------------------------------------------------------


class TorchBackend:
    """Runs probes of one model: snapshot at ``__enter__``, restore before each
    probe and at ``__exit__`` (and the device moved back)."""

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        loss_fn: Callable[..., Any] | None,
        *,
        optimizer_cls: type[torch.optim.Optimizer] | None = None,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        device: str | torch.device | None = None,
        val_data: Any = None,
        num_workers: int = 0,
        collate_fn: Any = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.data = data
        self.loss_fn = loss_fn
        self.optimizer_cls = optimizer_cls or DEFAULT_OPTIMIZER
        kwargs = dict(optimizer_kwargs or {})
        if optimizer_cls is None and "lr" not in kwargs:
            kwargs["lr"] = DEFAULT_LR
        self.optimizer_kwargs = kwargs
        self.base_lr = kwargs.get("lr", _default_lr(self.optimizer_cls))
        self.model_device = _model_device(model)
        self.device = torch.device(device) if device is not None else self.model_device
        self.val_data = val_data
        self.num_workers = int(num_workers)
        self.collate_fn = collate_fn
        self._state: Any = None

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> TorchBackend:
        self._state = TorchSnapshot.take(self.model)
        if self.device != self.model_device:
            self.model.to(self.device)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.device != self.model_device:
            self.model.to(self.model_device)
        self.restore()
        self._state = None

    def restore(self) -> None:
        if self._state is not None:
            self._state.restore()

    def is_oom(self, exc: BaseException) -> bool:
        return is_oom_error(exc)

    def release(self, exc: BaseException | None = None) -> None:
        if exc is None:
            release_memory()
        else:
            release_memory(exc)

    # -- one probe -----------------------------------------------------------
    def _batches(self, b: int, seed: int) -> Iterator[Any]:
        if callable(self.data) and not isinstance(self.data, Dataset):
            return _factory_batches(self.data, b)
        return _dataset_batches(self.data, b, seed, self.num_workers, self.collate_fn)

    def train(
        self,
        batch_size: int,
        steps: int,
        seed: int,
        lr_factor: float,
        on_step: Callable[[int], None],
    ) -> TrainOutcome:
        torch.manual_seed(seed)  # also seeds every CUDA device
        random.seed(seed)
        np.random.seed(seed % 2**32)
        kwargs = dict(self.optimizer_kwargs)
        lr = self.base_lr
        if lr_factor != 1.0:
            if lr is None:
                raise ValueError(
                    "lr_scaling needs a learning rate: pass optimizer_kwargs={'lr': ...}"
                )
            lr = float(lr) * lr_factor
            kwargs["lr"] = lr
        model = self.model
        optimizer = self.optimizer_cls(model.parameters(), **kwargs)
        batches = self._batches(batch_size, seed)
        model.train()
        losses: list[torch.Tensor] = []
        samples = 0
        device = self.device
        start = time.perf_counter()
        warmup = 0.0
        try:
            for step in range(steps):
                batch = to_device(next(batches), device)
                samples += batch_len(batch)
                loss = _forward_loss(model, batch, self.loss_fn)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.detach())
                del batch, loss
                if step == 0:
                    _synchronize(device)
                    warmup = time.perf_counter() - start
                on_step(step + 1)
            _synchronize(device)
            seconds = time.perf_counter() - start
            values = torch.stack(losses).float().cpu().tolist() if losses else []
        finally:
            optimizer.zero_grad(set_to_none=True)
            del optimizer, losses
            if hasattr(batches, "close"):
                batches.close()
        val_loss = self.evaluate() if self.val_data is not None else None
        return TrainOutcome(
            losses=values,
            seconds=seconds,
            warmup_seconds=warmup,
            val_loss=val_loss,
            lr=None if lr is None else float(lr),
            samples=samples,
        )

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean loss over ``val_data`` (per-sample weighted), in eval mode."""
        model = self.model
        was_training = model.training
        model.eval()
        data = self.val_data
        if isinstance(data, Dataset) and not isinstance(data, DataLoader):
            data = DataLoader(
                data,
                batch_size=min(VAL_BATCH_SIZE, max(1, len(data))),  # type: ignore[arg-type]
                shuffle=False,
                num_workers=self.num_workers,
                collate_fn=self.collate_fn,
            )
        total, count = 0.0, 0
        try:
            for batch in data:
                batch = to_device(batch, self.device)
                n = batch_len(batch)
                total += float(_forward_loss(model, batch, self.loss_fn)) * n
                count += n
        finally:
            model.train(was_training)
        if count == 0:
            raise ValueError("val_data yielded no batches")
        return total / count if math.isfinite(total) else float("nan")


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")
