"""``BatchSizeFinder``: the memory ceiling of the real ``training_step``, found on ``fit`` start.

    trainer = Trainer(callbacks=[BatchSizeFinder(global_batch_size=512)], logger=WandbLogger())
    trainer.fit(model, datamodule=dm)   # dm.batch_size (or model.batch_size) is set first

On ``fit`` start (after Lightning has set up the strategy, the precision
plugin and the optimizers, before the train dataloader is built) the callback
calls :func:`wandb_batchsize.find_batch_size` with the module's own step
(:class:`~._finder_step.LightningStep`: ``training_step``, backward and
optimizer step through the Trainer's strategy and precision plugin, with the
optimizers ``configure_optimizers`` built), on the first batch of the train
dataloader repeated up to each probed size (or your ``sample`` /
``sample_fn``; ``max_length`` lengthens token batches to the worst case). The
search restores weights, buffers, optimizer state, RNG and the GradScaler
bitwise, releases memory and confirms the size with full training steps.
Then it sets ``batch_arg_name`` where Lightning's own finder does (the
datamodule, the module, ``module.hparams``), so the train dataloader Lightning
builds next uses it; with ``global_batch_size`` it also sets
``trainer.accumulate_grad_batches`` so that ``batch_size *
accumulate_grad_batches * world_size == global_batch_size`` exactly.

Unlike Lightning's ``BatchSizeFinder`` it works under DDP: every rank
searches with its own memory and the ranks agree on the smallest ceiling
after each probe (no probe runs a collective). The answer is logged through
the Trainer's ``WandbLogger`` run (or ``wandb.run``), by rank zero only.
"""

from __future__ import annotations

from typing import Any

from wandb_batchsize.integrations._finder_log import record
from wandb_batchsize.integrations._finder_options import check_finder_options
from wandb_batchsize.integrations._global_batch import split_global_batch
from wandb_batchsize.integrations._torch_rng import same_rng
from wandb_batchsize.integrations.lightning._base import callback_bases, wandb_logger_run
from wandb_batchsize.integrations.lightning._finder_step import LightningStep
from wandb_batchsize.integrations.lightning.batch_attribute import BatchSizeAttribute

__all__ = ["BatchSizeFinder"]

SOURCE = "BatchSizeFinder"
_DEFAULT_MAX = 4096


def train_loaders(trainer: Any) -> Any:
    """The train dataloader(s) as ``train_dataloader()`` / ``fit(train_dataloaders=)`` give them."""
    return trainer.fit_loop._data_source.dataloader()


def first_train_batch(trainer: Any, loaders: Any) -> Any:
    """The first batch of the train dataloader(s), moved by the strategy (transfer hooks run)."""
    if type(trainer).__module__.startswith("pytorch_lightning"):
        from pytorch_lightning.utilities import CombinedLoader
    else:
        from lightning.pytorch.utilities import CombinedLoader
    combined = CombinedLoader(loaders, mode="max_size_cycle")
    iterator = iter(combined)
    try:
        batch, _, _ = next(iterator)
    except StopIteration:
        raise ValueError("the train dataloader yielded no batch: nothing to probe with") from None
    finally:
        combined._iterator = None
    return trainer.strategy.batch_to_device(batch)


def _dataset_len(loaders: Any) -> int | None:
    """Samples in the (single) train dataset, if it has a length."""
    try:
        return len(loaders.dataset)
    except Exception:  # noqa: BLE001 - several loaders, an IterableDataset, no length
        return None


def _loader_batch_sizes(loader: Any) -> set[int]:
    """The ``batch_size`` of a DataLoader, a CombinedLoader, or a list/dict of loaders."""
    from collections.abc import Mapping

    if loader is None:
        return set()
    items = getattr(loader, "flattened", None)
    if items is None:
        if isinstance(loader, Mapping):
            items = list(loader.values())
        elif isinstance(loader, (list, tuple)):
            items = list(loader)
        else:
            items = [loader]
    return {getattr(dl, "batch_size", None) for dl in items} - {None}


class BatchSizeFinder(*callback_bases()):  # type: ignore[misc]
    """Find the largest batch the module's real training step fits, on ``fit`` start.

    Args:
        global_batch_size: keep this effective batch: the per-device batch is
            the largest divisor of ``global_batch_size / world_size`` at most the
            confirmed ceiling and ``trainer.accumulate_grad_batches`` makes up
            the rest (``batch_size * accumulate_grad_batches * world_size ==
            global_batch_size``). None: train at the ceiling, accumulation as set.
        batch_arg_name: the attribute that holds the batch size, set on the
            datamodule, the module and ``module.hparams`` wherever it exists
            (as Lightning's ``BatchSizeFinder``); ``train_dataloader`` must read it.
        sample, sample_fn, max_length: the worst-case batch (see
            ``find_batch_size``); default: the first train batch, repeated.
        max_batch_size: the largest size searched (default 4096, at most the
            train dataset's length and ``global_batch_size / world_size``).
        verbose: the progress table (rank zero only).
        log_to_wandb: record the answer on the ``WandbLogger`` run (or
            ``wandb.run``, or the next run), rank zero only.
        **finder_options: the other ``find_batch_size`` options
            (``min_batch_size``, ``safety_factor``, ``multiple_of``,
            ``target_memory``, ``tolerance``, ``confirm_steps`` ...).

    After ``fit`` starts: ``result`` (the ``MemorySearchResult``),
    ``optimal_batch_size`` (the per-device size set) and
    ``accumulate_grad_batches``.
    """

    def __init__(
        self,
        global_batch_size: int | None = None,
        *,
        batch_arg_name: str = "batch_size",
        sample: Any = None,
        sample_fn: Any = None,
        max_length: int | None = None,
        max_batch_size: int | None = None,
        verbose: bool = True,
        log_to_wandb: bool = True,
        **finder_options: Any,
    ) -> None:
        if global_batch_size is not None:
            split_global_batch(global_batch_size, 1, 1)  # a positive integer, or a clear error
        if sample is not None and sample_fn is not None:
            raise ValueError("give at most one of sample and sample_fn")
        self.global_batch_size = global_batch_size
        self.batch_arg_name = batch_arg_name
        self.sample = sample
        self.sample_fn = sample_fn
        self.max_length = max_length
        self.max_batch_size = max_batch_size
        self.verbose = verbose
        self.log_to_wandb = log_to_wandb
        self.finder_options = check_finder_options(dict(finder_options), SOURCE)
        self.result: Any = None
        self.optimal_batch_size: int | None = None
        self.accumulate_grad_batches: int | None = None
        self._pending_log = False

    def _max_batch_size(self, world: int, loaders: Any) -> int:
        limit = self.max_batch_size or _DEFAULT_MAX
        if self.max_batch_size is None and loaders is not None:
            n = _dataset_len(loaders)
            if n:
                limit = min(limit, max(1, n // world))
        if self.global_batch_size is not None:
            limit = min(limit, int(self.global_batch_size) // world)
        return max(limit, int(self.finder_options.get("min_batch_size", 2)))

    def _search(self, trainer: Any, pl_module: Any, world: int, main: bool) -> Any:
        """``find_batch_size`` with the module's step, on the first train batch or the user's."""
        from wandb_batchsize.memory.finder import find_batch_size

        sample, sample_fn = self.sample, self.sample_fn
        need_loaders = (sample is None and sample_fn is None) or self.max_batch_size is None
        loaders = train_loaders(trainer) if need_loaders else None
        if sample is None and sample_fn is None:
            sample = first_train_batch(trainer, loaders)
        elif sample is not None:
            sample = trainer.strategy.batch_to_device(sample)
        step = LightningStep(trainer, pl_module)
        with step.probing():
            return find_batch_size(
                pl_module,
                sample,
                sample_fn=sample_fn,
                max_length=self.max_length,
                optimizer=step.optimizers or None,
                step_fn=step,
                max_batch_size=self._max_batch_size(world, loaders),
                verbose=self.verbose and main,
                log_to_wandb=False,
                **self.finder_options,
            )

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        attribute = BatchSizeAttribute(pl_module, trainer.datamodule, self.batch_arg_name)
        if not attribute.exists:
            raise ValueError(
                f"BatchSizeFinder: no attribute {self.batch_arg_name!r} on the datamodule, the "
                "LightningModule or its hparams, so the batch size found cannot reach the train "
                "dataloader. Add one that train_dataloader() reads, or pass batch_arg_name=..."
            )
        world, main = max(1, int(trainer.world_size)), bool(trainer.is_global_zero)
        if self.global_batch_size is not None:
            split_global_batch(self.global_batch_size, world, 1)  # errors before any probe
        with same_rng(pl_module.device):
            self.result = self._search(trainer, pl_module, world, main)
        per_device, accumulation = self.result.batch_size, int(trainer.accumulate_grad_batches)
        if self.global_batch_size is not None:
            split = split_global_batch(self.global_batch_size, world, self.result.batch_size)
            per_device, accumulation = split.per_device, split.accumulation
            if split.note and self.verbose and main:
                print(f"BatchSizeFinder: {split.note}", flush=True)
            trainer.accumulate_grad_batches = accumulation
        attribute.set(per_device)
        self.optimal_batch_size, self.accumulate_grad_batches = per_device, accumulation
        if getattr(trainer.fit_loop, "_combined_loader", None) is not None:
            trainer.fit_loop._combined_loader = None  # rebuilt at the new size
        if self.verbose and main:
            print(
                f"BatchSizeFinder: {self.batch_arg_name}={per_device} per device x "
                f"accumulate_grad_batches={accumulation} x {world} device(s) = "
                f"{per_device * accumulation * world} samples per optimizer step",
                flush=True,
            )
        self._pending_log = self.log_to_wandb and main

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Log the answer (after Lightning logged the hparams) and check the train dataloader's size.

        Lightning's ``log_hyperparams`` runs after ``on_fit_start`` and writes the
        module's *initial* hparams (``batch_size`` as constructed) to the run config;
        recording here puts the size trained with on top.
        """
        if self.optimal_batch_size is None:
            return
        if self._pending_log:
            self._pending_log = False
            world = max(1, int(trainer.world_size))
            record(
                self.result,
                source=SOURCE,
                per_device=self.optimal_batch_size,
                accumulation=int(self.accumulate_grad_batches or 1),
                world_size=world,
                config={"accumulate_grad_batches": int(self.accumulate_grad_batches or 1)},
                run=wandb_logger_run(trainer),
                verbose=self.verbose,
            )
        sizes = _loader_batch_sizes(getattr(trainer, "train_dataloader", None))
        if sizes and sizes != {self.optimal_batch_size}:
            import warnings

            warnings.warn(
                f"BatchSizeFinder set {self.batch_arg_name}={self.optimal_batch_size}, but the "
                f"train dataloader has batch_size {sorted(sizes)}: train_dataloader() does not "
                f"read {self.batch_arg_name!r}",
                UserWarning,
                stacklevel=2,
            )
