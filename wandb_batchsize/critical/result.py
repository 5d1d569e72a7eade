"""The result of a critical-batch measurement (``spec/critical-batch.md``).

Under the empirical model of McCandlish et al. (2018), the steps and examples
to a fixed target loss at batch ``B`` (with a tuned learning rate) are

    S(B) = S_min (1 + B_noise / B),   E(B) = B S(B) = E_min (1 + B / B_noise),

and the critical batch size is ``B_crit = E_min / S_min`` (= ``B_noise`` under
the model). :class:`CriticalBatchResult` holds the fit, its bootstrap
interval, the best learning rate found at each batch size and the learning
rate rule fitted to them (:meth:`CriticalBatchResult.lr_for`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CriticalBatchResult", "CriticalBatchRow", "saturating_lr"]


def saturating_lr(
    batch_size: float, lr_max: float, B_noise: float, optimizer_kind: str = "sgd"
) -> float:
    """The best learning rate at ``batch_size`` under the spec's rules.

    - ``"sgd"`` (McCandlish et al. 2018): ``lr(B) = lr_max / (1 + B_noise / B)``;
      linear in ``B`` for ``B << B_noise``, saturating at ``lr_max``.
    - ``"adam"`` (Li et al. 2024, "Surge phenomenon"):
      ``lr(B) = 2 lr_max / (sqrt(B_noise / B) + sqrt(B / B_noise))``; grows as
      ``sqrt(B)``, peaks at ``lr_max`` for ``B = B_noise``, then falls.

    The formulas live in :mod:`wandb_batchsize.analysis.lr_rules`; this picks one by kind.
    """
    from wandb_batchsize.analysis import lr_rules

    if optimizer_kind == "adam":
        return float(lr_rules.surge_lr(batch_size, lr_max, B_noise))
    if optimizer_kind == "sgd":
        return float(lr_rules.saturating_lr(batch_size, lr_max, B_noise))
    raise ValueError(f"optimizer_kind must be 'sgd' or 'adam', got {optimizer_kind!r}")


@dataclass(frozen=True)
class CriticalBatchRow:
    """One branch of a measurement: train at (``batch_size``, ``lr``) until the target.

    ``steps`` is the number of optimizer steps to the target (the budget when
    not ``reached``); ``samples = steps * batch_size``; ``diverged`` when the
    loss became non-finite or exceeded the divergence threshold.
    """

    batch_size: int
    lr: float
    steps: int
    samples: int
    reached: bool
    diverged: bool
    repeat: int = 0
    final_loss: float = math.nan
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "lr": self.lr,
            "steps": self.steps,
            "samples": self.samples,
            "reached": self.reached,
            "diverged": self.diverged,
            "repeat": self.repeat,
            "final_loss": self.final_loss,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class CriticalBatchResult:
    """A measured critical batch size and the learning rates that go with it.

    Attributes
    ----------
    B_crit: ``E_min / S_min`` of the fit ``S = S_min (1 + B_noise / B)``
        (McCandlish et al. 2018). A lower bound when ``bracketed`` is False.
    interval: bootstrap interval of ``B_crit`` (``level``, default 90 %) over
        the repeats/seeds; ``(nan, nan)`` when it could not be computed.
    S_min, E_min: minimum steps and minimum examples to the target.
    B_noise: the fitted noise scale of the model (equal to ``B_crit`` for
        this two-parameter fit; kept separate for the lr rules).
    bracketed: whether the grid reached the knee (steps stopped falling in
        proportion with ``B``); when False ``B_crit`` is a lower bound.
    best_lr: batch size -> the learning rate with the fewest steps to the
        target (median over repeats).
    steps: batch size -> the fewest steps to the target (median over repeats);
        only sizes that reached the target.
    lr_max, lr_B_noise: the saturating lr rule fitted to ``best_lr``
        (:func:`saturating_lr`); :meth:`lr_for` evaluates it.
    optimizer_kind: ``"sgd"`` or ``"adam"``: which lr rule applies.
    target: the loss every branch had to reach; ``target_source`` says where
        it came from (``"user"`` or ``"reference"``).
    reference_batch: the smallest batch of the grid.
    fit_space: ``"log"`` (least squares on ``log S``; weighs every size alike).
    warnings: plain-language caveats (not bracketed, too few sizes, ...).
    table: every branch run (:class:`CriticalBatchRow`).
    samples_used, seconds: total examples trained on and wall time.
    """

    B_crit: float
    interval: tuple[float, float]
    S_min: float
    E_min: float
    B_noise: float
    bracketed: bool
    best_lr: Mapping[int, float]
    steps: Mapping[int, float]
    lr_max: float
    lr_B_noise: float
    optimizer_kind: str
    target: float
    target_source: str
    reference_batch: int
    fit_space: str = "log"
    level: float = 0.9
    warnings: tuple[str, ...] = ()
    table: tuple[CriticalBatchRow, ...] = field(default=(), repr=False)
    samples_used: int = 0
    seconds: float = 0.0

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes measured, ascending."""
        return tuple(sorted({row.batch_size for row in self.table}))

    def lr_for(self, batch_size: float) -> float:
        """The learning rate for ``batch_size`` from the rule fitted to ``best_lr``.

        SGD: ``lr_max / (1 + B_noise / B)``; Adam: the surge rule of Li et al.
        2024 (see :func:`saturating_lr`).
        """
        if not (math.isfinite(self.lr_max) and math.isfinite(self.lr_B_noise)):
            raise ValueError("no learning-rate rule was fitted (no batch size reached the target)")
        return saturating_lr(batch_size, self.lr_max, self.lr_B_noise, self.optimizer_kind)

    def samples_for(self, batch_size: float) -> float:
        """Examples to the target at ``batch_size`` under the fit: ``E_min (1 + B / B_noise)``."""
        return self.E_min * (1.0 + batch_size / self.B_noise)

    def steps_for(self, batch_size: float) -> float:
        """Steps to the target at ``batch_size`` under the fit: ``S_min (1 + B_noise / B)``."""
        return self.S_min * (1.0 + self.B_noise / batch_size)

    def rows(self) -> list[dict[str, Any]]:
        """The table as a list of dicts (one per branch)."""
        return [row.as_dict() for row in self.table]

    def summary(self) -> str:
        """A few human-readable lines: the answer, its interval, the lr rule and caveats."""
        low, high = self.interval
        bound = "" if self.bracketed else " (lower bound: knee not bracketed)"
        lines = [
            f"critical batch size B_crit = {self.B_crit:.4g}{bound}",
            f"  {self.level:.0%} interval [{low:.4g}, {high:.4g}] over repeats/seeds",
            f"  S_min = {self.S_min:.4g} steps, E_min = {self.E_min:.4g} examples"
            f" to target loss {self.target:.4g} ({self.target_source})",
            f"  lr rule ({self.optimizer_kind}): lr_max = {self.lr_max:.4g},"
            f" B_noise = {self.lr_B_noise:.4g}",
            "  batch  best lr     steps",
        ]
        for b in sorted(self.best_lr):
            steps = self.steps.get(b, math.nan)
            lines.append(f"  {b:>5}  {self.best_lr[b]:<10.4g}  {steps:.4g}")
        lines.append(
            f"  cost: {self.samples_used} examples, {self.seconds:.1f} s, {len(self.table)} branches"
        )
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)
