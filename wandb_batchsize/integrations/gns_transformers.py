"""Deprecated name of :mod:`wandb_batchsize.integrations.transformers.noise_scale` (kept so old imports work).

Import ``GradientNoiseScaleCallback`` from ``wandb_batchsize.integrations.transformers`` instead.
"""

from __future__ import annotations

import warnings

from wandb_batchsize.integrations.transformers.noise_scale import *  # noqa: F403
from wandb_batchsize.integrations.transformers.noise_scale import GradientNoiseScaleCallback

__all__ = ["GradientNoiseScaleCallback"]

warnings.warn(
    "wandb_batchsize.integrations.gns_transformers is deprecated; use wandb_batchsize.integrations.transformers.GradientNoiseScaleCallback",
    DeprecationWarning,
    stacklevel=2,
)
