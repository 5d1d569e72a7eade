"""The ``transformers.Trainer``'s own training step, as a ``step_fn`` for ``find_batch_size``.

What one optimizer step of ``Trainer._inner_training_loop`` runs, before
``train()`` has wrapped anything: ``trainer.training_step(model, inputs,
num_items_in_batch)`` (``_prepare_inputs``, ``compute_loss`` — a custom
``compute_loss`` or ``compute_loss_func`` too — and ``accelerator.backward``,
with the accelerator's GradScaler for fp16) under ``accelerator.autocast()``
(the mixed precision of ``bf16=``/``fp16=``, which ``train()`` would apply by
wrapping the model's forward), gradient clipping at ``args.max_grad_norm``,
then the step of the optimizer ``trainer.create_optimizer()`` builds from the
arguments (AdamW, its weight-decay groups, ``optim=`` choices) and
``model.zero_grad()``.

:meth:`TrainerStep.probing` puts back what the probes touch outside the
model and optimizer (which ``find_batch_size`` restores): ``trainer.optimizer``
(None again when it was: ``train()`` then builds its own),
``current_gradient_accumulation_steps`` and the GradScaler's state.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch

#: items scanned for the longest ``input_ids`` before giving up with a warning
SCAN_LIMIT = 200_000


def longest_sequence(dataset: Any, key: str = "input_ids") -> int | None:
    """The longest ``dataset[i][key]`` (a list or tensor), or None when the items have no ``key``.

    A ``datasets.Dataset`` is read one column only. Scans at most
    :data:`SCAN_LIMIT` items (a warning says so: pass ``max_length=``).
    """
    try:
        n = len(dataset)
    except TypeError:
        return None
    column_names = getattr(dataset, "column_names", None)
    if column_names is not None:
        if key not in column_names:
            return None
        dataset = dataset.select_columns([key])
    longest = None
    for i in range(min(n, SCAN_LIMIT)):
        item = dataset[i]
        if not isinstance(item, Mapping) or key not in item:
            return None
        length = len(item[key])
        longest = length if longest is None else max(longest, length)
    if n > SCAN_LIMIT:
        warnings.warn(
            f"fit_batch_size: looked for the longest {key} in the first {SCAN_LIMIT} of {n} "
            "training items only; pass max_length= to probe the true worst case",
            UserWarning,
            stacklevel=3,
        )
    return longest


def _num_items(batch: Any) -> Any:
    """Label tokens that count in the loss (``labels != -100``), as the training loop passes."""
    labels = batch.get("labels") if isinstance(batch, Mapping) else None
    if torch.is_tensor(labels):
        return (labels != -100).sum()
    return None


class TrainerStep:
    """``step_fn(model, batch, optimizer)`` running ``trainer``'s training step (see the module)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def first_batch(self) -> Any:
        """The first batch of ``get_train_dataloader()``: collated as training collates it."""
        loader = self.trainer.get_train_dataloader()
        try:
            return next(iter(loader))
        except StopIteration:
            raise ValueError("the Trainer's train dataloader yielded no batch") from None

    def __call__(self, model: Any, batch: Any, optimizer: Any) -> Any:
        trainer = self.trainer
        del model  # the module itself; the Trainer's step takes trainer.model
        with trainer.accelerator.autocast():
            loss = trainer.training_step(trainer.model, batch, _num_items(batch))
        max_norm = float(getattr(trainer.args, "max_grad_norm", 0) or 0)
        if max_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), max_norm)
        scaler = getattr(trainer.accelerator, "scaler", None)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        trainer.model.zero_grad()
        return loss

    def search(self, sample: Any, **options: Any) -> Any:
        from wandb_batchsize.memory.finder import find_batch_size

        return find_batch_size(
            self.trainer.model,
            sample,
            optimizer=self.trainer.optimizer,
            step_fn=self,
            log_to_wandb=False,
            **options,
        )

    def wandb_run(self) -> Any:
        """The run of the Trainer's ``WandbCallback`` once it has started one, else None."""
        for callback in self.trainer.callback_handler.callbacks:
            if type(callback).__name__ == "WandbCallback" and getattr(
                callback, "_initialized", False
            ):
                wandb = getattr(callback, "_wandb", None)
                return getattr(wandb, "run", None)
        return None

    @contextlib.contextmanager
    def probing(self) -> Iterator[None]:
        """The Trainer's optimizer built for the probes; what they touch put back on exit."""
        trainer = self.trainer
        had_optimizer = trainer.optimizer is not None
        missing = object()
        accumulation = trainer.__dict__.get("current_gradient_accumulation_steps", missing)
        scaler = getattr(trainer.accelerator, "scaler", None)
        scaler_state = scaler.state_dict() if scaler is not None else None
        trainer.current_gradient_accumulation_steps = 1  # one micro-batch per probe step
        try:
            trainer.create_optimizer()
            yield
        finally:
            if not had_optimizer:
                trainer.optimizer = None
            if accumulation is missing:
                trainer.__dict__.pop("current_gradient_accumulation_steps", None)
            else:
                trainer.current_gradient_accumulation_steps = accumulation
            if scaler is not None and scaler_state is not None:
                scaler.load_state_dict(scaler_state)
