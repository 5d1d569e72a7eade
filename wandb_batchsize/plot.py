"""Matplotlib figures of the analysis (needs the ``plot`` extra).

Figures are built on ``matplotlib.figure.Figure`` directly, not on pyplot, so
they hold no global state and work headless; save them with ``fig.savefig``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

KC_COLOR = "firebrick"
KCORR_COLOR = "darkorange"


def _valid(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    return x[keep], y[keep]


def _power_law_fit(K: np.ndarray, V: np.ndarray) -> tuple[float, float] | None:
    """OLS of log10 V on log10 K: (slope alpha, intercept)."""
    K, V = _valid(K, V)
    if len(K) < 2:
        return None
    slope, intercept = np.polyfit(np.log10(K), np.log10(V), 1)
    return float(slope), float(intercept)


def _mark_scale(ax: Any, value: float, color: str, label: str) -> None:
    if value is not None and np.isfinite(value) and value > 0:
        ax.axvline(value, color=color, linestyle="--", linewidth=1.2, label=label)


def _draw_variance(
    ax: Any, result: Any, label: str | None = None, color: str | None = None
) -> None:
    K, V = _valid(result.K_values, result.V_values)
    line = ax.loglog(K, V, "o-", markersize=3, label=label or "V(K)", color=color)[0]
    fit = _power_law_fit(result.K_values, result.V_values)
    if fit is not None and label is None:
        slope, intercept = fit
        ax.loglog(K, 10**intercept * K**slope, ":", color="gray", label=f"fit K^{slope:.2f}")
    if label is not None:
        ax.axvline(result.K_c, color=line.get_color(), linestyle="--", linewidth=1)


def plot_susceptibility(result: Any, title: str | None = None) -> Figure:
    """V(K) on log-log axes with the power-law fit and K_c; chi(K) with K_c and kappa."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_v, ax_chi = fig.subplots(1, 2)
    _draw_variance(ax_v, result)
    _mark_scale(ax_v, result.K_c, KC_COLOR, f"K_c = {result.K_c:.0f}")
    _mark_scale(ax_v, getattr(result, "K_corr", None), KCORR_COLOR, f"K_corr = {result.K_corr:.0f}")
    ax_v.set_xlabel("K (block size, steps)")
    ax_v.set_ylabel("V(K): variance of block means")
    ax_v.set_title(f"alpha = {result.alpha:.3f} ± {result.alpha_se:.3f} ({result.regime})")
    ax_v.legend(fontsize=8)

    K = np.asarray(result.K_values, float)
    chi = np.asarray(result.chi_values, float)
    ax_chi.semilogx(K, chi, "o-", markersize=3, label="chi(K)")
    _mark_scale(ax_chi, result.K_c, KC_COLOR, f"K_c = {result.K_c:.0f}")
    verdict = "significant" if result.is_significant else "not significant"
    ax_chi.set_title(f"kappa = {result.kappa:.2f}, p_iid = {result.p_iid:.3g} ({verdict})")
    ax_chi.set_xlabel("K (block size, steps)")
    ax_chi.set_ylabel("chi(K) = |d log V / d log K|")
    ax_chi.legend(fontsize=8)
    fig.suptitle(title or f"Batch-size susceptibility (N = {result.n})")
    return fig


def plot_comparison(results: Mapping[str, Any], title: str | None = None) -> Figure:
    """Several susceptibility results on shared axes, one colour per label."""
    if not results:
        raise ValueError("plot_comparison needs at least one result")
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_v, ax_chi = fig.subplots(1, 2)
    for label, result in results.items():
        color = ax_v._get_lines.get_next_color()
        _draw_variance(ax_v, result, label=f"{label} (K_c = {result.K_c:.0f})", color=color)
        ax_chi.semilogx(
            result.K_values, result.chi_values, "o-", markersize=3, color=color, label=label
        )
        ax_chi.axvline(result.K_c, color=color, linestyle="--", linewidth=1)
    ax_v.set_xlabel("K (block size, steps)")
    ax_v.set_ylabel("V(K)")
    ax_chi.set_xlabel("K (block size, steps)")
    ax_chi.set_ylabel("chi(K)")
    ax_v.legend(fontsize=8)
    ax_chi.legend(fontsize=8)
    fig.suptitle(title or "Batch-size susceptibility: comparison")
    return fig


def plot_sweep(result: Any, title: str | None = None) -> Figure:
    """Sweep mode: the metric against batch size (with standard errors) and chi(B)."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_m, ax_chi = fig.subplots(1, 2)
    B = np.asarray(result.batch_sizes, float)
    mean = np.asarray(result.metric_mean, float)
    se = np.nan_to_num(np.asarray(result.metric_se, float), nan=0.0)
    ax_m.errorbar(B, mean, yerr=se, fmt="o-", capsize=3, label="metric (mean ± se)")
    ax_m.set_xscale("log", base=2)
    _mark_scale(ax_m, result.K_c, KC_COLOR, f"K_c = {result.K_c:.0f}")
    interval = getattr(result, "K_c_interval", None)
    if interval is not None and all(np.isfinite(interval)):
        ax_m.axvspan(*interval, color=KC_COLOR, alpha=0.1, label="K_c interval")
    b_crit = getattr(result, "B_crit", None)
    if b_crit is not None and np.isfinite(b_crit):
        _mark_scale(ax_m, b_crit, KCORR_COLOR, f"B_crit = {b_crit:.0f}")
    ax_m.set_xlabel("batch size")
    ax_m.set_ylabel("metric")
    ax_m.legend(fontsize=8)
    ax_chi.semilogx(B, result.chi_values, "o-", base=2, label="chi(B) = |dM / d log10 B|")
    _mark_scale(ax_chi, result.K_c, KC_COLOR, f"K_c = {result.K_c:.0f}")
    ax_chi.set_xlabel("batch size")
    ax_chi.set_ylabel("chi(B)")
    ax_chi.set_title(f"kappa = {result.kappa:.2f}, alpha = {result.alpha:.3f}")
    ax_chi.legend(fontsize=8)
    fig.suptitle(title or f"Batch-size sweep ({result.n_runs} runs)")
    return fig
