"""The older home of the Keras ``probe_batch_sizes``: :mod:`wandb_batchsize.integrations.keras.probe`."""

from __future__ import annotations

from wandb_batchsize.integrations.keras.probe import probe_batch_sizes

__all__ = ["probe_batch_sizes"]
