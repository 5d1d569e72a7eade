"""The i.i.d. Gaussian reference distribution, from (N, grid) alone.

Used by the streaming analysis (which keeps no raw data) and by the batch
analysis for long series, where shuffling N values B times is the bottleneck.

How it is simulated (``B`` replicates of V(K) on the grid, plus ``var(x)``):

- Series of at most :data:`FULL_MAX_N` values: i.i.d. N(0, 1) series, analysed
  exactly like the data (exact for Gaussian data).
- Longer series, scales with few blocks (``N // K < M_GAUSS``): exact. For
  i.i.d. Gaussian data the prefix sums at the block boundaries of those scales
  form a Gaussian random walk, so we draw it only at the union of their
  boundaries (~``7 M_GAUSS`` points whatever N is) and read the block sums off it.
- Longer series, scales with many blocks (``N // K >= M_GAUSS``, and K = 1 for
  ``var(x)``): ``r(K) = K V(K)`` is then Gaussian to within ``sqrt(8 / M_GAUSS)``
  skewness; we draw it from its exact covariance ``2 Q_ij / (n_i n_j)``
  (:mod:`.covariance`) conditionally on the exactly simulated scales (Gaussian
  conditioning: ``r_S = 1 + A (r_L - 1) + e``, ``A = S_SL S_LL^-1``,
  ``e ~ N(0, S_SS - A S_LS)``).

Cost: ``O(B * M_GAUSS)`` instead of ``O(B * N)``. Calibration is checked in the
test suite against full simulations and on i.i.d. data. Detrending: ``"diff"``
analyses increments (i.i.d. under the null), ``"linear"`` is treated as
``"none"`` (the refit changes V(K) by O(1/N)); a moving-average window always uses
full simulation with the same (circular) filter. Results are cached per
``(N, grid, B, seed, detrend)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .covariance import variance_ratio_covariance
from .curve import block_variances_many, curve_stats
from .detrend import Detrend
from .null import NullSample, _circular_highpass, iid_statistic, p_value

__all__ = ["gaussian_null", "FULL_MAX_N", "M_GAUSS"]

#: series up to this length are simulated in full.
FULL_MAX_N = 5_000
#: scales with at least this many blocks are drawn from their Gaussian limit.
M_GAUSS = 400

_BATCH_VALUES = 2_000_000


def _stats(K: np.ndarray, V: np.ndarray, var1: np.ndarray, n: int):
    cs = curve_stats(K, V)
    return iid_statistic(K, V, var1, n), cs.kappa, cs.alpha


def _simulate_full(n: int, K: np.ndarray, B: int, rng: np.random.Generator, detrend: Detrend):
    batch = int(max(1, min(B, _BATCH_VALUES // max(n, 1))))
    out: list[tuple[np.ndarray, ...]] = []
    done = 0
    while done < B:
        rows = min(batch, B - done)
        Y = rng.standard_normal((rows, n))
        if detrend == "linear":
            t = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
            Y -= Y.mean(axis=1, keepdims=True)
            Y -= np.outer((Y @ t) / float(t @ t), t)
        elif isinstance(detrend, int):
            Y = _circular_highpass(Y, detrend)
        V = block_variances_many(Y, K)
        out.append(_stats(K, V, Y.var(axis=1, ddof=1), n))
        done += rows
    return tuple(np.concatenate([o[i] for o in out]) for i in range(3))


@lru_cache(maxsize=32)
def _hybrid_plan(n: int, K: tuple[int, ...], m_gauss: int = M_GAUSS):
    """Boundaries, gather indices and conditioning matrices for :func:`_simulate_hybrid`."""
    Kv = np.asarray(K, dtype=np.int64)
    m = n // Kv
    large = m < m_gauss
    small_K = np.concatenate([[1], Kv[~large]])
    large_K = Kv[large]
    ends = [np.arange(mk + 1) * k for k, mk in zip(large_K, m[large], strict=True)]
    bounds = np.unique(np.concatenate(ends))
    gaps = np.diff(bounds).astype(np.float64)
    gather = [np.searchsorted(bounds, e) for e in ends]

    S = variance_ratio_covariance(n, np.concatenate([[1], Kv]))
    # reorder [1, grid...] as [1, small..., large...]
    order = np.concatenate([[0], 1 + np.flatnonzero(~large), 1 + np.flatnonzero(large)])
    S = S[np.ix_(order, order)]
    ns = small_K.size
    S_ss, S_sl, S_ll = S[:ns, :ns], S[:ns, ns:], S[ns:, ns:]
    A = np.linalg.solve(S_ll, S_sl.T).T
    R = S_ss - A @ S_sl.T
    R = (R + R.T) / 2
    w, U = np.linalg.eigh(R)
    L = U * np.sqrt(np.clip(w, 0.0, None))
    return small_K, large_K, large, gaps, gather, A, L


def _simulate_hybrid(
    n: int, K: np.ndarray, B: int, rng: np.random.Generator, m_gauss: int = M_GAUSS
):
    plan = _hybrid_plan(n, tuple(int(k) for k in K), m_gauss)
    small_K, large_K, large, gaps, gather, A, L = plan
    steps = rng.standard_normal((B, gaps.size)) * np.sqrt(gaps)
    walk = np.zeros((B, gaps.size + 1))
    np.cumsum(steps, axis=1, out=walk[:, 1:])
    r_large = np.empty((B, large_K.size))
    for i, (k, idx) in enumerate(zip(large_K, gather, strict=True)):
        ends = walk[:, idx]
        bs = ends[:, 1:] - ends[:, :-1]
        m = bs.shape[1]
        total = ends[:, -1] - ends[:, 0]
        ss = np.einsum("ij,ij->i", bs, bs) - total * total / m
        r_large[:, i] = ss / ((m - 1) * float(k))
    r_small = 1.0 + (r_large - 1.0) @ A.T + rng.standard_normal((B, small_K.size)) @ L.T
    V = np.empty((B, K.size))
    V[:, large] = r_large / large_K
    V[:, ~large] = r_small[:, 1:] / small_K[1:]
    return _stats(K, V, r_small[:, 0], n)


def _simulate(n: int, K: tuple[int, ...], B: int, seed: int | None, detrend: Detrend):
    if seed is None:  # fresh randomness each call: nothing to cache
        return _simulate_uncached(n, K, B, None, detrend)
    return _simulate_cached(n, K, B, seed, detrend)


def _simulate_uncached(n: int, K: tuple[int, ...], B: int, seed: int | None, detrend: Detrend):
    rng = np.random.default_rng(None if seed is None else [seed, 0x6A55])
    Kv = np.asarray(K, dtype=np.int64)
    if n <= FULL_MAX_N or isinstance(detrend, int) or not (n // Kv >= M_GAUSS).any():
        out = _simulate_full(n, Kv, B, rng, detrend)
    else:
        out = _simulate_hybrid(n, Kv, B, rng)
    for a in out:
        a.setflags(write=False)
    return out


_simulate_cached = lru_cache(maxsize=16)(_simulate_uncached)


def gaussian_null(
    n: int,
    K: np.ndarray,
    observed_T: float,
    n_replicates: int,
    seed: int | None,
    detrend: Detrend = "none",
) -> NullSample:
    """Null sample of (T, kappa, alpha) for i.i.d. Gaussian series of length ``n``."""
    T, kappa, alpha = _simulate(int(n), tuple(int(k) for k in K), int(n_replicates), seed, detrend)
    return NullSample(
        T=T,
        kappa=kappa,
        alpha=alpha,
        p_value=p_value(T, observed_T),
        method="gaussian",
        n_drawn=int(n_replicates),
        stopped_early=False,
    )
