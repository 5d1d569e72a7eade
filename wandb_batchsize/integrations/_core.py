"""Deprecated location of the monitor core: it lives in :mod:`wandb_batchsize.monitor`.

Kept so that ``from wandb_batchsize.integrations._core import MonitorCore`` (and
the constants) go on working; new code imports ``wandb_batchsize.monitor``.
"""

from __future__ import annotations

from wandb_batchsize.backends import combine_losses as _combine_micro
from wandb_batchsize.backends import values_to_host as _tensors_to_host
from wandb_batchsize.monitor import defaults as _defaults
from wandb_batchsize.monitor.api import CORE_OPTIONS as _CORE_OPTIONS
from wandb_batchsize.monitor.api import MonitorAPI
from wandb_batchsize.monitor.core import MonitorCore
from wandb_batchsize.monitor.defaults import *  # noqa: F403 - the constants, as before
from wandb_batchsize.monitor.pending import PendingLosses as _Pending
from wandb_batchsize.monitor.reporting import json_safe as _json_safe
from wandb_batchsize.monitor.reporting import result_scalars

__all__ = [  # noqa: PLE0604 - the defaults' names, and what the old module defined
    *_defaults.__all__,
    "MonitorAPI",
    "MonitorCore",
    "_CORE_OPTIONS",
    "_Pending",
    "_combine_micro",
    "_json_safe",
    "_tensors_to_host",
    "result_scalars",
]
