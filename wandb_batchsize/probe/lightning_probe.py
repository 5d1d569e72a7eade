"""The older home of the Lightning ``BatchSizeProbe``: :mod:`wandb_batchsize.integrations.lightning.probe`."""

from __future__ import annotations

from wandb_batchsize.integrations.lightning.probe import BatchSizeProbe

__all__ = ["BatchSizeProbe"]
