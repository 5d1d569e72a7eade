"""The framework-free core of every training monitor: buffer, check, log.

- :mod:`.pending`: the on-device loss buffer (one host transfer per check) and
  the ring buffer of ``window=N``;
- :mod:`.detrend`: what the default ``detrend="auto"`` chooses for a run's length;
- :mod:`.budget`: the overhead budget that spaces checks out;
- :mod:`.reporting`: the W&B rows and the final summary;
- :mod:`.core`: :class:`MonitorCore`, which ties them together;
- :mod:`.api`: :class:`MonitorAPI`, the public surface every monitor and
  callback (``integrations/*/susceptibility.py``) shares.

Nothing here imports a framework or wandb at import time.
"""

from __future__ import annotations

from wandb_batchsize.monitor.api import MonitorAPI
from wandb_batchsize.monitor.core import MonitorCore
from wandb_batchsize.monitor.defaults import (
    AUTO_MOVING_AVERAGE,
    DEFAULT_DETREND,
    DEFAULT_MAX_OVERHEAD,
    FLUSH_EVERY,
    MIN_VALUES,
)
from wandb_batchsize.monitor.reporting import result_scalars

__all__ = [
    "AUTO_MOVING_AVERAGE",
    "DEFAULT_DETREND",
    "DEFAULT_MAX_OVERHEAD",
    "FLUSH_EVERY",
    "MIN_VALUES",
    "MonitorAPI",
    "MonitorCore",
    "result_scalars",
]
