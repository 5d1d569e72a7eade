"""The framework-free math of a critical-batch measurement (``spec/critical-batch.md``).

- :func:`geometric_grid`: the batch sizes (powers of two from the reference);
- :func:`fit_steps`: ``S = S_min (1 + B_noise / B)`` (McCandlish et al. 2018)
  fitted on ``log S``, so small and large batches weigh alike, giving
  ``E_min = S_min B_noise`` and ``B_crit = E_min / S_min``;
- :func:`bootstrap_b_crit`: an interval for ``B_crit`` by resampling repeats
  per batch size (or, with one repeat, residuals of the log fit);
- :func:`knee_bracketed`: whether the grid reached the knee;
- :func:`fit_lr_max`: the scale of the saturating lr rule fitted to the best lrs.

Nothing here imports a framework or wandb.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from wandb_batchsize.analysis.sweep import fit_mccandlish
from wandb_batchsize.critical.result import saturating_lr

#: the grid is bracketed when the largest batch needs at least this many
#: times the examples of the smallest (perfect scaling: 1; at B = B_noise from
#: far below it: about 2)
SATURATION_RATIO = 1.5
#: an interval end beyond this multiple of the largest batch is reported as inf
UNBOUNDED = 10.0


@dataclass(frozen=True)
class StepsFit:
    """``S = S_min (1 + B_noise / B)`` fitted on ``log S``."""

    S_min: float
    B_noise: float
    se_log_B_noise: float

    @property
    def E_min(self) -> float:
        return self.S_min * self.B_noise

    @property
    def B_crit(self) -> float:
        """``E_min / S_min`` (McCandlish et al. 2018)."""
        return self.E_min / self.S_min


def geometric_grid(reference_batch: int, max_batch_size: int, factor: int = 2) -> list[int]:
    """``reference_batch * factor**k`` up to ``max_batch_size`` (at least two sizes)."""
    reference_batch, max_batch_size = int(reference_batch), int(max_batch_size)
    if reference_batch < 1:
        raise ValueError(f"reference_batch must be >= 1, got {reference_batch}")
    if factor < 2:
        raise ValueError(f"the grid factor must be >= 2, got {factor}")
    if max_batch_size < reference_batch * factor:
        raise ValueError(
            f"max_batch_size={max_batch_size} leaves no room above reference_batch="
            f"{reference_batch}: the grid needs at least two sizes (max_batch_size >= "
            f"{reference_batch * factor})"
        )
    sizes = [reference_batch]
    while sizes[-1] * factor <= max_batch_size:
        sizes.append(sizes[-1] * factor)
    return sizes


def fit_steps(batch_sizes: Sequence[float], steps: Sequence[float]) -> StepsFit:
    """Fit ``S(B) = S_min (1 + B_noise / B)`` by least squares on ``log S``.

    Needs at least two distinct batch sizes with positive, finite steps.
    """
    B = np.asarray(batch_sizes, dtype=np.float64)
    S = np.asarray(steps, dtype=np.float64)
    ok = np.isfinite(S) & (S > 0) & np.isfinite(B) & (B > 0)
    if np.unique(B[ok]).size < 2:
        raise ValueError(
            f"the fit needs steps at two batch sizes at least, got {np.unique(B[ok]).size}"
        )
    s_min, b_noise, se = fit_mccandlish(B[ok], S[ok])
    return StepsFit(S_min=s_min, B_noise=b_noise, se_log_B_noise=se)


def knee_bracketed(batch_sizes: Sequence[float], steps: Sequence[float], B_noise: float) -> str:
    """``"bracketed"``, ``"below"`` (no saturation: B_crit is a lower bound) or ``"above"``.

    ``"below"`` when the largest batch still needs fewer than
    :data:`SATURATION_RATIO` times the examples of the smallest or the fitted
    ``B_noise`` lies past twice the largest batch; ``"above"`` when ``B_noise`` is
    below the smallest batch (every size already saturated: an upper bound).
    """
    order = np.argsort(batch_sizes)
    B = np.asarray(batch_sizes, dtype=np.float64)[order]
    S = np.asarray(steps, dtype=np.float64)[order]
    examples_ratio = (B[-1] * S[-1]) / (B[0] * S[0])
    if not math.isfinite(B_noise) or B_noise > 2 * B[-1] or examples_ratio < SATURATION_RATIO:
        return "below"
    if B_noise < B[0]:
        return "above"
    return "bracketed"


def bootstrap_b_crit(
    per_size: Mapping[int, Sequence[float]],
    *,
    n_boot: int = 400,
    level: float = 0.9,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile interval of ``B_crit`` at ``level``.

    ``per_size`` maps each batch size to its steps-to-target over repeats.
    With two or more repeats at some size, each resample draws one repeat per
    size (with replacement) and refits; with one repeat everywhere, residuals
    of the log fit are resampled instead. ``(nan, nan)`` when fewer than two
    sizes have data; the upper end is ``inf`` past :data:`UNBOUNDED` x the
    largest batch (the grid does not bound it).
    """
    sizes = sorted(b for b, s in per_size.items() if len(s) > 0)
    if len(sizes) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    values = [np.asarray(per_size[b], dtype=np.float64) for b in sizes]
    B = np.asarray(sizes, dtype=np.float64)
    draws: list[float] = []
    if max(v.size for v in values) > 1:
        for _ in range(n_boot):
            S = np.array([v[rng.integers(v.size)] for v in values])
            draws.append(_b_crit_or_nan(B, S))
    else:
        S = np.array([v[0] for v in values])
        fit = fit_steps(B, S)
        log_fit = np.log(fit.S_min * (1.0 + fit.B_noise / B))
        resid = np.log(S) - log_fit
        if B.size > 2:
            resid = resid * math.sqrt(B.size / (B.size - 2))  # degrees of freedom
        for _ in range(n_boot):
            draws.append(_b_crit_or_nan(B, np.exp(log_fit + rng.choice(resid, B.size))))
    finite = np.asarray([d for d in draws if math.isfinite(d)])
    if finite.size < n_boot // 2:
        return (math.nan, math.nan)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    # past UNBOUNDED x the largest batch the grid says nothing: no upper bound
    high = math.inf if high > UNBOUNDED * B.max() else high
    return (float(low), float(high))


def _b_crit_or_nan(B: np.ndarray, S: np.ndarray) -> float:
    try:
        return fit_steps(B, S).B_crit
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return math.nan


def fit_lr_max(best_lr: Mapping[int, float], B_noise: float, optimizer_kind: str = "sgd") -> float:
    """``lr_max`` of :func:`saturating_lr` with ``B_noise`` fixed, fitted on ``log lr``.

    The least-squares solution in log space is the geometric mean of
    ``lr_i / rule(B_i; lr_max=1)``.
    """
    pairs = [(b, lr) for b, lr in best_lr.items() if lr > 0 and math.isfinite(lr)]
    if not pairs or not (B_noise > 0 and math.isfinite(B_noise)):
        return math.nan
    logs = [math.log(lr / saturating_lr(b, 1.0, B_noise, optimizer_kind)) for b, lr in pairs]
    return math.exp(sum(logs) / len(logs))


def predict_lr(
    batch_size: int,
    best_lr: Mapping[int, float],
    optimizer_kind: str,
    B_noise: float | None = None,
) -> float:
    """The centre of the lr search at ``batch_size`` from the best lrs found so far.

    With a ``B_noise`` estimate the saturating rule fitted to ``best_lr``;
    before one exists, linear (SGD) or square-root (Adam) scaling from the
    nearest measured size below (the rules' small-batch limit).
    """
    if not best_lr:
        raise ValueError("predict_lr needs at least one measured best lr")
    if B_noise is not None and math.isfinite(B_noise) and B_noise > 0:
        lr_max = fit_lr_max(best_lr, B_noise, optimizer_kind)
        if math.isfinite(lr_max):
            return saturating_lr(batch_size, lr_max, B_noise, optimizer_kind)
    below = [b for b in best_lr if b <= batch_size]
    ref = max(below) if below else min(best_lr)
    ratio = batch_size / ref
    return best_lr[ref] * (ratio if optimizer_kind == "sgd" else math.sqrt(ratio))
