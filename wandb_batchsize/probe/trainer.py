"""One probe over a framework backend: a fresh optimizer, ``steps`` steps, the losses.

:class:`BackendProbe` is the driver's ``ProbeBackend`` for every framework that
has a backend in :mod:`wandb_batchsize.backends` (PyTorch, Keras): the backend
seeds, makes the optimizer, draws full batches, runs the step and evaluates;
this module only times the probe and keeps the losses on the device until the
end (one transfer per probe, no host sync per step but after the first, whose
time is the warm-up: compilation, cuDNN autotuning, allocator growth).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from wandb_batchsize.backends.base import Backend, Snapshot
from wandb_batchsize.probe.driver import TrainOutcome


class BackendProbe:
    """Probes of one model from the state it had on ``__enter__``, restored on ``__exit__``."""

    def __init__(self, backend: Backend, data: Any, val_data: Any = None) -> None:
        self.backend = backend
        self.data = data
        self.val_data = val_data
        self._snapshot: Snapshot | None = None
        self._placement: Any = None

    def __enter__(self) -> BackendProbe:
        on_device = getattr(self.backend, "on_device", None)
        if on_device is not None:  # the model trains on the requested device, moved back after
            self._placement = on_device()
            self._placement.__enter__()
        self._snapshot = self.backend.snapshot()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self.restore()
        finally:
            self._snapshot = None
            if self._placement is not None:
                self._placement.__exit__(*exc_info)
                self._placement = None

    def restore(self) -> None:
        if self._snapshot is not None:
            self._snapshot.restore()

    def is_oom(self, exc: BaseException) -> bool:
        return self.backend.is_oom(exc)

    def release(self, exc: BaseException | None = None) -> None:
        if exc is None:
            self.backend.release()
        else:
            self.backend.release(exc)

    def train(
        self,
        batch_size: int,
        steps: int,
        seed: int,
        lr_factor: float,
        on_step: Callable[[int], None],
    ) -> TrainOutcome:
        """``steps`` training steps at ``batch_size``, seeded with ``seed``, a fresh optimizer."""
        backend = self.backend
        backend.seed(seed)
        optimizer, lr = backend.new_optimizer(lr_factor=lr_factor)
        batches = backend.data_batches(self.data, batch_size, seed)
        losses: list[Any] = []
        samples = 0
        start = time.perf_counter()
        warmup = 0.0
        try:
            for step in range(steps):
                batch = next(batches)
                samples += backend.batch_len(batch)
                losses.append(backend.train_step(batch, optimizer))
                del batch
                if step == 0:
                    backend.synchronize(losses[0])
                    warmup = time.perf_counter() - start
                on_step(step + 1)
            backend.synchronize(losses[-1] if losses else None)
            seconds = time.perf_counter() - start
            values = backend.to_host(losses).tolist()
        finally:
            backend.zero_grad()
            del optimizer, losses
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        val_loss = backend.evaluate(self.val_data) if self.val_data is not None else None
        return TrainOutcome(
            losses=values,
            seconds=seconds,
            warmup_seconds=warmup,
            val_loss=val_loss,
            lr=lr,
            samples=samples,
        )
