"""Detrending before the analysis (spec item 5), so a falling loss curve is
analysed on its fluctuations, not on its trend.

- ``"none"``: the series as given (published behaviour).
- ``"linear"``: subtract the least-squares line ``a + b t``.
- ``"diff"``: first differences ``x[t+1] - x[t]`` (N - 1 values). Note that
  differencing white noise makes it anti-correlated (lag-1 correlation -1/2):
  the i.i.d. reference is then a random walk, not noise around a trend.
- ``int w`` (>= 2): subtract the centred moving average of width ``w``;
  only positions where the whole window fits are kept (N - w + 1 values):
  ``y[j] = x[j + w // 2] - mean(x[j : j + w])``. This is a high-pass filter:
  scales K much above w are suppressed, so choose w well above the K of interest.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Detrend", "check_detrend", "apply_detrend", "detrend_length"]

Detrend = str | int


def check_detrend(detrend: Detrend) -> Detrend:
    """Validate a ``detrend`` argument; return it normalised."""
    if isinstance(detrend, (bool, np.bool_)):
        raise ValueError("detrend must be 'none', 'linear', 'diff' or an int window >= 2")
    if isinstance(detrend, (int, np.integer)):
        if detrend < 2:
            raise ValueError(f"a moving-average detrend window must be >= 2, got {detrend}")
        return int(detrend)
    if detrend in ("none", "linear", "diff"):
        return detrend
    raise ValueError(
        f"detrend must be 'none', 'linear', 'diff' or an int window >= 2, got {detrend!r}"
    )


def detrend_length(n: int, detrend: Detrend) -> int:
    """Number of values left after detrending ``n`` values."""
    if detrend == "diff":
        return max(n - 1, 0)
    if isinstance(detrend, int):
        return max(n - detrend + 1, 0)
    return n


def apply_detrend(x: np.ndarray, detrend: Detrend) -> np.ndarray:
    """Apply ``detrend`` to a 1-D series, or along the last axis of a 2-D array."""
    detrend = check_detrend(detrend)
    x = np.asarray(x, dtype=np.float64)
    if detrend == "none":
        return x
    if detrend == "diff":
        return np.diff(x, axis=-1)
    n = x.shape[-1]
    if detrend == "linear":
        t = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        xm = x.mean(axis=-1, keepdims=True)
        slope = ((x - xm) @ t) / float(t @ t)
        return x - xm - np.multiply.outer(slope, t) if x.ndim > 1 else x - xm - slope * t
    w = detrend
    if n < w:
        raise ValueError(f"moving-average window {w} is longer than the series ({n} values)")
    c = np.zeros(x.shape[:-1] + (n + 1,))
    np.cumsum(x - x.mean(axis=-1, keepdims=True), axis=-1, out=c[..., 1:])
    ma = (c[..., w:] - c[..., :-w]) / w
    centre = x[..., w // 2 : w // 2 + n - w + 1] - x.mean(axis=-1, keepdims=True)
    return centre - ma
