"""The critical batch size measured in process (``spec/critical-batch.md``).

:func:`measure_critical_batch` trains short branches from the model's current
state at a geometric grid of batch sizes and fits ``S = S_min (1 + B_noise/B)``
(McCandlish et al. 2018); :class:`CriticalBatchMonitor` repeats it on a small
budget during training (the local critical batch of Merrill et al. 2025).
Framework-free: the model is trained only through a backend
(:func:`wandb_batchsize.backends.backend_for`).
"""

from __future__ import annotations

from wandb_batchsize.critical.measure import measure_critical_batch
from wandb_batchsize.critical.monitor import CriticalBatchMonitor
from wandb_batchsize.critical.result import CriticalBatchResult, CriticalBatchRow, saturating_lr

__all__ = [
    "CriticalBatchMonitor",
    "CriticalBatchResult",
    "CriticalBatchRow",
    "measure_critical_batch",
    "saturating_lr",
]
