"""The older home of the PyTorch ``probe_batch_sizes``, now :mod:`wandb_batchsize.probe.api`."""

from __future__ import annotations

from wandb_batchsize.probe.api import probe_batch_sizes

__all__ = ["probe_batch_sizes"]
