"""Batch-size probes for a ``LightningModule``: a new ``Trainer`` per size.

    probe = BatchSizeProbe(batch_sizes=[16, 32, 64, 128, 256])
    result = probe.run(model, datamodule=dm)          # or train_dataloaders=lambda b: ...
    print(result.summary())

Each probe is a short ``Trainer.fit`` with ``max_steps`` set by the budget, the
logger, checkpointing, progress bar and model summary off, and a callback that
records the ``loss`` each ``training_step`` returned. The optimizer is the one
``configure_optimizers`` builds (a fresh one per probe); ``lr_scaling``
multiplies its learning rates (and an LR scheduler's ``base_lrs``) when
training starts. The module's weights, buffers, mode, RNG states, its
batch-size attribute and its trainer reference are put back afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from wandb_batchsize.backends import torch_memory
from wandb_batchsize.backends.torch import TorchBackend
from wandb_batchsize.backends.torch_memory import model_device
from wandb_batchsize.integrations.lightning.batch_attribute import BatchSizeAttribute
from wandb_batchsize.integrations.lightning.probe_recorder import ProbeRecorder, recorder_callback
from wandb_batchsize.probe.driver import TrainOutcome, choose_metric
from wandb_batchsize.probe.result import ProbeResult
from wandb_batchsize.probe.session import ProbeOptions, run_session

__all__ = ["BatchSizeProbe"]

# Trainer arguments a probe always sets: nothing is written, nothing logged
_FORCED = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}
_QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")


def _lightning() -> Any:
    try:
        import lightning.pytorch as pl
    except ImportError:  # pragma: no cover - the standalone package
        try:
            import pytorch_lightning as pl
        except ImportError as exc:
            raise ImportError(
                "BatchSizeProbe needs Lightning: pip install 'wandb-batchsize[lightning]'"
            ) from exc
    return pl


class BatchSizeProbe:
    """Short ``Trainer.fit`` runs of a LightningModule at several batch sizes,
    analysed in sweep mode (see ``wandb_batchsize.probe_batch_sizes`` for the
    budget, metric, repeats and OOM rules, which are the same).

    Args:
        batch_sizes: sizes to probe (default powers of two from 8 to the
            ceiling ``max_batch`` or 1024, bounded by the dataset length).
        budget, samples_per_size, steps_per_size: ``"samples"`` (default, every
            size sees the same number of samples) or ``"steps"`` (published).
        lr_scaling, base_batch_size: ``None``, ``"linear"`` or ``"sqrt"``
            scaling of the learning rates ``configure_optimizers`` sets.
        repeats, seed: repeat ``r`` calls ``seed_everything(seed + r)``.
        batch_arg_name: the attribute that holds the batch size, looked up on
            the datamodule, then the module, then ``module.hparams`` (as
            Lightning's own ``BatchSizeFinder`` does); used with ``datamodule``.
        val_metric: the key ``validation_step`` logs (default ``"val_loss"``):
            with validation data, ``trainer.validate`` runs after each probe.
        metric: ``"auto"`` (``val_loss`` when there is validation data),
            ``"train_loss"`` or ``"val_loss"``.
        trainer_kwargs: extra ``Trainer`` arguments (``accelerator``,
            ``devices``, ``precision`` ...); logger and checkpointing stay off.
    """

    def __init__(
        self,
        batch_sizes: Sequence[int] | None = None,
        *,
        budget: str = "samples",
        samples_per_size: int | None = None,
        steps_per_size: int = 50,
        lr_scaling: str | None = None,
        base_batch_size: int | None = None,
        repeats: int = 1,
        seed: int = 0,
        max_batch: int | None = None,
        batch_arg_name: str = "batch_size",
        val_metric: str | None = None,
        metric: str = "auto",
        trainer_kwargs: Mapping[str, Any] | None = None,
        n_bootstrap: int = 1000,
        verbose: bool = True,
        log_to_wandb: bool = True,
    ) -> None:
        self.options = ProbeOptions.pick(locals())
        self.batch_arg_name = batch_arg_name
        self.val_metric = val_metric
        self.trainer_kwargs = dict(trainer_kwargs or {})
        self.result: ProbeResult | None = None

    def __getattr__(self, name: str) -> Any:
        """The shared probe options read as attributes (``probe.repeats``)."""
        options = self.__dict__.get("options")
        if options is not None and hasattr(options, name):
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def run(
        self,
        model: Any,
        datamodule: Any = None,
        *,
        train_dataloaders: Dataset | Callable[[int], Any] | None = None,
        val_dataloaders: Any = None,
    ) -> ProbeResult:
        """Probe ``model`` on ``datamodule`` or on ``train_dataloaders``.

        ``train_dataloaders`` is a factory ``f(batch_size) -> DataLoader`` or a
        ``Dataset`` (shuffled with a seeded generator, ``drop_last=True``).
        ``val_dataloaders``: a DataLoader, or a factory of one; with a
        datamodule, its ``val_dataloader`` is used when ``val_metric`` is set.
        """
        pl = _lightning()
        if not isinstance(model, pl.LightningModule):
            raise TypeError(f"model must be a LightningModule, got {type(model).__name__}")
        if (datamodule is None) == (train_dataloaders is None):
            raise ValueError("give exactly one of datamodule and train_dataloaders")
        has_val = val_dataloaders is not None or (
            datamodule is not None and self.val_metric is not None
        )
        choose_metric(self.options.metric, has_val)  # a clear error before any Trainer starts
        backend = LightningBackend(
            model,
            datamodule=datamodule,
            train_dataloaders=train_dataloaders,
            val_dataloaders=val_dataloaders,
            validate=has_val,
            val_metric=self.val_metric or "val_loss",
            batch_arg_name=self.batch_arg_name,
            trainer_kwargs=self.trainer_kwargs,
        )
        self.result = run_session(
            backend,
            self.options,
            n_samples=backend.dataset_len(),
            has_val=has_val,
            framework="lightning",
        )
        return self.result


class LightningBackend:
    """Runs the probes of one LightningModule; see ``BatchSizeProbe``."""

    def __init__(
        self,
        model: Any,
        *,
        datamodule: Any,
        train_dataloaders: Any,
        val_dataloaders: Any,
        validate: bool,
        val_metric: str,
        batch_arg_name: str,
        trainer_kwargs: Mapping[str, Any],
    ) -> None:
        self.model = model
        self.datamodule = datamodule
        self.train_dataloaders = train_dataloaders
        self.val_dataloaders = val_dataloaders
        self.validate = validate
        self.val_metric = val_metric
        self.batch_arg_name = batch_arg_name
        self.trainer_kwargs = dict(trainer_kwargs)
        self.torch = TorchBackend(model)
        self.model_device = model_device(model)
        self.batch_attribute = BatchSizeAttribute(model, datamodule, batch_arg_name)
        self._state: Any = None
        self._env: dict[str, str | None] = {}
        self._root: str | None = None
        self._stack: contextlib.ExitStack | None = None
        if datamodule is not None and not self.batch_attribute.exists:
            raise ValueError(
                f"cannot set the batch size: no attribute {batch_arg_name!r} on the datamodule, "
                "the module or its hparams (pass batch_arg_name=...)"
            )

    def dataset_len(self) -> int | None:
        """The training set's length, where it can be read without training."""
        try:
            if self.datamodule is not None:
                return None  # set up by the Trainer; bounded by max_batch only
            data = self.train_dataloaders
            if isinstance(data, Dataset):
                return len(data)  # type: ignore[arg-type]
            return len(data(1).dataset)
        except Exception:  # noqa: BLE001
            return None

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> LightningBackend:
        self._state = self.torch.snapshot()
        self._trainer_ref = getattr(self.model, "_trainer", None)
        if self.datamodule is not None:
            self.batch_attribute.save()
        self._env = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
        self._root = tempfile.mkdtemp(prefix="wandb-batchsize-probe-")
        stack = contextlib.ExitStack()
        for name in _QUIET_LOGGERS:
            logger = logging.getLogger(name)
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.WARNING)
        self._stack = stack
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.restore()  # also moves it back: Lightning's teardown moves it to the CPU
        if self.datamodule is not None:
            self.batch_attribute.restore()
        with contextlib.suppress(Exception):
            self.model._trainer = self._trainer_ref
        for key, value in self._env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self._stack is not None:
            self._stack.close()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        self._state = None

    def restore(self) -> None:
        if self._state is not None:
            if model_device(self.model) != self.model_device:
                self.model.to(self.model_device)
            self._state.restore()

    def is_oom(self, exc: BaseException) -> bool:
        return self.torch.is_oom(exc)

    def release(self, exc: BaseException | None = None) -> None:
        self.torch.release(*([] if exc is None else [exc]))

    # -- one probe -----------------------------------------------------------------
    def _train_loader(self, b: int, seed: int) -> Any:
        data = self.train_dataloaders
        if isinstance(data, Dataset):
            gen = torch.Generator().manual_seed(int(seed))
            return DataLoader(data, batch_size=b, shuffle=True, drop_last=True, generator=gen)
        return data(b)

    def _val_loader(self, b: int) -> Any:
        data = self.val_dataloaders
        if data is None or isinstance(data, DataLoader):
            return data
        if isinstance(data, Dataset):
            return DataLoader(data, batch_size=min(1024, len(data)), shuffle=False)  # type: ignore[arg-type]
        if callable(data):
            return data(b)
        return data

    def _trainer(self, steps: int, callbacks: list[Any], validate: bool = False) -> Any:
        pl = _lightning()
        kwargs: dict[str, Any] = {
            "max_epochs": -1,
            "num_sanity_val_steps": 0,
            "limit_val_batches": 0,
            "default_root_dir": self._root,
        }
        kwargs.update(self.trainer_kwargs)
        user_callbacks = list(kwargs.pop("callbacks", None) or [])
        kwargs.update(_FORCED)
        kwargs["max_steps"] = steps
        if validate:
            kwargs.pop("limit_val_batches", None)
            kwargs.pop("max_steps")
        return pl.Trainer(callbacks=[*user_callbacks, *callbacks], **kwargs)

    def train(
        self,
        batch_size: int,
        steps: int,
        seed: int,
        lr_factor: float,
        on_step: Callable[[int], None],
    ) -> TrainOutcome:
        pl = _lightning()
        pl.seed_everything(seed, workers=True, verbose=False)
        recorder = ProbeRecorder(lr_factor, on_step, self._synchronize)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*number of training batches.*")
            warnings.filterwarnings("ignore", message=r".*GPU available but not used.*")
            warnings.filterwarnings("ignore", message=r".*Skipping val loop.*")
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
            trainer = self._trainer(steps, [recorder_callback(recorder)])
            if self.datamodule is not None:
                self.batch_attribute.set(batch_size)
                trainer.fit(self.model, datamodule=self.datamodule)
            else:
                trainer.fit(self.model, train_dataloaders=self._train_loader(batch_size, seed))
            values = torch.stack(recorder.losses).float().cpu().tolist() if recorder.losses else []
            val_loss = self._validate(batch_size) if self.validate else None
        del trainer
        return TrainOutcome(
            losses=values,
            seconds=recorder.seconds,
            warmup_seconds=recorder.warmup,
            val_loss=val_loss,
            lr=recorder.lr,
            samples=recorder.samples,
        )

    def _synchronize(self) -> None:
        """Wait for the device the module trains on (Lightning may have moved it)."""
        torch_memory.synchronize(model_device(self.model))

    def _validate(self, batch_size: int) -> float:
        trainer = self._trainer(1, [], validate=True)
        if self.datamodule is not None and self.val_dataloaders is None:
            out = trainer.validate(self.model, datamodule=self.datamodule, verbose=False)
        else:
            out = trainer.validate(
                self.model, dataloaders=self._val_loader(batch_size), verbose=False
            )
        metrics = out[0] if out else {}
        if self.val_metric not in metrics:
            raise KeyError(
                f"validation logged no {self.val_metric!r} (it logged {sorted(metrics)}); "
                f"self.log({self.val_metric!r}, loss) in validation_step, or pass val_metric="
            )
        return float(metrics[self.val_metric])
