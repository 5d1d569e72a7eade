"""Lightning ``SusceptibilityCallback``: batch-scale statistics of the per-step loss.

    trainer = lightning.Trainer(callbacks=[SusceptibilityCallback(check_every=500)],
                                logger=WandbLogger(project="demo"))

The raw loss of each optimizer step is the ``"loss"`` that ``training_step``
returned, which Lightning hands to ``on_train_batch_end`` as ``outputs["loss"]``
(detached, on the device, already divided by ``accumulate_grad_batches``): the
micro-batch values are summed until ``trainer.global_step`` moves and multiplied
by ``accumulate_grad_batches / n`` for a step of n micro-batches, which gives
the mean loss of the accumulated batch the optimizer stepped on, the short last
window of an epoch included (Lightning divides it by the full count as well). No ``.item()``:
losses stay on the device until a check moves them in one transfer.

W&B: the run of the trainer's ``WandbLogger`` if it has one, else ``wandb.run``;
only the global-zero process logs. The final result goes to the run summary in
``on_train_end``.

Works with ``lightning.pytorch`` and ``pytorch_lightning``: when both are
installed the callback derives from both ``Callback`` classes, so either
``Trainer`` accepts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wandb_batchsize.integrations.lightning._base import callback_bases, wandb_logger_run
from wandb_batchsize.monitor.api import MonitorAPI

__all__ = ["SusceptibilityCallback"]


class SusceptibilityCallback(MonitorAPI, *callback_bases()):
    """Lightning callback: check the susceptibility every ``check_every`` optimizer steps.

    Parameters as :class:`wandb_batchsize.SusceptibilityMonitor`: ``check_every``,
    ``window``, ``detrend``, ``log_to_wandb`` and the options ``prefix``,
    ``chart_preset``, ``log_charts``, ``max_history``, ``run`` and analysis
    parameters. ``result()`` and ``history`` as there.
    """

    def _setup(self) -> None:
        self._trainer: Any = None
        self._last_global_step: int | None = None
        self._accumulation = 1  # the micro-batch losses arrive divided by this

    def _framework_run(self) -> Any:
        return None if self._trainer is None else wandb_logger_run(self._trainer)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._trainer = trainer
        self._is_main = bool(getattr(trainer, "is_global_zero", True))
        self._last_global_step = int(trainer.global_step)
        automatic = bool(getattr(pl_module, "automatic_optimization", True))
        self._accumulation = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
        if not automatic:
            self._accumulation = 1  # manual optimization: the loss as returned
        self._core.start()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is None:  # a skipped step (training_step returned None)
            return
        self._core.add_micro(loss)
        step = int(trainer.global_step)
        if step != self._last_global_step:  # the optimizer stepped in this batch
            self._last_global_step = step
            # each micro loss is the batch loss / accumulate_grad_batches, the short
            # last window of an epoch too: the step's mean is sum * accumulation / n
            scale = self._accumulation / max(self._core.n_micro, 1)
            self._core.end_step(step, reduce="sum", scale=scale)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._core.finish(int(trainer.global_step))
