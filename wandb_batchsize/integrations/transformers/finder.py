"""``fit_batch_size(trainer, global_batch_size=None)``: the memory ceiling of the Trainer's own step.

    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=collate)
    fit_batch_size(trainer, global_batch_size=256)   # before train()
    trainer.train()

Called before ``trainer.train()``, it runs :func:`wandb_batchsize.find_batch_size`
with the Trainer's own step (:mod:`._finder_step`: ``trainer.training_step``
— ``compute_loss`` and ``accelerator.backward`` — under the accelerator's
autocast, gradient clipping at ``max_grad_norm``, then a step of the
optimizer ``trainer.create_optimizer()`` builds from the arguments), on the
first batch of ``trainer.get_train_dataloader()`` (collated by the Trainer's
collator) lengthened to the longest ``input_ids`` of the train dataset (or
your ``max_length``), so the probe is the worst case. Weights, optimizer and
RNG are restored bitwise; the size is confirmed by full training steps.

Then it sets ``args.per_device_train_batch_size`` and
``args.gradient_accumulation_steps`` so that ``per_device * accumulation *
world_size == global_batch_size`` exactly (the largest per-device size at
most the ceiling that divides the global batch, and a note when that is
below the ceiling), and records ``batch_finder/*`` on the Trainer's W&B run —
the one ``WandbCallback`` starts in ``train()``. Transformers'
``auto_find_batch_size`` only halves the batch after an OOM in training and
changes the global batch without the accumulation; this keeps it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from transformers import Trainer  # imported here: a missing extra is named on first use

from wandb_batchsize.integrations._finder_log import record
from wandb_batchsize.integrations._finder_options import check_finder_options
from wandb_batchsize.integrations._global_batch import split_global_batch
from wandb_batchsize.integrations._torch_rng import same_rng
from wandb_batchsize.integrations.transformers._finder_step import TrainerStep, longest_sequence

__all__ = ["fit_batch_size"]

SOURCE = "fit_batch_size"
_DEFAULT_MAX = 4096


def _check_trainer(trainer: Any) -> None:
    if not isinstance(trainer, Trainer):
        raise TypeError(
            f"fit_batch_size needs a transformers.Trainer, got {type(trainer).__name__}"
        )
    if trainer.train_dataset is None:
        raise ValueError("fit_batch_size needs the Trainer's train_dataset: pass train_dataset=")
    if getattr(trainer, "is_deepspeed_enabled", False) or getattr(
        trainer, "is_fsdp_enabled", False
    ):
        raise NotImplementedError(
            "fit_batch_size does not support DeepSpeed or FSDP yet: their model is sharded "
            "only inside train(), so a probe before it measures the unsharded step. Find the "
            "size with a plain DDP / single-device run, or use the DeepSpeed config's own values"
        )


def _devices(trainer: Any) -> int:
    """Data-parallel replicas: processes x GPUs per process (DataParallel)."""
    args = trainer.args
    return max(1, int(args.world_size)) * max(1, int(getattr(args, "n_gpu", 1) or 1))


def _max_batch_size(trainer: Any, devices: int, given: int | None, global_batch: int | None) -> int:
    limit = given or _DEFAULT_MAX
    if given is None:
        with contextlib.suppress(TypeError):  # an IterableDataset has no length
            limit = min(limit, max(1, len(trainer.train_dataset) // devices))
    if global_batch is not None:
        limit = min(limit, int(global_batch) // devices)
    return limit


def fit_batch_size(
    trainer: Any,
    global_batch_size: int | None = None,
    *,
    sample: Any = None,
    max_length: int | None = None,
    max_batch_size: int | None = None,
    verbose: bool = True,
    log_to_wandb: bool = True,
    **finder_options: Any,
) -> Any:
    """Set the Trainer's per-device batch (and accumulation) from the memory ceiling of its step.

    Args:
        trainer: a ``transformers.Trainer`` with its ``train_dataset``, before ``train()``.
        global_batch_size: keep this many samples per optimizer step:
            ``per_device_train_batch_size * gradient_accumulation_steps *
            world_size == global_batch_size`` (``ValueError`` when it is smaller
            than the world size or not a multiple of it). None: the per-device
            batch becomes the ceiling, the accumulation is left as set.
        sample: a collated batch (dict of tensors) to probe with, instead of
            the first batch of ``get_train_dataloader()``.
        max_length: the longest sequence training will see; default the
            longest ``input_ids`` in the train dataset (when its items have
            them), else the sample's own length.
        max_batch_size: the largest size searched (default 4096, at most the
            dataset length and the global batch per device).
        verbose, log_to_wandb: the progress table; ``batch_finder/*`` on the
            Trainer's W&B run (main process only).
        **finder_options: other ``find_batch_size`` options (``min_batch_size``,
            ``safety_factor``, ``multiple_of``, ``target_memory``,
            ``tolerance``, ``confirm_steps`` ...).

    Returns:
        The :class:`~wandb_batchsize.memory.result.MemorySearchResult`;
        ``result.batch_size`` is the confirmed ceiling, which can be above the
        per-device size set when the global batch has no divisor near it.
    """
    _check_trainer(trainer)
    options = check_finder_options(dict(finder_options), SOURCE, ("sample_fn",))
    devices = _devices(trainer)
    if global_batch_size is not None:
        split_global_batch(global_batch_size, devices, 1)  # errors before any probe
    main = bool(trainer.is_world_process_zero())
    step = TrainerStep(trainer)
    with same_rng(trainer.args.device), step.probing():
        if sample is None:
            sample = step.first_batch()
        if max_length is None:
            max_length = longest_sequence(trainer.train_dataset)
        result = step.search(
            sample,
            max_length=max_length,
            max_batch_size=_max_batch_size(trainer, devices, max_batch_size, global_batch_size),
            verbose=verbose and main,
            **options,
        )
    args = trainer.args
    per_device, accumulation = result.batch_size, int(args.gradient_accumulation_steps)
    if global_batch_size is not None:
        split = split_global_batch(global_batch_size, devices, result.batch_size)
        per_device, accumulation = split.per_device, split.accumulation
        if split.note and verbose and main:
            print(f"fit_batch_size: {split.note}", flush=True)
    args.per_device_train_batch_size = per_device
    args.gradient_accumulation_steps = accumulation
    trainer._train_batch_size = args.train_batch_size  # what train() builds its loader with
    if verbose and main:
        print(
            f"fit_batch_size: per_device_train_batch_size={per_device} x "
            f"gradient_accumulation_steps={accumulation} x {devices} device(s) = "
            f"{per_device * accumulation * devices} samples per optimizer step",
            flush=True,
        )
    if log_to_wandb and main:
        record(
            result,
            source=SOURCE,
            per_device=per_device,
            accumulation=accumulation,
            world_size=devices,
            config={
                "per_device_train_batch_size": per_device,
                "gradient_accumulation_steps": accumulation,
            },
            run=step.wandb_run(),
            verbose=verbose,
        )
    return result
