"""Hugging Face Transformers: ``Trainer`` callbacks and the memory ceiling.

- ``SusceptibilityCallback`` (``.susceptibility``): batch-scale statistics of the per-step loss;
- ``GradientNoiseScaleCallback`` (``.noise_scale``): B_simple from the gradients of each step;
- ``fit_batch_size`` (``.finder``): set the per-device batch and the accumulation before ``train()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wandb_batchsize.integrations._lazy import lazy_getattr

_NAMES = {
    "SusceptibilityCallback": "wandb_batchsize.integrations.transformers.susceptibility",
    "GradientNoiseScaleCallback": "wandb_batchsize.integrations.transformers.noise_scale",
    "fit_batch_size": "wandb_batchsize.integrations.transformers.finder",
    "susceptibility": "wandb_batchsize.integrations.transformers.susceptibility",
    "noise_scale": "wandb_batchsize.integrations.transformers.noise_scale",
}
__all__ = ["GradientNoiseScaleCallback", "SusceptibilityCallback", "fit_batch_size"]
__getattr__ = lazy_getattr(__name__, _NAMES)

if TYPE_CHECKING:  # pragma: no cover
    from wandb_batchsize.integrations.transformers.noise_scale import GradientNoiseScaleCallback
    from wandb_batchsize.integrations.transformers.susceptibility import SusceptibilityCallback
