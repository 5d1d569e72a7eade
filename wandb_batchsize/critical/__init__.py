"""The critical batch size measured in process (``spec/critical-batch.md``).

Framework-free: the model is trained only through a backend
(:func:`wandb_batchsize.backends.backend_for`).
"""

from __future__ import annotations

from wandb_batchsize.critical.result import CriticalBatchResult, CriticalBatchRow, saturating_lr

__all__ = ["CriticalBatchResult", "CriticalBatchRow", "saturating_lr"]
