"""Lightning ``GradientNoiseScaleCallback``: ``B_simple`` while a model trains.

    trainer = lightning.Trainer(accumulate_grad_batches=4,
                                callbacks=[GradientNoiseScaleCallback()],
                                logger=WandbLogger(project="demo"))

A thin adapter over :class:`~wandb_batchsize.integrations.torch.noise_scale.GradientNoiseScaleMonitor`:
hooks go on the ``LightningModule``'s parameters at ``on_train_start`` (with
the strategy's ``DistributedDataParallel`` wrapper when there is one, whose
sync flag marks the backward that completes a step), each micro-batch's size
is read from the batch (``extract_batch_size``), and each optimizer step is
closed in ``on_before_optimizer_step`` (the norms were taken during backward,
before clipping). Lightning divides the loss by ``accumulate_grad_batches``
(``loss_reduction="mean"``); under AMP the precision plugin's ``GradScaler`` is
divided out. It needs ``accumulate_grad_batches >= 2`` or >= 2 DDP processes.

W&B: the run of the trainer's ``WandbLogger`` if it has one, else ``wandb.run``;
only global rank zero logs ``gns/B_simple``, ``gns/grad_sq``, ``gns/trace_cov``
(and the band) against ``gns/step`` (the trainer's ``global_step``), every
``log_every`` optimizer steps; the final values go to the run summary at
``on_train_end``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from wandb_batchsize.integrations._shared import NoiseScaleCallbackAPI
from wandb_batchsize.integrations.lightning._base import callback_bases, wandb_logger_run

__all__ = ["GradientNoiseScaleCallback"]


class GradientNoiseScaleCallback(NoiseScaleCallbackAPI, *callback_bases()):
    """Lightning callback: estimate the gradient noise scale during ``fit``.

    Args as :class:`~wandb_batchsize.integrations._shared.NoiseScaleCallbackAPI`:
    ``batch_size`` (default: read from each batch), ``log_every``, ``every``,
    ``decay``, ``confidence``, ``prefix``, ``log_to_wandb``, ``run`` (default:
    the trainer's ``WandbLogger`` run). ``result()`` the estimate so far.
    """

    TWO_SIZES_HINT = "Trainer(accumulate_grad_batches>=2)"

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        import torch

        model = getattr(trainer.strategy, "model", None)
        if not isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = pl_module
        automatic = bool(getattr(pl_module, "automatic_optimization", True))
        self._start_monitor(
            model,
            self.batch_size,
            accumulation=int(trainer.accumulate_grad_batches) if automatic else None,
            world=int(getattr(trainer, "world_size", 1) or 1),
            is_main=bool(getattr(trainer, "is_global_zero", True)),
            run=wandb_logger_run(trainer) if self.log_to_wandb else None,
            scaler=getattr(getattr(trainer, "precision_plugin", None), "scaler", None),
        )
        self._sizes: list[int] = []

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.batch_size is None and self.monitor is not None:
            from lightning.pytorch.utilities.data import extract_batch_size

            with contextlib.suppress(Exception):  # an odd batch: no size, no measurement
                self._sizes.append(int(extract_batch_size(batch)))

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self.monitor is None:
            return
        size = self.batch_size
        if size is None and self._sizes:
            # harmonic mean: E|g_b|^2 = |G|^2 + tr(Sigma) mean(1/b) over the micro-batches
            size = len(self._sizes) / sum(1.0 / s for s in self._sizes)
        self._sizes = []
        if size is None:
            return
        self.monitor.step(batch_size=size, step=int(trainer.global_step) + 1)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._finish_monitor()
