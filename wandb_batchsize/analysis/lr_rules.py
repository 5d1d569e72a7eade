"""The learning rate that goes with a batch size, when it saturates.

Two rules follow from the noise model of McCandlish et al. (2018), both with
``B_noise`` the noise scale (the critical batch size ``B_crit`` under the model):

- **SGD** (``"saturating"``; McCandlish et al. 2018, "An Empirical Model of
  Large-Batch Training"): ``lr(B) = lr_max / (1 + B_noise / B)``.
  Linear in ``B`` for ``B << B_noise`` (Goyal et al.'s linear scaling), flat at
  ``lr_max`` for ``B >> B_noise``; linear scaling past ``B_noise`` diverges.
- **Adam-type** (``"surge"``; Li et al. 2024, "Surge Phenomenon in Optimal
  Learning Rate and Batch Size Scaling"):
  ``lr(B) = lr_max / (1/2 (sqrt(B_noise / B) + sqrt(B / B_noise)))``.
  Grows as ``2 lr_max sqrt(B / B_noise)`` for ``B << B_noise`` (square-root
  scaling), peaks at exactly ``lr_max`` at ``B = B_noise``, then falls as
  ``2 lr_max sqrt(B_noise / B)``.

``lr_max`` comes either from one reference point ``(B0, lr0)`` (the rule
inverted exactly: ``lr_max = lr0 / shape(B0)``) or from the best learning rate
measured at several batch sizes, by least squares in log space
(``log lr_i = log lr_max + log shape(B_i)``: the error of a tuned learning rate
is a factor, so small and large batches weigh alike). Without ``B_noise`` the
fit also estimates it (a 1-D search over ``log B_noise`` with ``lr_max`` in
closed form).

numpy and scipy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "LR_RULES",
    "LrRule",
    "fit_lr_rule",
    "lr_rule_from_reference",
    "saturating_lr",
    "surge_lr",
]

#: the rules that saturate, by name
LR_RULES = ("saturating", "surge")


def _positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _sizes(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim > 1 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be positive finite numbers, got {values!r}")
    return arr


def _shape(rule: str, B: np.ndarray, b_noise: float) -> np.ndarray:
    """``lr(B) / lr_max`` for ``rule``."""
    if rule == "saturating":
        return 1.0 / (1.0 + b_noise / B)
    if rule == "surge":
        return 2.0 / (np.sqrt(b_noise / B) + np.sqrt(B / b_noise))
    raise ValueError(f"rule must be one of {LR_RULES}, got {rule!r}")


def saturating_lr(batch_size: Any, lr_max: float, B_noise: float) -> Any:
    """SGD: ``lr_max / (1 + B_noise / B)`` (McCandlish et al. 2018). Array in, array out."""
    B = _sizes("batch_size", batch_size)
    out = _positive("lr_max", lr_max) * _shape("saturating", B, _positive("B_noise", B_noise))
    return float(out) if out.ndim == 0 else out


def surge_lr(batch_size: Any, lr_max: float, B_noise: float) -> Any:
    """Adam: ``lr_max / (1/2 (sqrt(B_noise/B) + sqrt(B/B_noise)))`` (Li et al. 2024).

    The peak, ``lr_max``, is at ``B = B_noise``.
    """
    B = _sizes("batch_size", batch_size)
    out = _positive("lr_max", lr_max) * _shape("surge", B, _positive("B_noise", B_noise))
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class LrRule:
    """A fitted saturating rule: call it with a batch size to get its learning rate.

    Attributes:
        rule: ``"saturating"`` (SGD) or ``"surge"`` (Adam-type).
        lr_max: the saturation learning rate (SGD) or the peak one (Adam, at
            ``B = B_noise``).
        B_noise: the noise scale the rule bends at (examples).
        fitted_from: how ``lr_max`` (and ``B_noise``) were obtained, in words.
        log_residual_sd: standard deviation of ``log lr`` about the fit (None
            from a single reference point).
        warnings: what to be careful about (e.g. ``B_noise`` at a search bound).
    """

    rule: str
    lr_max: float
    B_noise: float
    fitted_from: str
    log_residual_sd: float | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def lr(self, batch_size: Any) -> Any:
        """The rule's learning rate at ``batch_size`` (a number or an array)."""
        fn = saturating_lr if self.rule == "saturating" else surge_lr
        return fn(batch_size, self.lr_max, self.B_noise)

    __call__ = lr

    def describe(self) -> str:
        """One line: the formula with its numbers and where ``lr_max`` came from."""
        if self.rule == "saturating":
            form = "lr_max / (1 + B_noise / B) (McCandlish et al. 2018, SGD)"
        else:
            form = "lr_max / (0.5 (sqrt(B_noise/B) + sqrt(B/B_noise))) (Li et al. 2024, Adam)"
        return (
            f"{form} with lr_max = {self.lr_max:.3g}, B_noise = {self.B_noise:.4g}; "
            f"lr_max {self.fitted_from}"
        )


def lr_rule_from_reference(
    reference_batch: float, reference_lr: float, B_noise: float, rule: str = "saturating"
) -> LrRule:
    """The rule through one tuned point: ``lr_max = lr0 / shape(B0)`` (exact inversion).

    >>> lr_rule_from_reference(64, 0.1, 64).lr_max
    0.2
    """
    b0 = _positive("reference_batch", reference_batch)
    lr0 = _positive("reference_lr", reference_lr)
    bn = _positive("B_noise", B_noise)
    lr_max = lr0 / float(_shape(rule, np.array(b0), bn))
    return LrRule(rule, lr_max, bn, f"from the reference lr {lr0:g} at batch {b0:g}")


def _profile(rule: str, B: np.ndarray, log_lr: np.ndarray, b_noise: float) -> tuple[float, float]:
    """``(log lr_max, residual sum of squares)`` in closed form for a fixed ``B_noise``."""
    offset = log_lr - np.log(_shape(rule, B, b_noise))
    log_lr_max = float(offset.mean())
    return log_lr_max, float(((offset - log_lr_max) ** 2).sum())


def fit_lr_rule(
    batch_sizes: Any,
    learning_rates: Any,
    B_noise: float | None = None,
    rule: str = "saturating",
) -> LrRule:
    """Least-squares fit of ``log lr = log lr_max + log shape(B; B_noise)`` to measured best lrs.

    With ``B_noise`` given only ``lr_max`` is fitted (closed form: the mean of
    ``log lr_i - log shape(B_i)``); without it ``B_noise`` is also searched, on
    ``log B_noise`` between 1/100 of the smallest and 100x the largest batch
    size (needs 3 distinct sizes; a result at a bound says the rule's bend was
    not seen and is in ``warnings``).
    """
    if rule not in LR_RULES:
        raise ValueError(f"rule must be one of {LR_RULES}, got {rule!r}")
    B = _sizes("batch_sizes", batch_sizes).ravel()
    lr = _sizes("learning_rates", learning_rates).ravel()
    if B.size != lr.size or B.size == 0:
        raise ValueError(
            f"need one learning rate per batch size, got {B.size} sizes and {lr.size} lrs"
        )
    log_lr = np.log(lr)
    notes: list[str] = []
    if B_noise is not None:
        bn = _positive("B_noise", B_noise)
        how = f"fitted by least squares in log lr to {B.size} measured best lrs"
    else:
        if np.unique(B).size < 3:
            raise ValueError(
                "fitting B_noise as well needs best lrs at 3 or more distinct batch sizes, "
                f"got {np.unique(B).size}; pass B_noise (e.g. the measured B_crit)"
            )
        from scipy.optimize import minimize_scalar

        lo, hi = math.log(B.min() / 100.0), math.log(B.max() * 100.0)
        best = minimize_scalar(
            lambda t: _profile(rule, B, log_lr, math.exp(t))[1],
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-6},
        )
        bn = math.exp(float(best.x))
        how = f"and B_noise fitted by least squares in log lr to {B.size} measured best lrs"
        if min(best.x - lo, hi - best.x) < 0.05:
            notes.append(
                f"B_noise = {bn:.3g} sits at the search bound: the lrs do not show the "
                "rule's bend over the measured sizes; pass B_noise instead"
            )
    log_lr_max, rss = _profile(rule, B, log_lr, bn)
    dof = B.size - (1 if B_noise is not None else 2)
    sd = math.sqrt(rss / dof) if dof > 0 else None
    return LrRule(rule, math.exp(log_lr_max), bn, how, sd, tuple(notes))
