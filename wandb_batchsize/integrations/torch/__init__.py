"""PyTorch: a plain training loop's monitors and probe.

- ``SusceptibilityMonitor`` (``.susceptibility``): batch-scale statistics of the per-step loss;
- ``GradientNoiseScaleMonitor`` (``.noise_scale``): McCandlish et al.'s B_simple from gradients;
- ``probe_batch_sizes``: short training probes at several batch sizes (:mod:`wandb_batchsize.probe`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wandb_batchsize.integrations._lazy import lazy_getattr

_NAMES = {
    "SusceptibilityMonitor": "wandb_batchsize.integrations.torch.susceptibility",
    "GradientNoiseScaleMonitor": "wandb_batchsize.integrations.torch.noise_scale",
    "probe_batch_sizes": "wandb_batchsize.probe",
    "susceptibility": "wandb_batchsize.integrations.torch.susceptibility",
    "noise_scale": "wandb_batchsize.integrations.torch.noise_scale",
}
__all__ = ["GradientNoiseScaleMonitor", "SusceptibilityMonitor", "probe_batch_sizes"]
__getattr__ = lazy_getattr(__name__, _NAMES)

if TYPE_CHECKING:  # pragma: no cover
    from wandb_batchsize.integrations.torch.noise_scale import GradientNoiseScaleMonitor
    from wandb_batchsize.integrations.torch.susceptibility import SusceptibilityMonitor
    from wandb_batchsize.probe import probe_batch_sizes
