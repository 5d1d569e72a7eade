"""The model-free finder: short training probes at several batch sizes, analysed
in sweep mode. An in-process batch-size sweep for when a W&B sweep is too heavy.

    import wandb_batchsize as wbs
    result = wbs.probe_batch_sizes(model, dataset, torch.nn.functional.cross_entropy)
    print(result.summary())                       # per-size table, K_c, kappa

- PyTorch: ``probe_batch_sizes`` (``probe.api``, over ``backends.torch``);
- Keras: ``integrations.keras.probe_batch_sizes`` (over ``backends.keras``);
- Lightning: ``integrations.lightning.BatchSizeProbe`` (a ``Trainer`` per size).

Everything here is framework-free (sizes, budget, driver, one probe over a
backend, result, W&B logging; ``probe.core`` re-exports them); frameworks are
imported by their backend only when their probe is used. ``probe.torch_probe``,
``probe.keras_probe`` and ``probe.lightning_probe`` are the older module names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wandb_batchsize.probe.core import (
    BudgetPlan,
    ProbeRecord,
    ProbeResult,
    default_batch_sizes,
    log_probe,
    plan_budget,
)

_LAZY = {
    "probe_batch_sizes": "wandb_batchsize.probe.api",
    "BatchSizeProbe": "wandb_batchsize.integrations.lightning.probe",
}

__all__ = [
    "BatchSizeProbe",
    "BudgetPlan",
    "ProbeRecord",
    "ProbeResult",
    "default_batch_sizes",
    "log_probe",
    "plan_budget",
    "probe_batch_sizes",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from wandb_batchsize.integrations.lightning.probe import BatchSizeProbe
    from wandb_batchsize.probe.api import probe_batch_sizes
