"""What one Lightning probe records: lr scaling at the start, each step's loss, the time."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from wandb_batchsize.backends.torch_data import batch_len
from wandb_batchsize.integrations.lightning._base import callback_bases


class ProbeRecorder:
    """The Lightning callback of one probe: lr scaling, losses, samples, timing."""

    def __init__(
        self, lr_factor: float, on_step: Callable[[int], None], synchronize: Callable[[], None]
    ) -> None:
        self.lr_factor = lr_factor
        self.on_step = on_step
        self.synchronize = synchronize
        self.losses: list[torch.Tensor] = []
        self.samples = 0
        self.lr: float | None = None
        self.start = 0.0
        self.warmup = 0.0
        self.seconds = 0.0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.lr_factor != 1.0:
            for opt in trainer.optimizers:
                for group in opt.param_groups:
                    group["lr"] = group["lr"] * self.lr_factor
                    if "initial_lr" in group:
                        group["initial_lr"] = group["initial_lr"] * self.lr_factor
            for config in getattr(trainer, "lr_scheduler_configs", []) or []:
                scheduler = config.scheduler
                if hasattr(scheduler, "base_lrs"):
                    scheduler.base_lrs = [lr * self.lr_factor for lr in scheduler.base_lrs]
        if trainer.optimizers:
            self.lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, torch.Tensor):
            raise ValueError(
                "BatchSizeProbe records the loss training_step returns; it returned "
                f"{type(outputs).__name__} (return the loss tensor or {{'loss': ...}})"
            )
        self.losses.append(loss.detach().reshape(()))
        self.samples += batch_len(batch)
        if len(self.losses) == 1:
            self.synchronize()
            self.warmup = time.perf_counter() - self.start
        self.on_step(len(self.losses))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.synchronize()
        self.seconds = time.perf_counter() - self.start


def recorder_callback(recorder: ProbeRecorder) -> Any:
    class RecorderCallback(*callback_bases()):
        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            recorder.on_train_start(trainer, pl_module)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
            recorder.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            recorder.on_train_end(trainer, pl_module)

    return RecorderCallback()
