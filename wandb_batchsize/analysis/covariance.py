"""Covariance of the block variances across scales, for i.i.d. data.

For i.i.d. Gaussian values with variance 1, ``K V(K) ~ (1/n_K) sum_b S_b^2`` with
``S_b`` the block sums and ``n_K = (N // K) K`` the values used, so (Isserlis)

    Cov(K_i V_i, K_j V_j) = 2 Q_ij / (n_i n_j),   Q_ij = sum_{a, b} overlap(a, b)^2,

the sum running over the blocks a of scale K_i and b of scale K_j. For nested
scales this is ``2 min(K_i, K_j) / N`` (a Brownian-motion covariance in K); for
non-nested ones the blocks straddle and Q is smaller. With ``K_i <= K_j`` and
``R = min(n_i, n_j)``, each boundary ``t K_j`` (t = 1 .. (R-1)//K_j) splits one
K_i-block into ``a_t`` and ``K_i - a_t`` with ``a_t = t K_j mod K_i``, so

    Q_ij = (R // K_i) K_i^2 + (R mod K_i)^2 - 2 sum_t a_t (K_i - a_t),

and ``a_t`` is periodic in t with period ``K_i / gcd(K_i, K_j)``. The 4th-cumulant
term of non-Gaussian data adds the same ``kappa_4 / N`` to every pair, i.e. a common
shift of all ``ln V(K)``, to which slopes, chi and kappa are blind.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import polygamma

__all__ = [
    "overlap_q",
    "overlap_matrix",
    "variance_ratio_covariance",
    "log_variance_covariance",
    "alpha_standard_error",
    "whitening",
]


def overlap_q(n: int, k_i: int, k_j: int) -> float:
    """``Q_ij`` of the module docstring for a series of ``n`` values."""
    if k_i > k_j:
        k_i, k_j = k_j, k_i
    n_i = (n // k_i) * k_i
    n_j = (n // k_j) * k_j
    R = min(n_i, n_j)
    q = (R // k_i) * k_i * k_i + (R % k_i) ** 2
    T = (R - 1) // k_j
    if T <= 0 or k_j % k_i == 0:
        return float(q)
    g = gcd(k_i, k_j)
    P = k_i // g
    full, rest = divmod(T, P)
    # over one period, a_t runs over 0, g, 2g, ..., (P-1) g once each (closed form)
    s_period = g * k_i * P * (P - 1) / 2.0 - g * g * (P - 1) * P * (2 * P - 1) / 6.0
    t = np.arange(1, rest + 1, dtype=np.int64)
    a = ((t * k_j) % k_i).astype(np.float64)
    s_rest = float(np.sum(a * (k_i - a)))
    return float(q - 2.0 * (full * s_period + s_rest))


@lru_cache(maxsize=64)
def overlap_matrix(n: int, K: tuple[int, ...]) -> np.ndarray:
    """``Q_ij`` for all pairs of scales in ``K`` (vectorised :func:`overlap_q`)."""
    Kv = np.asarray(K, dtype=np.int64)
    I, J = np.triu_indices(Kv.size)
    swap = Kv[I] > Kv[J]
    ki = np.where(swap, Kv[J], Kv[I])
    kj = np.where(swap, Kv[I], Kv[J])
    R = np.minimum((n // ki) * ki, (n // kj) * kj)
    q = ((R // ki) * ki * ki + (R % ki) ** 2).astype(np.float64)
    T = np.maximum((R - 1) // kj, 0)
    g = np.gcd(ki, kj)
    P = ki // g
    full, rest = np.divmod(T, P)
    Pf, gf, kf = P.astype(np.float64), g.astype(np.float64), ki.astype(np.float64)
    s_period = gf * kf * Pf * (Pf - 1) / 2.0 - gf * gf * (Pf - 1) * Pf * (2 * Pf - 1) / 6.0
    # the incomplete period: sum_{t=1}^{rest} a_t (K_i - a_t), a_t = t K_j mod K_i
    pair = np.repeat(np.arange(I.size), rest)
    starts = np.cumsum(rest) - rest
    t = np.arange(pair.size, dtype=np.int64) - starts[pair] + 1
    a = (t * kj[pair]) % ki[pair]
    s_rest = np.bincount(pair, weights=(a * (ki[pair] - a)).astype(np.float64), minlength=I.size)
    Q = np.empty((Kv.size, Kv.size))
    Q[I, J] = Q[J, I] = q - 2.0 * (full * s_period + s_rest)
    Q.setflags(write=False)
    return Q


def variance_ratio_covariance(n: int, K: np.ndarray) -> np.ndarray:
    """Covariance of ``r(K) = K V(K) / sigma^2`` over ``K`` for i.i.d. Gaussian data.

    ``2 Q_ij / (n_i n_j)``, scaled so that the variances are the exact ``2 / (m - 1)``.
    """
    Kt = tuple(int(k) for k in K)
    Kv = np.asarray(Kt, dtype=np.int64)
    nk = ((n // Kv) * Kv).astype(np.float64)
    m = (n // Kv).astype(np.float64)
    C = 2.0 * overlap_matrix(int(n), Kt) / np.outer(nk, nk)
    adj = np.sqrt(m / np.maximum(m - 1, 1))
    return C * np.outer(adj, adj)


@lru_cache(maxsize=64)
def _cov_cached(n: int, K: tuple[int, ...]) -> np.ndarray:
    Kv = np.asarray(K, dtype=np.int64)
    nk = ((n // Kv) * Kv).astype(np.float64)
    m = (n // Kv).astype(np.float64)
    C = 2.0 * overlap_matrix(n, K) / np.outer(nk, nk)
    # finite m: for Gaussian data (m - 1) V / E V ~ chi2_{m-1}, and
    # Var ln(chi2_v / v) = trigamma(v / 2) (vs 2 / m from the expansion above)
    adj = np.sqrt(polygamma(1, np.maximum(m - 1, 1) / 2.0) * m / 2.0)
    C *= np.outer(adj, adj)
    C.setflags(write=False)
    return C


def whitening(C: np.ndarray) -> np.ndarray:
    """``W`` with ``W' W = C^-1`` (inverse Cholesky factor), cached for cached ``C``."""
    key = id(C)
    hit = _WHITEN.get(key)
    if hit is not None and hit[0] is C:
        return hit[1]
    W = solve_triangular(np.linalg.cholesky(C), np.eye(C.shape[0]), lower=True)
    if not C.flags.writeable:  # a cached matrix: remember its whitening
        if len(_WHITEN) > 64:
            _WHITEN.clear()
        _WHITEN[key] = (C, W)
    return W


_WHITEN: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def log_variance_covariance(n: int, K: np.ndarray) -> np.ndarray:
    """Covariance matrix of ``ln V(K)`` over the grid ``K`` for i.i.d. data (delta method)."""
    return _cov_cached(int(n), tuple(int(k) for k in K))


def alpha_standard_error(
    n: int, K: np.ndarray, valid: np.ndarray, inflation: np.ndarray | None = None
) -> float:
    """Standard error of the OLS slope of ``log10 V`` on ``log10 K``.

    Sandwich form ``sqrt(w' C w)`` with the OLS slope weights ``w`` and ``C`` the
    covariance of ``log10 V(K)`` from :func:`log_variance_covariance`, optionally
    multiplied by ``inflation_i inflation_j`` (a per-scale standard-deviation factor
    for correlated data).
    """
    K = np.asarray(K, dtype=np.int64)
    valid = np.asarray(valid, dtype=bool)
    if valid.sum() < 3:
        return float("inf")
    C = log_variance_covariance(n, K)[np.ix_(valid, valid)] / np.log(10.0) ** 2
    if inflation is not None:
        f = np.asarray(inflation, dtype=np.float64)[valid]
        C = C * np.outer(f, f)
    x = np.log10(K[valid].astype(np.float64))
    dx = x - x.mean()
    w = dx / float(dx @ dx)
    return float(np.sqrt(max(float(w @ C @ w), 0.0)))
