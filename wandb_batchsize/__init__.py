"""wandb-batchsize: which batch size should this run use, with the evidence on W&B.

The public API is loaded lazily so that ``import wandb_batchsize`` needs only
numpy and scipy: no torch, tensorflow or wandb is imported until a name that
needs it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # statistics (numpy + scipy only)
    "analyze": "wandb_batchsize.analysis.susceptibility",
    "BatchSusceptibility": "wandb_batchsize.analysis.susceptibility",
    "SusceptibilityResult": "wandb_batchsize.analysis.susceptibility",
    "StreamingSusceptibility": "wandb_batchsize.analysis.streaming",
    "analyze_sweep": "wandb_batchsize.analysis.sweep",
    "SweepResult": "wandb_batchsize.analysis.sweep",
    "calculate_adjusted_epochs": "wandb_batchsize.analysis.schedules",
    "scale_schedule": "wandb_batchsize.analysis.schedules",
    "Schedule": "wandb_batchsize.analysis.schedules",
    "LrRule": "wandb_batchsize.analysis.lr_rules",
    "fit_lr_rule": "wandb_batchsize.analysis.lr_rules",
    "saturating_lr": "wandb_batchsize.analysis.lr_rules",
    "surge_lr": "wandb_batchsize.analysis.lr_rules",
    # memory ceiling
    "find_batch_size": "wandb_batchsize.memory",
    "MemorySearchResult": "wandb_batchsize.memory",
    "accumulation_for": "wandb_batchsize.memory",
    # training monitors and probes
    "SusceptibilityMonitor": "wandb_batchsize.integrations.torch.susceptibility",
    "probe_batch_sizes": "wandb_batchsize.probe",
    "ProbeResult": "wandb_batchsize.probe",
    # the measured critical batch size (spec/critical-batch.md)
    "measure_critical_batch": "wandb_batchsize.critical",
    "CriticalBatchResult": "wandb_batchsize.critical",
    "CriticalBatchMonitor": "wandb_batchsize.critical",
    # the combined recommendation
    "recommend": "wandb_batchsize.recommendation",
    "Recommendation": "wandb_batchsize.recommendation",
}

_SUBMODULES = {
    "analysis",
    "backends",
    "critical",
    "memory",
    "tracking",
    "integrations",
    "plot",
    "cli",
    "keras",
}

__all__ = [
    "BatchSusceptibility",
    "CriticalBatchMonitor",
    "CriticalBatchResult",
    "LrRule",
    "MemorySearchResult",
    "ProbeResult",
    "Recommendation",
    "Schedule",
    "StreamingSusceptibility",
    "SusceptibilityMonitor",
    "SusceptibilityResult",
    "SweepResult",
    "accumulation_for",
    "analysis",
    "analyze",
    "analyze_sweep",
    "backends",
    "calculate_adjusted_epochs",
    "cli",
    "critical",
    "find_batch_size",
    "fit_lr_rule",
    "integrations",
    "keras",
    "measure_critical_batch",
    "memory",
    "plot",
    "probe_batch_sizes",
    "recommend",
    "saturating_lr",
    "scale_schedule",
    "surge_lr",
    "tracking",
]


def __getattr__(name: str) -> Any:
    from wandb_batchsize._extras import import_with_hint

    if name in _LAZY:
        value = getattr(import_with_hint(_LAZY[name], f"wandb_batchsize.{name}"), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = import_with_hint(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from wandb_batchsize.analysis.schedules import (
        Schedule,
        calculate_adjusted_epochs,
        scale_schedule,
    )
    from wandb_batchsize.analysis.streaming import StreamingSusceptibility
    from wandb_batchsize.analysis.susceptibility import (
        BatchSusceptibility,
        SusceptibilityResult,
        analyze,
    )
    from wandb_batchsize.analysis.sweep import SweepResult, analyze_sweep
    from wandb_batchsize.integrations.torch.susceptibility import SusceptibilityMonitor
    from wandb_batchsize.memory import MemorySearchResult, accumulation_for, find_batch_size
    from wandb_batchsize.probe import ProbeResult, probe_batch_sizes
    from wandb_batchsize.recommendation import Recommendation, recommend
