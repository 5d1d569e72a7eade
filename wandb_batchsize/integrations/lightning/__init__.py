"""Lightning: ``Trainer`` callbacks and the in-process probe.

- ``SusceptibilityCallback`` (``.susceptibility``): batch-scale statistics of the per-step loss;
- ``GradientNoiseScaleCallback`` (``.noise_scale``): B_simple from the gradients of each step;
- ``BatchSizeFinder`` (``.finder``): the memory ceiling on ``fit`` start;
- ``BatchSizeProbe``: short training probes at several batch sizes, a ``Trainer`` per size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wandb_batchsize.integrations._lazy import lazy_getattr

_NAMES = {
    "SusceptibilityCallback": "wandb_batchsize.integrations.lightning.susceptibility",
    "GradientNoiseScaleCallback": "wandb_batchsize.integrations.lightning.noise_scale",
    "BatchSizeFinder": "wandb_batchsize.integrations.lightning.finder",
    "BatchSizeProbe": "wandb_batchsize.integrations.lightning.probe",
    "susceptibility": "wandb_batchsize.integrations.lightning.susceptibility",
    "noise_scale": "wandb_batchsize.integrations.lightning.noise_scale",
}
__all__ = [
    "BatchSizeFinder",
    "BatchSizeProbe",
    "GradientNoiseScaleCallback",
    "SusceptibilityCallback",
]
__getattr__ = lazy_getattr(__name__, _NAMES)

if TYPE_CHECKING:  # pragma: no cover
    from wandb_batchsize.integrations.lightning.noise_scale import GradientNoiseScaleCallback
    from wandb_batchsize.integrations.lightning.probe import BatchSizeProbe
    from wandb_batchsize.integrations.lightning.susceptibility import SusceptibilityCallback
