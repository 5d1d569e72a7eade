"""The model-free finder: short training probes at several batch sizes, analysed
in sweep mode. An in-process batch-size sweep for when a W&B sweep is too heavy.

    import wandb_batchsize as wbs
    result = wbs.probe_batch_sizes(model, dataset, torch.nn.functional.cross_entropy)
    print(result.summary())                       # per-size table, K_c, kappa

- PyTorch: ``probe_batch_sizes`` (``probe.torch_probe``);
- Lightning: ``integrations.lightning.BatchSizeProbe`` (``probe.lightning_probe``);
- Keras: ``integrations.keras.probe_batch_sizes`` (``probe.keras_probe``).

The framework-free part (sizes, budget, driver, result, W&B logging) is
``probe.core``; frameworks are imported only when their probe is used.
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
    "probe_batch_sizes": "wandb_batchsize.probe.torch_probe",
    "BatchSizeProbe": "wandb_batchsize.probe.lightning_probe",
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
    from wandb_batchsize.probe.lightning_probe import BatchSizeProbe
    from wandb_batchsize.probe.torch_probe import probe_batch_sizes
