"""Integrated autocorrelation time and the correlation scale, from V(K) alone.

Everything here uses only the variance ratio ``r(K) = K V(K) / var(x)`` on the
scale grid, so the batch and the streaming analyses give identical values.

- ``tau_int`` (spec item 3): the plateau of r(K). For a stationary series
  ``E r(K) = tau - C / K + o(1/K)`` with ``tau = 1 + 2 sum_k rho_k`` and
  ``C = 2 sum_k k rho_k`` (batch-means estimator; Flegal & Jones 2010). We take the
  first grid scale K1 with ``K1 >= 4 max(r(K1), 1)`` (an automatic window in the spirit of
  Sokal 1997), the grid scale K2 nearest to K1/2, and remove the 1/K bias by
  Richardson extrapolation: ``tau = (K1 r1 - K2 r2) / (K1 - K2)``. When no scale
  satisfies the window rule the largest scale is used and the estimate is flagged as
  not converged (then it is only a rough value, usually a lower bound).
- ``K_corr`` (spec item 4): the smallest K at which K V(K) reaches 90 % of its
  plateau. Reading that crossing off the noisy curve drifts with N (noise makes
  the first crossing early). We fit the exponential-correlation family
  ``r(K) = 1 + a (g_phi(K) - 1)``, ``g_phi(K) = (1+phi)/(1-phi) - 2 phi (1-phi^K) /
  (K (1-phi)^2)`` (the exact r(K) of AR(1); ``a`` = fraction of the variance that is
  correlated) to all scales, then solve ``r(K) = 0.9 r(inf)`` on the fitted
  curve. The fit is generalised least squares on ``ln r(K)`` with the i.i.d.
  covariance of :mod:`.covariance` and a free offset (the sample variance is
  noisy too); the correlation length ``-1 / ln phi`` is capped at
  ``K_max / 4`` (a plateau beyond the grid is not identifiable), and when the fit
  does not beat "r constant" by a chi-square gain of 13.8 (2 dof, 0.999) no
  correlation is detected and ``K_corr = 1``. The raw crossing of the measured
  curve at ``0.9 tau_int`` is reported too (``K_corr_empirical``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, least_squares

from .covariance import log_variance_covariance, whitening

__all__ = ["Autocorrelation", "estimate_autocorrelation", "ar1_variance_ratio"]

WINDOW_C = 4.0
PLATEAU_FRACTION = 0.9
#: the model's correlation length -1 / ln(phi) is capped at K_max / MODEL_RANGE:
#: a plateau beyond the largest scale is not identifiable from the data.
MODEL_RANGE = 4.0
#: chi2 (2 dof) gain of the model over "r constant" needed to report K_corr > 1
#: (the 0.999 quantile: about 1 i.i.d. series in 1000 gets a spurious K_corr).
DETECT_CHI2 = 13.82


@dataclass(frozen=True)
class Autocorrelation:
    tau_int: float
    ess: float
    converged: bool
    window_K: int
    K_corr: float
    K_corr_empirical: float
    model_a: float
    model_phi: float
    tau_model: float
    model_chi2_gain: float = float("nan")
    correlation_detected: bool = False


def ar1_variance_ratio(K: np.ndarray, a: float, phi: float) -> np.ndarray:
    """``r(K) = K Var(block mean) / Var(x)`` for ``a`` AR(1)(phi) + ``1-a`` white noise."""
    K = np.asarray(K, dtype=np.float64)
    phi = float(np.clip(phi, -1 + 1e-9, 1 - 1e-9))
    if abs(phi) < 1e-12:
        return np.ones_like(K)
    g = 2 * phi / (1 - phi) - 2 * phi * (1 - phi**K) / (K * (1 - phi) ** 2)
    return 1.0 + a * g


def _tau_window(K: np.ndarray, r: np.ndarray) -> tuple[float, int, bool]:
    ok = np.flatnonzero(WINDOW_C * np.maximum(r, 1.0) <= K)
    converged = bool(ok.size)
    i = int(ok[0]) if converged else len(K) - 1
    k1 = K[i]
    j = int(np.argmin(np.abs(K - k1 / 2.0)))
    if K[j] == k1:
        return float(r[i]), int(k1), converged
    tau = (k1 * r[i] - K[j] * r[j]) / (k1 - K[j])
    return float(tau), int(k1), converged


def _fit_model(
    K: np.ndarray, r: np.ndarray, C: np.ndarray, phi_max: float
) -> tuple[float, float, float]:
    """GLS fit of ``ln r = c + ln(1 + a (g_phi - 1))``; returns (a, phi, chi2 gain over ``ln r = c``).

    A vectorised Gauss-Newton over a grid of phi finds the basin, one
    Levenberg-Marquardt run (analytic Jacobian) refines it.
    """
    W = whitening(C)  # C^-1 = W'W
    lr = np.log(r)
    one = W.sum(axis=1)
    w_lr = W @ lr
    c0 = float(one @ w_lr) / float(one @ one)
    cost0 = float(np.sum((w_lr - c0 * one) ** 2))
    Kf = K.astype(np.float64)

    # 1) grid over phi (positive: correlation lengths 0.3 .. K_max / MODEL_RANGE)
    lam_max = -1.0 / np.log(phi_max)
    phis = np.concatenate(
        [-np.array([0.9, 0.7, 0.5, 0.3, 0.1]), np.exp(-1.0 / np.geomspace(0.3, lam_max, 40))]
    )
    H = np.stack([ar1_variance_ratio(Kf, 1.0, ph) - 1.0 for ph in phis])  # (G, p)
    a = np.full(phis.size, 0.1)
    c = np.full(phis.size, c0)
    a_hi = np.where(phis < 0, 0.999 / np.maximum(-H.min(axis=1), 1e-12), np.inf)
    for _ in range(12):
        rm = 1.0 + a[:, None] * H
        res = w_lr[None, :] - (c[:, None] + np.log(rm)) @ W.T
        J_a = (H / rm) @ W.T
        # 2x2 normal equations per grid point
        s11 = one @ one
        s12 = J_a @ one
        s22 = np.einsum("ij,ij->i", J_a, J_a)
        g1 = res @ one
        g2 = np.einsum("ij,ij->i", J_a, res)
        det = s11 * s22 - s12 * s12
        with np.errstate(divide="ignore", invalid="ignore"):
            dc = np.where(det > 0, (s22 * g1 - s12 * g2) / det, g1 / s11)
            da = np.where(det > 0, (s11 * g2 - s12 * g1) / det, 0.0)
        c = c + dc
        a = np.clip(a + da, 0.0, a_hi)
    rm = 1.0 + a[:, None] * H
    costs = np.sum((w_lr[None, :] - (c[:, None] + np.log(rm)) @ W.T) ** 2, axis=1)
    if not np.isfinite(costs).any():  # pragma: no cover - defensive
        return 0.0, 0.0, 0.0
    i = int(np.nanargmin(costs))

    # 2) refine (c, log a, atanh(phi / phi_max)) with Levenberg-Marquardt
    def model(p: np.ndarray) -> np.ndarray:
        rm = ar1_variance_ratio(Kf, np.exp(p[1]), phi_max * np.tanh(p[2]))
        return p[0] + np.log(np.maximum(rm, 1e-12))

    def resid(p: np.ndarray) -> np.ndarray:
        return w_lr - W @ model(p)

    def jac(p: np.ndarray) -> np.ndarray:
        cols = [np.ones_like(Kf)]
        for k in (1, 2):
            h = 1e-6
            up, dn = p.copy(), p.copy()
            up[k] += h
            dn[k] -= h
            cols.append((model(up) - model(dn)) / (2 * h))
        return -(W @ np.stack(cols, axis=1))

    x0 = np.array(
        [c[i], np.log(max(a[i], 1e-8)), np.arctanh(np.clip(phis[i] / phi_max, -0.9999, 0.9999))]
    )
    best_cost = float(costs[i])
    a_best, phi_best = float(a[i]), float(phis[i])
    if cost0 - best_cost < DETECT_CHI2 / 2:  # nothing to refine: no correlation
        return a_best, phi_best, cost0 - best_cost
    try:
        sol = least_squares(resid, x0, jac=jac, method="lm", max_nfev=60)
        if 2.0 * float(sol.cost) <= best_cost:
            best_cost = 2.0 * float(sol.cost)
            a_best, phi_best = float(np.exp(sol.x[1])), float(phi_max * np.tanh(sol.x[2]))
    except (ValueError, np.linalg.LinAlgError):  # pragma: no cover - defensive
        pass
    return a_best, phi_best, cost0 - best_cost


def _model_crossing(a: float, phi: float, k_cap: float) -> float:
    plateau = float(ar1_variance_ratio(np.array([1e300]), a, phi)[0]) if phi < 1 else np.inf
    target = PLATEAU_FRACTION * plateau
    f = lambda k: float(ar1_variance_ratio(np.array([k]), a, phi)[0]) - target  # noqa: E731
    if f(1.0) >= 0:
        return 1.0
    if f(k_cap) < 0:
        return float(k_cap)
    return float(brentq(f, 1.0, k_cap, xtol=1e-6))


def _empirical_crossing(K: np.ndarray, r: np.ndarray, level: float) -> float:
    above = np.flatnonzero(r >= level)
    if above.size == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(K[0])
    lk = np.log(K.astype(float))
    t = (level - r[i - 1]) / (r[i] - r[i - 1])
    return float(np.exp(lk[i - 1] + t * (lk[i] - lk[i - 1])))


def estimate_autocorrelation(K: np.ndarray, V: np.ndarray, var_x: float, n: int) -> Autocorrelation:
    """tau_int, ess and K_corr from V(K) on the grid, ``var_x`` and the length ``n``."""
    K = np.asarray(K, dtype=np.int64)
    V = np.asarray(V, dtype=np.float64)
    ok = np.isfinite(V) & (V > 0)
    if not (np.isfinite(var_x) and var_x > 0) or ok.sum() < 3:
        nan = float("nan")
        return Autocorrelation(nan, nan, False, 0, nan, nan, nan, nan, nan)
    Kv = K[ok]
    r = Kv * V[ok] / var_x
    tau, k_win, converged = _tau_window(Kv, r)
    tau = max(tau, 0.0)
    ess = n / tau if tau > 0 else float("inf")
    C = log_variance_covariance(n, K)
    if not ok.all():
        C = C[np.ix_(ok, ok)]
    phi_max = float(np.exp(-MODEL_RANGE / Kv[-1]))
    a, phi, gain = _fit_model(Kv, r, C, phi_max)
    detected = gain > DETECT_CHI2
    k_cap = float(Kv[-1]) * 10.0
    k_corr = _model_crossing(a, phi, k_cap) if detected else 1.0
    tau_model = float(1.0 + a * 2 * phi / (1 - phi)) if phi < 1 else float("inf")
    k_emp = _empirical_crossing(Kv, r, PLATEAU_FRACTION * tau)
    return Autocorrelation(
        tau_int=float(tau),
        ess=float(ess),
        converged=converged,
        window_K=k_win,
        K_corr=k_corr,
        K_corr_empirical=k_emp,
        model_a=a,
        model_phi=phi,
        tau_model=tau_model,
        model_chi2_gain=float(gain),
        correlation_detected=bool(detected),
    )
