"""What every Lightning callback here shares: its base classes and the trainer's W&B run."""

from __future__ import annotations

from typing import Any


def callback_bases() -> tuple[type, ...]:
    """``lightning.pytorch.Callback`` and/or ``pytorch_lightning.Callback``, whichever are installed."""
    bases: list[type] = []
    try:
        from lightning.pytorch import Callback as LightningCallback

        bases.append(LightningCallback)
    except ImportError:
        pass
    try:
        from pytorch_lightning import Callback as PLCallback

        if PLCallback not in bases:
            bases.append(PLCallback)
    except ImportError:
        pass
    if not bases:
        raise ImportError(
            "wandb_batchsize.integrations.lightning needs Lightning: "
            "pip install 'wandb-batchsize[lightning]' (or pytorch_lightning)"
        )
    return tuple(bases)


def wandb_logger_run(trainer: Any) -> Any:
    """The run of the trainer's WandbLogger (created by it if need be), or None."""
    for logger in getattr(trainer, "loggers", None) or []:
        if type(logger).__name__ == "WandbLogger":
            return logger.experiment
    return None
