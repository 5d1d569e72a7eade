"""Keras 3: ``model.fit`` callbacks and the in-process probe.

- ``SusceptibilityCallback`` (``.susceptibility``): batch-scale statistics of the per-step loss;
- ``probe_batch_sizes``: short training probes at several batch sizes (:mod:`wandb_batchsize.probe`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wandb_batchsize.integrations._lazy import lazy_getattr

_NAMES = {
    "SusceptibilityCallback": "wandb_batchsize.integrations.keras.susceptibility",
    "probe_batch_sizes": "wandb_batchsize.integrations.keras.probe",
    "susceptibility": "wandb_batchsize.integrations.keras.susceptibility",
}
__all__ = ["SusceptibilityCallback", "probe_batch_sizes"]
__getattr__ = lazy_getattr(__name__, _NAMES)

if TYPE_CHECKING:  # pragma: no cover
    from wandb_batchsize.integrations.keras.probe import probe_batch_sizes
    from wandb_batchsize.integrations.keras.susceptibility import SusceptibilityCallback
