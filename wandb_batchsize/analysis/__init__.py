"""Statistics of batch size: susceptibility (batch and streaming), sweeps, schedules.

numpy + scipy only: nothing here imports wandb or a deep-learning framework.
"""

from __future__ import annotations

from .schedules import Schedule, calculate_adjusted_epochs, scale_schedule
from .streaming import StreamingSusceptibility
from .susceptibility import BatchSusceptibility, SusceptibilityResult, analyze
from .sweep import SweepResult, analyze_sweep

__all__ = [
    "SusceptibilityResult",
    "BatchSusceptibility",
    "analyze",
    "StreamingSusceptibility",
    "SweepResult",
    "analyze_sweep",
    "Schedule",
    "calculate_adjusted_epochs",
    "scale_schedule",
]
