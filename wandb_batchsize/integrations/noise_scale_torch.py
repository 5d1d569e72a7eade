"""Deprecated name of :mod:`wandb_batchsize.integrations.torch.noise_scale` (kept so old imports work).

Import ``GradientNoiseScaleMonitor`` from ``wandb_batchsize.integrations.torch`` instead.
"""

from __future__ import annotations

import warnings

from wandb_batchsize.integrations.torch.noise_scale import *  # noqa: F403
from wandb_batchsize.integrations.torch.noise_scale import GradientNoiseScaleMonitor

__all__ = ["GradientNoiseScaleMonitor"]

warnings.warn(
    "wandb_batchsize.integrations.noise_scale_torch is deprecated; use wandb_batchsize.integrations.torch.GradientNoiseScaleMonitor",
    DeprecationWarning,
    stacklevel=2,
)
