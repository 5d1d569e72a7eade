"""The published susceptibility curve: scale grid, V(K), chi(K), K_c, kappa, alpha.

Definitions (spec/susceptibility.md, "The scale grid" and "V(K), alpha, chi, K_c,
kappa"), restated so that they can be checked against the code:

- grid: ``K_min = max(2, K_min)``, ``K_max = N // min_batches`` (a user K_max is
  capped there; if ``K_max <= K_min`` then ``K_max = N // 2``);
  ``floor(geomspace(K_min, K_max, n_points))``, de-duplicated, clipped.
- ``V(K)``: sample variance (ddof=1) of the means of the ``N // K``
  non-overlapping blocks of K consecutive values (first ``(N // K) * K`` values).
- ``chi(K) = |d log10 V / d log10 K|`` by ``numpy.gradient`` on the valid points.
- ``K_c``: K of the largest chi with the first two and the last grid positions
  masked; ``kappa = max(interior chi) / median(all finite chi)``.
- ``alpha``: OLS slope of ``log10 V`` on ``log10 K``.

Every function that takes ``V`` also accepts a 2-D array (one curve per row),
which the null distributions use to evaluate hundreds of curves at once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "check_scale_range",
    "scale_grid",
    "block_variances",
    "block_variances_many",
    "variances_and_block_variances",
    "CurveStats",
    "curve_stats",
    "MIN_VALID_POINTS",
]

#: fewer valid points than this gives the degenerate result (spec).
MIN_VALID_POINTS = 5


def check_scale_range(K_min: int, K_max: int | None) -> None:
    """Raise ``ValueError`` when a user's ``K_max`` is not above ``K_min`` (at least 2).

    The published fallback ``K_max = N // 2`` is for a cap that the *data* forces
    below ``K_min``; a ``K_max`` given below ``K_min`` contradicts itself.
    """
    if K_max is not None and int(K_max) <= max(2, int(K_min)):
        raise ValueError(
            f"K_max={K_max} must be greater than K_min={max(2, int(K_min))}; "
            "swap them or leave K_max unset (N // min_batches)"
        )


def scale_grid(
    n: int,
    K_min: int = 2,
    K_max: int | None = None,
    n_points: int = 60,
    min_batches: int = 10,
) -> np.ndarray:
    """Integer block sizes K analysed for a series of ``n`` values (published grid).

    >>> scale_grid(2000)[:18].tolist()
    [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20]
    """
    if n_points < 2:
        raise ValueError(f"n_points must be at least 2, got {n_points}")
    if min_batches < 2:
        raise ValueError(f"min_batches must be at least 2, got {min_batches}")
    k_lo = max(2, int(K_min))
    cap = n // min_batches
    k_hi = cap if K_max is None else min(int(K_max), cap)
    if k_hi <= k_lo:
        k_hi = n // 2
    if k_hi < k_lo:
        raise ValueError(
            f"no block size fits: K_min={k_lo} but a series of {n} values allows at most "
            f"K={n // 2}; lower K_min or give more values"
        )
    grid = np.geomspace(k_lo, k_hi, int(n_points)).astype(np.int64)  # truncation = floor
    return np.clip(np.unique(grid), k_lo, k_hi)


def block_variances(y: np.ndarray, K: np.ndarray) -> np.ndarray:
    """V(K) for each K: ddof=1 variance of non-overlapping block means.

    Computed from one prefix sum of the mean-centred series (block sums are
    differences of the prefix sum), so the cost is one pass plus ``sum(N/K)``
    gathers instead of one pass per K. Centring keeps the prefix sum a random
    walk of size ~ sigma sqrt(N), so block sums lose only ~eps sqrt(N/K) relative
    precision. NaN where fewer than 2 blocks exist.
    """
    return variances_and_block_variances(y, K)[1]


def variances_and_block_variances(y: np.ndarray, K: np.ndarray) -> tuple[float, np.ndarray]:
    """``(var(y, ddof=1), V(K))`` sharing the centred copy of ``y``."""
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[-1]
    yc = y - y.mean()
    var1 = float(np.einsum("i,i->", yc, yc)) / (n - 1) if n > 1 else float("nan")
    c = np.empty(n + 1)
    c[0] = 0.0
    np.cumsum(yc, out=c[1:])
    del yc
    out = np.full(len(K), np.nan)
    for i, k in enumerate(np.asarray(K, dtype=np.int64)):
        m = n // k
        if m < 2:
            continue
        ends = c[k : m * k + 1 : k]  # prefix sum at k, 2k, ..., mk
        bs = np.empty(m)
        bs[0] = ends[0]
        np.subtract(ends[1:], ends[:-1], out=bs[1:])
        total = ends[-1]
        ss = float(np.einsum("i,i->", bs, bs)) - total * total / m
        out[i] = max(ss, 0.0) / (m - 1) / (float(k) * float(k))
    return var1, out


def block_variances_many(Y: np.ndarray, K: np.ndarray) -> np.ndarray:
    """:func:`block_variances` for each row of a 2-D array (shape ``(R, N)``)."""
    Y = np.asarray(Y, dtype=np.float64)
    r, n = Y.shape
    c = np.zeros((r, n + 1))
    np.cumsum(Y - Y.mean(axis=1, keepdims=True), axis=1, out=c[:, 1:])
    out = np.full((r, len(K)), np.nan)
    for i, k in enumerate(np.asarray(K, dtype=np.int64)):
        m = n // k
        if m < 2:
            continue
        ends = c[:, 0 : m * k + 1 : k]
        bs = np.diff(ends, axis=1)
        total = ends[:, -1]
        ss = np.einsum("ij,ij->i", bs, bs) - total * total / m
        out[:, i] = np.maximum(ss, 0.0) / (m - 1) / (float(k) * float(k))
    return out


@dataclass(frozen=True)
class CurveStats:
    """chi, K_c, kappa and the OLS fit of one or many curves (rows)."""

    chi: np.ndarray  # same shape as V; NaN where V is invalid
    K_c: np.ndarray  # one per row
    kappa: np.ndarray
    alpha: np.ndarray
    alpha_se_ols: np.ndarray  # the published (too small) OLS standard error
    intercept: np.ndarray
    n_valid: np.ndarray


def _ols(x: np.ndarray, Y: np.ndarray, w: np.ndarray):
    """Row-wise OLS of Y on x using only entries where w is True."""
    cnt = w.sum(axis=1).astype(float)
    xw = np.where(w, x, 0.0)
    yw = np.where(w, Y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = xw.sum(axis=1) / cnt
        ym = yw.sum(axis=1) / cnt
        dx = np.where(w, x - xm[:, None], 0.0)
        dy = np.where(w, Y - ym[:, None], 0.0)
        sxx = (dx * dx).sum(axis=1)
        slope = (dx * dy).sum(axis=1) / sxx
        resid = np.where(w, dy - slope[:, None] * dx, 0.0)
        se = np.sqrt((resid * resid).sum(axis=1) / (cnt - 2) / sxx)
    return slope, ym - slope * xm, se


def curve_stats(K: np.ndarray, V: np.ndarray) -> CurveStats:
    """chi, K_c, kappa, alpha for ``V`` (1-D, or 2-D with one curve per row).

    Rows with fewer than :data:`MIN_VALID_POINTS` valid points get the degenerate
    values of the spec (chi 0, K_c the middle grid value, kappa 1, alpha -1).
    """
    K = np.asarray(K, dtype=np.int64)
    V = np.asarray(V, dtype=np.float64)
    one = V.ndim == 1
    V2 = V[None, :] if one else V
    r, p = V2.shape
    logK = np.log10(K.astype(np.float64))
    valid = np.isfinite(V2) & (V2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logV = np.where(valid, np.log10(np.where(valid, V2, 1.0)), np.nan)
    n_valid = valid.sum(axis=1)
    chi = np.full((r, p), np.nan)
    all_valid = valid.all(axis=1) & (p >= 2)
    if all_valid.any():
        chi[all_valid] = np.abs(np.gradient(logV[all_valid], logK, axis=1))
    for i in np.flatnonzero(~all_valid & (n_valid >= 2)):
        v = valid[i]
        chi[i, v] = np.abs(np.gradient(logV[i, v], logK[v]))

    masked = chi.copy()
    masked[:, :2] = np.nan
    masked[:, -1:] = np.nan
    has_interior = np.isfinite(masked).any(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (degenerate)
        med = np.nanmedian(chi, axis=1)
    filled = np.where(np.isfinite(masked), masked, -np.inf)
    arg = np.argmax(filled, axis=1)
    peak = filled[np.arange(r), arg]
    K_c = np.where(has_interior, K[arg].astype(float), float(K[p // 2]))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(has_interior & (med > 0), peak / med, 1.0)
    alpha, intercept, se = _ols(logK[None, :], np.where(valid, logV, 0.0), valid)

    degenerate = n_valid < MIN_VALID_POINTS
    if degenerate.any():
        chi[degenerate] = 0.0
        K_c[degenerate] = float(K[p // 2])
        kappa[degenerate] = 1.0
        alpha[degenerate] = -1.0
        se[degenerate] = np.inf
    if one:
        return CurveStats(chi[0], K_c[:1], kappa[:1], alpha[:1], se[:1], intercept[:1], n_valid)
    return CurveStats(chi, K_c, kappa, alpha, se, intercept, n_valid)
