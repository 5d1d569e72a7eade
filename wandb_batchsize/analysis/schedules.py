"""Training length and learning rate when the batch size changes.

``calculate_adjusted_epochs`` reproduces the published helper exactly;
:func:`scale_schedule` says what it keeps constant.

References:
- Goyal et al. 2017, "Accurate, Large Minibatch SGD": linear LR scaling for SGD.
- Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient
  Algorithms": square-root LR scaling for Adam-type optimisers.
- McCandlish et al. 2018, "An Empirical Model of Large-Batch Training": steps
  ``S = S_min (1 + B_noise / B)`` and examples ``E = E_min (1 + B / B_noise)`` to
  reach a given loss; the saturating SGD learning rate ``lr_max / (1 + B_noise / B)``.
- Li et al. 2024, "Surge Phenomenon in Optimal Learning Rate and Batch Size
  Scaling": the Adam learning rate that peaks at ``B_noise`` (``analysis.lr_rules``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .lr_rules import LR_RULES, LrRule, lr_rule_from_reference

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
    reference one (same data set size). ``lr`` is None when no reference LR was
    given; ``lr_rule`` names the rule that scaled it (None: kept unchanged) and
    ``rule`` is the fitted :class:`~wandb_batchsize.analysis.lr_rules.LrRule`
    for the saturating rules.
    """

    epochs: float
    lr: float | None
    steps_factor: float
    reason: str
    lr_rule: str | None = None
    rule: LrRule | None = field(default=None, compare=False)


_RULES = ("linear", "sqrt", *LR_RULES)


def _pick_rule(rule: str | LrRule | None, lr_scaling: str | None, b_noise: float | None) -> Any:
    """Explicit ``rule``, else ``lr_scaling``, else ``"saturating"`` once B_noise is known."""
    if lr_scaling not in (None, "linear", "sqrt"):
        raise ValueError(
            f"lr_scaling must be None, 'linear' or 'sqrt', got {lr_scaling!r} "
            f"(the saturating rules are rule='saturating' or rule='surge')"
        )
    if isinstance(rule, LrRule):
        if lr_scaling is not None:
            raise ValueError("pass either a fitted rule= or lr_scaling=, not both")
        return rule
    if rule is not None and rule not in _RULES:
        raise ValueError(f"rule must be one of {_RULES} or an LrRule, got {rule!r}")
    if rule is not None and lr_scaling is not None and rule != lr_scaling:
        raise ValueError(f"rule={rule!r} and lr_scaling={lr_scaling!r} disagree: pass one")
    chosen = rule or lr_scaling
    if chosen is None and b_noise is not None:
        return "saturating"
    return chosen


def _scale_lr(
    lr0: float, b_ref: float, b: float, rule: Any, b_noise: float | None
) -> tuple[float, str, LrRule | None]:
    """``(lr, reason, fitted rule)`` at ``b`` from ``lr0`` at ``b_ref``."""
    ratio = b / b_ref
    if rule == "linear":
        return lr0 * ratio, "; LR scaled linearly (Goyal et al. 2017), with no limit", None
    if rule == "sqrt":
        return lr0 * math.sqrt(ratio), "; LR scaled by sqrt (Malladi et al. 2022)", None
    if isinstance(rule, LrRule):
        fitted = rule
    else:
        if b_noise is None:
            raise ValueError(f"rule={rule!r} needs B_noise (or critical_batch), e.g. the B_crit")
        fitted = lr_rule_from_reference(b_ref, lr0, b_noise, rule)
    return float(fitted.lr(b)), f"; LR from {fitted.describe()}", fitted


def scale_schedule(
    reference_epochs: float,
    reference_batch: int,
    actual_batch: int,
    *,
    reference_lr: float | None = None,
    keep: str = "samples",
    critical_batch: float | None = None,
    lr_scaling: str | None = None,
    rule: str | LrRule | None = None,
    B_noise: float | None = None,
) -> Schedule:
    """Rescale a training schedule from ``reference_batch`` to ``actual_batch``.

    ``keep``:
    - ``"samples"``: same epochs (same samples seen); updates scale as ``B_ref / B``.
    - ``"updates"``: same number of optimiser steps; epochs scale as ``B / B_ref``.
    - ``"critical"``: same loss under McCandlish et al. (2018): examples needed grow
      as ``1 + B / B_crit``, so ``epochs = epochs_ref (1 + B / B_crit) / (1 + B_ref / B_crit)``
      (needs ``critical_batch``, e.g. ``SweepResult.B_crit``).

    The learning rate (``rule``, or its older name ``lr_scaling`` for the two
    unlimited rules) from ``reference_lr`` at ``reference_batch``:
    - ``"saturating"``: ``lr_max / (1 + B_noise / B)`` (McCandlish et al. 2018,
      SGD), ``lr_max`` through the reference point; the default once
      ``B_noise`` (or ``critical_batch``, its value under the model) is known.
    - ``"surge"``: ``lr_max / (1/2 (sqrt(B_noise/B) + sqrt(B/B_noise)))``
      (Li et al. 2024, Adam-type): peaks at ``B = B_noise``.
    - ``"linear"``: ``x B / B_ref`` (Goyal et al. 2017, SGD), no limit: it
      diverges past the critical batch; ``"sqrt"``: ``x sqrt(B / B_ref)``
      (Malladi et al. 2022, Adam).
    - an :class:`~wandb_batchsize.analysis.lr_rules.LrRule` fitted to measured
      best lrs (``fit_lr_rule``): its value at ``actual_batch``; no
      ``reference_lr`` needed.
    - None without ``B_noise``: ``reference_lr`` unchanged.

    >>> scale_schedule(10, 256, 64, keep="samples").steps_factor
    4.0
    >>> round(scale_schedule(1, 64, 4096, reference_lr=0.1, B_noise=64).lr, 4)  # lr_max 0.2
    0.1969
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

    b_noise = B_noise if B_noise is not None else critical_batch
    b_noise = None if b_noise is None else _positive("B_noise", b_noise)
    chosen = _pick_rule(rule, lr_scaling, b_noise)
    lr: float | None = None
    fitted: LrRule | None = None
    if isinstance(chosen, LrRule) and reference_lr is None:
        fitted = chosen
        lr = float(chosen.lr(b))
        reason += f"; LR from {chosen.describe()}"
    elif reference_lr is not None:
        lr = _positive("reference_lr", reference_lr)
        if chosen is not None:
            lr, note, fitted = _scale_lr(lr, b_ref, b, chosen, b_noise)
            reason += note
    elif chosen is not None and (rule is not None or lr_scaling is not None):
        raise ValueError(f"lr_scaling={chosen!r} needs reference_lr")
    name = (
        None
        if lr is None or chosen is None
        else (chosen.rule if isinstance(chosen, LrRule) else chosen)
    )
    return Schedule(
        epochs=float(epochs),
        lr=lr,
        steps_factor=float(steps_factor),
        reason=reason,
        lr_rule=name,
        rule=fitted,
    )
