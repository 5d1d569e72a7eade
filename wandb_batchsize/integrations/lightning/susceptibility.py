"""Lightning ``SusceptibilityCallback``: batch-scale statistics of the per-step loss.

    trainer = lightning.Trainer(callbacks=[SusceptibilityCallback(check_every=500)],
                                logger=WandbLogger(project="demo"))

The raw loss of each optimizer step is the ``"loss"`` that ``training_step``
returned, which Lightning hands to ``on_train_batch_end`` as ``outputs["loss"]``
(detached, on the device, already divided by ``accumulate_grad_batches``): the
micro-batch values are summed until ``trainer.global_step`` moves, which gives
the mean loss of the accumulated batch the optimizer stepped on. No ``.item()``:
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

from wandb_batchsize.integrations._core import DEFAULT_DETREND, MonitorAPI
from wandb_batchsize.integrations.lightning._base import callback_bases, wandb_logger_run

__all__ = ["SusceptibilityCallback"]


class SusceptibilityCallback(MonitorAPI, *callback_bases()):
    """Lightning callback: check the susceptibility every ``check_every`` optimizer steps.

    Parameters as :class:`wandb_batchsize.SusceptibilityMonitor`: ``check_every``,
    ``window``, ``detrend``, ``log_to_wandb`` and the options ``prefix``,
    ``chart_preset``, ``log_charts``, ``max_history``, ``run`` and analysis
    parameters. ``result()`` and ``history`` as there.
    """

    def __init__(
        self,
        check_every: int = 500,
        window: int | None = None,
        detrend: Any = DEFAULT_DETREND,
        log_to_wandb: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()
        self._user_run = options.pop("run", None)
        self._trainer: Any = None
        self._last_global_step: int | None = None
        self._init_core(check_every, window, detrend, log_to_wandb, {**options, "run": self._run})

    def _run(self) -> Any:
        if self._user_run is not None:
            return self._user_run
        trainer = self._trainer
        if trainer is None:
            return None
        if not getattr(trainer, "is_global_zero", True):
            return False  # other ranks compute, rank zero logs
        return wandb_logger_run(trainer)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._trainer = trainer
        self._last_global_step = int(trainer.global_step)
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
            self._core.end_step(step, reduce="sum")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._core.finish(int(trainer.global_step))
