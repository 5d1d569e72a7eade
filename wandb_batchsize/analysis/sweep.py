"""Sweep mode: the susceptibility of a metric across a batch-size sweep.

Input: one ``(B_i, M_i)`` pair per run; repeated batch sizes (seeds) are allowed.

- Repeats are aggregated first: mean, standard error (ddof=1; NaN for a single
  run) and count per distinct batch size.
- ``chi = |dM / d log10 B|`` by ``numpy.gradient`` on the distinct sizes, ends set to
  0; ``K_c`` = B at the largest chi; ``kappa = chi(K_c) / median(chi)`` (inf if the
  median is 0); ``alpha`` = OLS slope of ``log10 M`` on ``log10 B`` over ``M > 0``
  (NaN with 3 or fewer such points).
- With repeats, ``K_c_interval`` is the 2.5-97.5 % percentile interval of K_c over
  a bootstrap that resamples runs within each batch size.
- For ``metric_kind="steps_to_target"`` (or ``"samples_to_target"``, converted to
  steps as samples / B) the McCandlish et al. (2018) trade-off
  ``S = S_min (1 + B_noise / B)`` is fitted by least squares on ``log S`` (the noise
  of steps-to-target is multiplicative); ``B_crit = B_noise`` is the empirical
  critical batch size, ``S_min`` the fewest steps possible. Its interval comes from
  the same bootstrap with repeats, else from the fit's Jacobian (delta method on
  ``log B_noise``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from .result import to_json_value

__all__ = ["SweepResult", "analyze_sweep", "fit_mccandlish"]

_KINDS = ("loss", "steps_to_target", "samples_to_target")
MIN_DISTINCT = 4


@dataclass(frozen=True)
class SweepResult:
    """Result of :func:`analyze_sweep` (batch sizes in samples per step)."""

    K_c: float
    kappa: float
    alpha: float
    batch_sizes: np.ndarray
    metric_mean: np.ndarray
    metric_se: np.ndarray
    counts: np.ndarray
    chi_values: np.ndarray
    K_c_interval: tuple[float, float] | None
    B_crit: float | None
    B_crit_interval: tuple[float, float] | None
    S_min: float | None
    n_runs: int
    diagnostics: dict = field(default_factory=dict)

    def summary(self) -> str:
        """Human-readable multi-line summary."""
        kind = self.diagnostics.get("metric_kind", "loss")
        ci = (
            f" (95% CI {self.K_c_interval[0]:.0f}-{self.K_c_interval[1]:.0f})"
            if self.K_c_interval
            else ""
        )
        lines = [
            f"Batch-size sweep ({self.n_runs} runs, {len(self.batch_sizes)} batch sizes, "
            f"metric={kind})",
            f"  K_c    = {self.K_c:.0f}{ci}",
            f"  kappa  = {self.kappa:.2f}",
            f"  alpha  = {self.alpha:.3f}",
        ]
        if self.B_crit is not None:
            bci = (
                f" (95% CI {self.B_crit_interval[0]:.3g}-{self.B_crit_interval[1]:.3g})"
                if self.B_crit_interval
                else ""
            )
            lines.append(f"  B_crit = {self.B_crit:.3g}{bci}   S_min = {self.S_min:.3g}")
        for w in self.diagnostics.get("warnings", []):
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict:
        """Strict-JSON dict (NaN/inf -> None, arrays -> lists)."""
        return {f.name: to_json_value(getattr(self, f.name)) for f in fields(self)}


def _chi_peak(B: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """chi, K_c, kappa for one curve (1-D) or many (rows of 2-D ``M``)."""
    M2 = np.atleast_2d(M)
    chi = np.abs(np.gradient(M2, np.log10(B), axis=1))
    chi[:, 0] = 0.0
    chi[:, -1] = 0.0
    arg = np.argmax(chi, axis=1)
    peak = chi[np.arange(chi.shape[0]), arg]
    med = np.median(chi, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(med > 0, peak / med, np.inf)
    return chi, B[arg], kappa


def fit_mccandlish(B: np.ndarray, S: np.ndarray) -> tuple[float, float, float]:
    """Fit ``S = S_min (1 + B_noise / B)`` on ``log S``; return (S_min, B_noise, se(log B_noise))."""
    B = np.asarray(B, dtype=np.float64)
    S = np.asarray(S, dtype=np.float64)
    ok = (S > 0) & np.isfinite(S)
    B, S = B[ok], S[ok]
    # linear start: S = a + b / B
    X = np.column_stack([np.ones_like(B), 1.0 / B])
    a, b = np.linalg.lstsq(X, S, rcond=None)[0]
    s0 = a if a > 0 else S.min() / 2
    bn0 = b / a if (a > 0 and b > 0) else np.median(B)
    logS = np.log(S)

    def resid(p: np.ndarray) -> np.ndarray:
        return p[0] + np.log1p(np.exp(p[1]) / B) - logS

    sol = least_squares(resid, [np.log(s0), np.log(bn0)], method="lm")
    s_min, b_noise = float(np.exp(sol.x[0])), float(np.exp(sol.x[1]))
    dof = B.size - 2
    se = float("nan")
    if dof > 0:
        J = sol.jac
        s2 = float(sol.fun @ sol.fun) / dof
        try:
            cov = np.linalg.inv(J.T @ J) * s2
            se = float(np.sqrt(max(cov[1, 1], 0.0)))
        except np.linalg.LinAlgError:
            pass
    return s_min, b_noise, se


def _clean(batch_sizes: Any, metrics: Any, nan_policy: str) -> tuple[np.ndarray, np.ndarray, int]:
    B = np.asarray(batch_sizes, dtype=np.float64).reshape(-1)
    M = np.asarray(metrics, dtype=np.float64).reshape(-1)
    if B.size != M.size:
        raise ValueError(
            f"batch_sizes and metrics must have the same length, got {B.size} and {M.size}"
        )
    badB = ~np.isfinite(B) | (B <= 0)
    if badB.any():
        i = int(np.flatnonzero(badB)[0])
        raise ValueError(f"batch_sizes[{i}] = {B[i]!r}: batch sizes must be positive numbers")
    badM = ~np.isfinite(M)
    n_bad = int(badM.sum())
    if n_bad:
        if nan_policy == "raise":
            i = int(np.flatnonzero(badM)[0])
            raise ValueError(
                f"metrics[{i}] is {M[i]!r} (run with batch size {B[i]:g}); drop failed runs "
                "or use nan_policy='omit'"
            )
        B, M = B[~badM], M[~badM]
    return B, M, n_bad


def analyze_sweep(
    batch_sizes: Any,
    metrics: Any,
    *,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    metric_kind: str = "loss",
    nan_policy: str = "omit",
) -> SweepResult:
    """Analyse a batch-size sweep (see the module docstring).

    ``metric_kind``: ``"loss"`` (any metric; no McCandlish fit),
    ``"steps_to_target"`` or ``"samples_to_target"`` (adds ``B_crit`` and ``S_min``).
    Non-finite metrics (failed runs) are dropped and counted in
    ``diagnostics["n_dropped"]`` (``nan_policy="raise"`` raises instead).
    """
    if metric_kind not in _KINDS:
        raise ValueError(f"metric_kind must be one of {_KINDS}, got {metric_kind!r}")
    if nan_policy not in ("omit", "raise"):
        raise ValueError(f"nan_policy must be 'omit' or 'raise', got {nan_policy!r}")
    if int(n_bootstrap) < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    B_runs, M_runs, n_bad = _clean(batch_sizes, metrics, nan_policy)
    sizes, inverse, counts = np.unique(B_runs, return_inverse=True, return_counts=True)
    if sizes.size < MIN_DISTINCT:
        raise ValueError(
            f"need at least {MIN_DISTINCT} distinct batch sizes, got {sizes.size} "
            f"({', '.join(f'{b:g}' for b in sizes)}) from {B_runs.size} runs"
            + (f" ({n_bad} dropped as non-finite)" if n_bad else "")
            + "; add runs at more batch sizes"
        )
    sums = np.bincount(inverse, weights=M_runs)
    mean = sums / counts
    dev = M_runs - mean[inverse]
    ss = np.bincount(inverse, weights=dev * dev)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(counts > 1, np.sqrt(ss / np.maximum(counts - 1, 1) / counts), np.nan)

    chi, kc, kappa = _chi_peak(sizes, mean)
    pos = mean > 0
    alpha = float("nan")
    if pos.sum() > 3:
        alpha = float(np.polyfit(np.log10(sizes[pos]), np.log10(mean[pos]), 1)[0])

    diag: dict[str, Any] = {
        "metric_kind": metric_kind,
        "n_dropped": n_bad,
        "n_bootstrap": int(n_bootstrap),
        "seed": seed,
        "warnings": [],
    }
    if not np.isfinite(kappa[0]):
        diag["warnings"].append("median chi is 0 (too few sizes or a flat metric): kappa = inf")
    repeats = bool((counts > 1).any())
    rng = np.random.default_rng(seed)
    boot_means = None
    if repeats and n_bootstrap > 0:
        boot_means = np.empty((int(n_bootstrap), sizes.size))
        order = np.argsort(inverse, kind="stable")
        grouped = M_runs[order]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for g, (s0, c) in enumerate(zip(starts, counts, strict=True)):
            idx = rng.integers(0, c, size=(int(n_bootstrap), c))
            boot_means[:, g] = grouped[s0 + idx].mean(axis=1)
        _, kc_boot, _ = _chi_peak(sizes, boot_means)
        lo, hi = np.percentile(kc_boot, [2.5, 97.5])
        kc_interval: tuple[float, float] | None = (float(lo), float(hi))
    else:
        kc_interval = None

    b_crit = b_int = s_min = None
    if metric_kind != "loss":
        steps_runs = M_runs / B_runs if metric_kind == "samples_to_target" else M_runs
        steps_mean = mean / sizes if metric_kind == "samples_to_target" else mean
        if (steps_runs <= 0).any():
            raise ValueError(f"{metric_kind} must be positive for the McCandlish fit")
        s_min, b_crit, se_log = fit_mccandlish(B_runs, steps_runs)
        if boot_means is not None:
            boot_steps = boot_means / sizes if metric_kind == "samples_to_target" else boot_means
            fits = [fit_mccandlish(sizes, row)[1] for row in boot_steps[: min(200, n_bootstrap)]]
            lo, hi = np.percentile(fits, [2.5, 97.5])
            b_int = (float(lo), float(hi))
            diag["B_crit_interval_method"] = "bootstrap over runs (200 refits)"
        elif np.isfinite(se_log):
            b_int = (float(b_crit * np.exp(-1.96 * se_log)), float(b_crit * np.exp(1.96 * se_log)))
            diag["B_crit_interval_method"] = "delta method on log B_noise"
        diag["steps_mean"] = steps_mean
        if not (sizes[0] / 10 <= b_crit <= sizes[-1] * 10):
            msg = (
                f"B_crit={b_crit:.3g} is far outside the swept sizes "
                f"{sizes[0]:g}-{sizes[-1]:g}: the fit is an extrapolation"
            )
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            diag["warnings"].append(msg)

    return SweepResult(
        K_c=float(kc[0]),
        kappa=float(kappa[0]),
        alpha=alpha,
        batch_sizes=sizes,
        metric_mean=mean,
        metric_se=se,
        counts=counts.astype(np.int64),
        chi_values=chi[0],
        K_c_interval=kc_interval,
        B_crit=b_crit,
        B_crit_interval=b_int,
        S_min=s_min,
        n_runs=int(B_runs.size),
        diagnostics=diag,
    )
