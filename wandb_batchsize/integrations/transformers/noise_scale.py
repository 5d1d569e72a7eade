"""Transformers ``GradientNoiseScaleCallback``: ``B_simple`` while a ``Trainer`` trains.

    args = TrainingArguments(..., gradient_accumulation_steps=4)
    trainer = Trainer(model, args, train_dataset=ds, callbacks=[GradientNoiseScaleCallback()])

A thin adapter over :class:`~wandb_batchsize.integrations.torch.noise_scale.GradientNoiseScaleMonitor`:
hooks go on the model's parameters at ``on_train_begin``; the micro-batch is
``args.train_batch_size`` examples (per process), an optimizer step has
``args.gradient_accumulation_steps`` micro-batches on ``args.world_size``
processes, and each step is closed at ``on_step_end``. The norms are taken
during backward, so the Trainer's gradient clipping (``max_grad_norm``, done
before ``on_pre_optimizer_step``) does not bias them. The Trainer scales each
micro-batch loss for accumulation (``loss_reduction="mean"``). The short last
accumulation window of an epoch is skipped. It needs
``gradient_accumulation_steps >= 2`` or >= 2 processes.

Units: ``B_simple`` is in the units of ``batch_size``: examples (sequences).
Multiply by the tokens per sequence to read it as a batch in tokens.

W&B: ``wandb.run`` (the one ``report_to="wandb"`` starts, or the user's); only
the main process logs ``gns/*`` against ``gns/step`` (= ``state.global_step``)
every ``log_every`` optimizer steps, and the final values to the summary at
``on_train_end``.
"""

from __future__ import annotations

import warnings
from typing import Any

from transformers import TrainerCallback

from wandb_batchsize.integrations._shared import NoiseScaleCallbackAPI

__all__ = ["GradientNoiseScaleCallback"]


class GradientNoiseScaleCallback(NoiseScaleCallbackAPI, TrainerCallback):
    """``TrainerCallback``: estimate the gradient noise scale during ``train()``.

    Args as :class:`~wandb_batchsize.integrations._shared.NoiseScaleCallbackAPI`:
    ``batch_size`` (default ``args.train_batch_size``), ``log_every``, ``every``,
    ``decay``, ``confidence``, ``prefix``, ``log_to_wandb``, ``run`` (default
    ``wandb.run``). ``result()`` the estimate so far.
    """

    TWO_SIZES_HINT = "TrainingArguments(gradient_accumulation_steps>=2)"

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        if model is None:
            warnings.warn(
                "GradientNoiseScaleCallback: the Trainer passed no model; nothing is measured",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        self._start_monitor(
            model,
            self.batch_size or int(args.train_batch_size),
            accumulation=int(args.gradient_accumulation_steps),
            world=int(getattr(args, "world_size", 1) or 1),
            is_main=bool(getattr(state, "is_world_process_zero", True)),
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any):
        if self.monitor is not None:
            self.monitor.step(step=int(state.global_step))

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any):
        self._finish_monitor()
