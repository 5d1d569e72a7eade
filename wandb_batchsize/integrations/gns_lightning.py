"""Deprecated name of :mod:`wandb_batchsize.integrations.lightning.noise_scale` (kept so old imports work).

Import ``GradientNoiseScaleCallback`` from ``wandb_batchsize.integrations.lightning`` instead.
"""

from __future__ import annotations

import warnings

from wandb_batchsize.integrations.lightning.noise_scale import *  # noqa: F403
from wandb_batchsize.integrations.lightning.noise_scale import GradientNoiseScaleCallback

__all__ = ["GradientNoiseScaleCallback"]

warnings.warn(
    "wandb_batchsize.integrations.gns_lightning is deprecated; use wandb_batchsize.integrations.lightning.GradientNoiseScaleCallback",
    DeprecationWarning,
    stacklevel=2,
)
