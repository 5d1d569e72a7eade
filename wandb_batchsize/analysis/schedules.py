"""Training length and learning rate when the batch size changes.

``calculate_adjusted_epochs`` reproduces the published helper exactly;
:func:`scale_schedule` says what it keeps constant.

References:
- Goyal et al. 2017, "Accurate, Large Minibatch SGD": linear LR scaling for SGD.
- Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient
  Algorithms": square-root LR scaling for Adam-type optimisers.
- McCandlish et al. 2018, "An Empirical Model of Large-Batch Training": steps
  ``S = S_min (1 + B_noise / B)`` and examples ``E = E_min (1 + B / B_noise)`` to
  reach a given loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Schedule", "calculate_adjusted_epochs", "scale_schedule"]


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return v


def calculate_adjusted_epochs(
    reference_epochs: float, reference_batch: int, actual_batch: int
) -> int:
    """Published rule: ``max(50, round(reference_epochs * reference_batch / actual_batch))``.

    Kept for compatibility. It preserves neither the number of samples seen nor
    the number of optimiser updates: epochs scale as ``B_ref / B``, so samples
    scale as ``1 / B`` and updates (epochs x steps per epoch) as ``(B_ref / B)^2``.
    Going from 256 to 64 asks for 4x the epochs and 16x the steps. It also never
    returns fewer than 50 epochs. Use :func:`scale_schedule` to choose what to keep.

    >>> calculate_adjusted_epochs(100, 256, 64)
    400
    """
    _positive("reference_epochs", reference_epochs)
    _positive("reference_batch", reference_batch)
    _positive("actual_batch", actual_batch)
    return max(50, round(reference_epochs * reference_batch / actual_batch))


@dataclass(frozen=True)
class Schedule:
    """Epochs and learning rate for the new batch size.

    ``steps_factor`` = optimiser updates of the new schedule / updates of the
    reference one (same data set size). ``lr`` is None when no reference LR was given.
    """

    epochs: float
    lr: float | None
    steps_factor: float
    reason: str


def scale_schedule(
    reference_epochs: float,
    reference_batch: int,
    actual_batch: int,
    *,
    reference_lr: float | None = None,
    keep: str = "samples",
    critical_batch: float | None = None,
    lr_scaling: str | None = None,
) -> Schedule:
    """Rescale a training schedule from ``reference_batch`` to ``actual_batch``.

    ``keep``:
    - ``"samples"``: same epochs (same samples seen); updates scale as ``B_ref / B``.
    - ``"updates"``: same number of optimiser steps; epochs scale as ``B / B_ref``.
    - ``"critical"``: same loss under McCandlish et al. (2018): examples needed grow
      as ``1 + B / B_crit``, so ``epochs = epochs_ref (1 + B / B_crit) / (1 + B_ref / B_crit)``
      (needs ``critical_batch``, e.g. ``SweepResult.B_crit``).

    ``lr_scaling``: None keeps ``reference_lr``; ``"linear"`` multiplies it by
    ``B / B_ref`` (Goyal et al. 2017, SGD); ``"sqrt"`` by ``sqrt(B / B_ref)``
    (Malladi et al. 2022, Adam).

    >>> scale_schedule(10, 256, 64, keep="samples").steps_factor
    4.0
    """
    e_ref = _positive("reference_epochs", reference_epochs)
    b_ref = _positive("reference_batch", reference_batch)
    b = _positive("actual_batch", actual_batch)
    ratio = b / b_ref
    if keep == "samples":
        epochs = e_ref
        reason = "same samples seen (epochs unchanged); updates scale as B_ref / B"
    elif keep == "updates":
        epochs = e_ref * ratio
        reason = "same optimiser updates; epochs scale as B / B_ref"
    elif keep == "critical":
        if critical_batch is None:
            raise ValueError(
                "keep='critical' needs critical_batch (e.g. analyze_sweep(...).B_crit)"
            )
        bc = _positive("critical_batch", critical_batch)
        epochs = e_ref * (1.0 + b / bc) / (1.0 + b_ref / bc)
        reason = (
            f"same loss under McCandlish et al. (2018) with B_crit={bc:g}: "
            "epochs scale as (1 + B/B_crit) / (1 + B_ref/B_crit)"
        )
    else:
        raise ValueError(f"keep must be 'samples', 'updates' or 'critical', got {keep!r}")
    steps_factor = (epochs / e_ref) / ratio

    if lr_scaling not in (None, "linear", "sqrt"):
        raise ValueError(f"lr_scaling must be None, 'linear' or 'sqrt', got {lr_scaling!r}")
    lr: float | None = None
    if reference_lr is not None:
        lr = _positive("reference_lr", reference_lr)
        if lr_scaling == "linear":
            lr *= ratio
            reason += "; LR scaled linearly (Goyal et al. 2017)"
        elif lr_scaling == "sqrt":
            lr *= math.sqrt(ratio)
            reason += "; LR scaled by sqrt (Malladi et al. 2022)"
    elif lr_scaling is not None:
        raise ValueError(f"lr_scaling={lr_scaling!r} needs reference_lr")
    return Schedule(epochs=float(epochs), lr=lr, steps_factor=float(steps_factor), reason=reason)
