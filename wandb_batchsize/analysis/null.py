"""Reference (i.i.d.) distributions for ``p_iid``, ``kappa`` and ``alpha``.

Test statistic for ``p_iid`` (a multi-scale variance-ratio portmanteau, after Lo &
MacKinlay 1988): with ``r(K) = K V(K) / var(x)`` and ``m_K = N // K`` blocks,

    z(K) = ln r(K) * sqrt((m_K - 1) / 2),      T = sum_K w_K z(K)^2,

weights ``w_K`` proportional to the spacing of ``ln K`` on the grid (each decade of
scales counts the same). Under i.i.d. data every z(K) is approximately N(0, 1);
any autocorrelation, periodicity or trend pushes ``r(K)`` away from 1 at some
scales. (Measured at N = 2000: power 0.7 on AR(1) with rho = +-0.1, where the
published slope t-test has 0.05.)

Two ways to get the null distribution (``B`` replicates):

- ``permutation``: shuffle the analysed series (re-applying the detrend filter, see
  :func:`permutation_null`), recompute T, kappa and alpha. Exact for exchangeable
  data. Replicates are drawn in vectorised batches, with the sequential stopping
  rule of Besag & Clifford (1991): stop once ``H_STOP`` replicates reach the
  observed T, and then ``p = H_STOP / l`` (l replicates drawn), else
  ``p = (1 + count) / (B + 1)``. Both are valid p-values (``P(p <= a) <= a``);
  stopping only happens when p >= H_STOP / B, so it never changes a decision at
  0.05, it only saves time on unremarkable series.
- ``gaussian``: the same statistics for i.i.d. Gaussian series of the same length
  and grid, cached per (N, grid, B, seed, detrend). Because every statistic here is
  scale free and ``ln r(K)`` depends on the data only through within-block cross
  products (the 4th-moment term cancels between ``K V(K)`` and ``var(x)``), this null
  is asymptotically distribution free; it needs no raw data, which is what the
  streaming analysis has. See :mod:`wandb_batchsize.analysis.gaussian_null` for
  how it is simulated fast.

Measured (200 i.i.d. series each, BENCHMARKS.md): ``P(p_iid < 0.05)`` = 2.5 % at
N = 2000 and 4.5 % at N = 10 000 (permutation); with the Gaussian null at N = 60 000,
5.5 % for Gaussian, 4.0 % for exponential and 1.0 % for Student-t(3) data (heavy
tails make it conservative, not liberal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .curve import block_variances_many, curve_stats
from .detrend import Detrend

__all__ = [
    "H_STOP",
    "NullSample",
    "iid_statistic",
    "permutation_null",
    "p_value",
]

#: Besag-Clifford stopping threshold (exceedances).
H_STOP = 10

#: target number of float64 values per vectorised batch of replicates.
_BATCH_VALUES = 2_000_000


@dataclass(frozen=True)
class NullSample:
    """Statistics of the null replicates and the p-value of the observed T."""

    T: np.ndarray
    kappa: np.ndarray
    alpha: np.ndarray
    p_value: float
    method: str
    n_drawn: int
    stopped_early: bool


def iid_statistic(K: np.ndarray, V: np.ndarray, var1: np.ndarray | float, n: int) -> np.ndarray:
    """Portmanteau statistic T (see module docstring) for one or many curves (rows)."""
    K = np.asarray(K, dtype=np.float64)
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    var1 = np.atleast_1d(np.asarray(var1, dtype=np.float64))
    m = np.floor(n / K)
    lk = np.log(K)
    w = np.gradient(lk) if K.size > 1 else np.ones(1)
    w = w / w.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(K * V / var1[:, None]) * np.sqrt((m - 1) / 2.0)
    z = np.where(np.isfinite(z), z, 0.0)
    return (z * z) @ w


def p_value(null_T: np.ndarray, observed: float) -> float:
    """Monte Carlo p-value ``(1 + #{T_null >= T_obs}) / (B + 1)``."""
    return float((1 + np.count_nonzero(null_T >= observed)) / (null_T.size + 1))


def _surrogates(y: np.ndarray, rows: int, rng: np.random.Generator, detrend: Detrend) -> np.ndarray:
    """``rows`` exchangeable surrogates of ``y`` under H0 "trend + i.i.d. noise"."""
    Y = rng.permuted(np.broadcast_to(y, (rows, y.size)), axis=1)
    if detrend == "linear":
        n = y.size
        t = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        Y -= Y.mean(axis=1, keepdims=True)
        Y -= np.outer((Y @ t) / float(t @ t), t)
    elif isinstance(detrend, int):
        Y = _circular_highpass(Y, detrend)
    return Y


def _circular_highpass(Y: np.ndarray, w: int) -> np.ndarray:
    """``y[t] - mean(y[t - w//2 : t - w//2 + w])`` with indices taken modulo N.

    The moving-average detrend applied to an exchangeable surrogate without
    shortening it (the wrap-around touches w of N positions; a window longer
    than the series wraps around it more than once).
    """
    n = Y.shape[1]
    h = w // 2
    Yc = Y - Y.mean(axis=1, keepdims=True)
    c = np.zeros((Y.shape[0], n + w))
    np.cumsum(Yc[:, np.arange(-h, n + w - h - 1) % n], axis=1, out=c[:, 1:])
    return Yc - (c[:, w:] - c[:, :-w]) / w


def permutation_null(
    y: np.ndarray,
    K: np.ndarray,
    observed_T: float,
    n_permutations: int,
    seed: int | None,
    detrend: Detrend = "none",
    sequential: bool = True,
) -> NullSample:
    """Permutation null of (T, kappa, alpha) for the analysed series ``y``."""
    rng = np.random.default_rng(seed)
    n = y.size
    B = int(n_permutations)
    cap = int(max(1, min(B, _BATCH_VALUES // max(n, 1))))
    batch = min(cap, 2 * H_STOP) if sequential else cap  # small first batches can stop early
    Ts, kappas, alphas = [], [], []
    exceed = 0
    drawn = 0
    stopped = False
    while drawn < B and not stopped:
        rows = min(batch, B - drawn)
        batch = min(cap, 2 * batch)
        Y = _surrogates(y, rows, rng, detrend)
        V = block_variances_many(Y, K)
        T = iid_statistic(K, V, Y.var(axis=1, ddof=1), n)
        cs = curve_stats(K, V)
        if sequential:
            hits = np.cumsum(observed_T <= T) + exceed
            stop_at = np.flatnonzero(hits >= H_STOP)
            if stop_at.size:
                rows = int(stop_at[0]) + 1
                stopped = drawn + rows < B
        Ts.append(T[:rows])
        kappas.append(cs.kappa[:rows])
        alphas.append(cs.alpha[:rows])
        exceed += int(np.count_nonzero(T[:rows] >= observed_T))
        drawn += rows
    T_all = np.concatenate(Ts)
    p = H_STOP / drawn if stopped else p_value(T_all, observed_T)
    return NullSample(
        T=T_all,
        kappa=np.concatenate(kappas),
        alpha=np.concatenate(alphas),
        p_value=float(p),
        method="permutation",
        n_drawn=drawn,
        stopped_early=stopped,
    )
