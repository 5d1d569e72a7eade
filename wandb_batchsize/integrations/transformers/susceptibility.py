"""Transformers ``SusceptibilityCallback``: batch-scale statistics of the per-step loss.

    trainer = Trainer(model, args, train_dataset=ds, callbacks=[SusceptibilityCallback()])

The ``Trainer`` hands callbacks only the loss averaged over ``logging_steps``
(``on_log``). The raw loss of each optimizer step is what ``Trainer.training_step``
returns for each micro-batch (detached, on the device, already scaled for
gradient accumulation), summed over the micro-batches of the step: exactly the
amount the Trainer adds to its own loss accumulator for that step, i.e. the
value it would log with ``logging_steps=1``. The callback finds the Trainer that
calls ``on_train_begin`` (it is the ``self`` of a calling frame; or use
:meth:`SusceptibilityCallback.attach`) and wraps that instance's
``training_step`` for the duration of training; ``logging_steps`` is untouched.
Losses stay on the device until a check moves them in one transfer.

W&B: ``wandb.run`` (the one ``report_to="wandb"`` starts, or the user's); only
the main process logs, against ``state.global_step``. The final result goes to
the run summary in ``on_train_end``.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import Any

from transformers import Trainer, TrainerCallback

from wandb_batchsize.monitor.api import MonitorAPI

__all__ = ["SusceptibilityCallback"]

_FRAMES_TO_SEARCH = 12


def _calling_trainer() -> Trainer | None:
    """The ``Trainer`` whose method is on the call stack (nearest first), or None."""
    frame = sys._getframe(1)
    for _ in range(_FRAMES_TO_SEARCH):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back
    return None


class SusceptibilityCallback(MonitorAPI, TrainerCallback):
    """``TrainerCallback``: check the susceptibility every ``check_every`` optimizer steps.

    Parameters as :class:`wandb_batchsize.SusceptibilityMonitor`: ``check_every``,
    ``window``, ``detrend``, ``log_to_wandb`` and the options ``prefix``,
    ``chart_preset``, ``log_charts``, ``max_history``, ``run`` and analysis
    parameters. ``result()`` and ``history`` as there.
    """

    def _setup(self) -> None:
        self._trainer: Trainer | None = None

    # -- capture of the per-step loss --------------------------------------------

    def attach(self, trainer: Trainer) -> SusceptibilityCallback:
        """Record the per-step loss of ``trainer`` (done automatically at ``on_train_begin``)."""
        if self._trainer is trainer:
            return self
        self.detach()
        original = trainer.training_step
        core = self._core

        @functools.wraps(original)
        def training_step(*args: Any, **kwargs: Any) -> Any:
            loss = original(*args, **kwargs)
            core.add_micro(loss)
            return loss

        training_step.__wandb_batchsize_original__ = original  # type: ignore[attr-defined]
        trainer.training_step = training_step  # instance attribute: shadows the method
        self._trainer = trainer
        return self

    def detach(self) -> None:
        """Give the trainer its own ``training_step`` back."""
        trainer, self._trainer = self._trainer, None
        if trainer is None:
            return
        current = trainer.__dict__.get("training_step")
        original = getattr(current, "__wandb_batchsize_original__", None)
        if original is None:
            return
        if getattr(original, "__self__", None) is trainer and original.__func__ is getattr(
            type(trainer), "training_step", None
        ):
            del trainer.training_step  # the class method shows through again
        else:
            trainer.training_step = original

    # -- TrainerCallback events --------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._is_main = bool(getattr(state, "is_world_process_zero", True))
        self._core.start()
        trainer = self._trainer or _calling_trainer()
        if trainer is None:
            warnings.warn(
                "SusceptibilityCallback: no transformers.Trainer found calling on_train_begin, "
                "so per-step losses cannot be recorded; call callback.attach(trainer) "
                "before training.",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        self.attach(trainer)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._core.end_step(int(state.global_step), reduce="sum")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.detach()
        self._core.finish(int(state.global_step))
