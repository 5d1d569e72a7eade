"""Streaming susceptibility: constant memory, result equal to the batch analysis.

For every integer scale K in ``[max(2, K_min), max_scale]`` (every K that any grid
up to ``max_scale`` can contain) we keep the Welford statistics (count, mean, M2)
of the completed block means; a block of scale K completes at every multiple of K.
Block sums are differences of a running prefix sum ``P(t) = sum_{s<=t} (y_s - c)``
of which only the last ``max_scale + 1`` values are kept; at every flush they are
re-based to the current position and re-centred on the level ``c`` of the incoming
chunk, so their size (and the rounding error of a block sum) stays bounded by
``max_scale`` times the local spread of the values, whatever N is and however the
series drifts. A chunk of L
values costs ``O(L * sum_K 1/K + max_scale)`` (harmonic sum ~ ln(max_scale)),
vectorised; single floats are buffered and flushed in chunks of
:data:`FLUSH_EVERY`. Memory is ``O(max_scale)``, independent of N.

Equality with the batch analysis (up to floating point): after N values,
``result()`` has the same ``K_values``, ``V_values``, ``chi_values``, ``K_c``,
``kappa``, ``alpha``, ``alpha_se``, ``tau_int``, ``ess`` and ``K_corr`` as
``analyze(values, ...)`` with the same parameters, as long as the batch grid
fits in ``max_scale`` (``N // min_batches <= max_scale``); beyond that the grid
is capped at ``max_scale``, i.e. it equals ``analyze(values, K_max=max_scale, ...)``
(``diagnostics["K_max_capped"]`` says so).

``p_iid`` and the kappa null come from the i.i.d. Gaussian reference for (N,
grid) (:mod:`.gaussian_null`, ``null="gaussian"`` in :func:`.analyze`), which
needs no raw data: it is exact for Gaussian data and asymptotically distribution
free (see :mod:`.null`); the batch analysis of short series uses a permutation
null instead, so ``p_iid`` may differ from it by Monte Carlo and
small-sample-shape effects (``diagnostics["null_method"] = "gaussian"``).

Detrending: ``"none"``, ``"diff"`` and an int moving-average window (the output lags
the input by ``w // 2`` values and the first and last ``w // 2`` values are dropped,
exactly as in the batch version) are supported; ``"linear"`` needs the whole series
and raises ``ValueError``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .curve import check_scale_range, scale_grid
from .detrend import Detrend, check_detrend
from .gaussian_null import gaussian_null
from .inputs import MIN_VALUES, as_array
from .result import SusceptibilityResult
from .susceptibility import assemble_result

__all__ = ["StreamingSusceptibility", "FLUSH_EVERY"]

#: single values are buffered and processed in chunks of this many.
FLUSH_EVERY = 512
#: large chunks are processed in pieces of this many values (bounds temporaries).
_PIECE = 1 << 15


class StreamingSusceptibility:
    """Online version of :func:`~wandb_batchsize.analysis.analyze`.

    >>> s = StreamingSusceptibility()
    >>> for loss in np.random.default_rng(0).standard_normal(1000):
    ...     s.update(loss)
    >>> s.n
    1000
    """

    def __init__(
        self,
        K_min: int = 2,
        K_max: int | None = None,
        n_points: int = 60,
        min_batches: int = 10,
        *,
        max_scale: int = 10_000,
        detrend: Detrend = "none",
        n_permutations: int = 199,
        seed: int | None = 0,
        nan_policy: str = "omit",
    ) -> None:
        if detrend == "linear":
            raise ValueError(
                "detrend='linear' needs the whole series and cannot be streamed exactly; "
                "use detrend='diff', an int moving-average window, or the batch analyze()"
            )
        self._detrend = check_detrend(detrend)
        check_scale_range(K_min, K_max)
        k_lo = max(2, int(K_min))
        if int(max_scale) <= k_lo:
            raise ValueError(f"max_scale must exceed K_min={k_lo}, got {max_scale}")
        if int(n_points) < 2 or int(min_batches) < 2:
            raise ValueError("n_points and min_batches must be >= 2")
        if int(n_permutations) < 0:
            raise ValueError(f"n_permutations must be >= 0, got {n_permutations}")
        if nan_policy not in ("omit", "raise"):
            raise ValueError(f"nan_policy must be 'omit' or 'raise', got {nan_policy!r}")
        self.K_min, self.K_max = int(K_min), None if K_max is None else int(K_max)
        self.n_points, self.min_batches = int(n_points), int(min_batches)
        self.max_scale = int(max_scale)
        self.n_permutations, self.seed, self.nan_policy = int(n_permutations), seed, nan_policy
        self._ks = np.arange(k_lo, self.max_scale + 1, dtype=np.int64)
        size = self._ks.size
        self._cnt = np.zeros(size, dtype=np.int64)
        self._mean = np.zeros(size)
        self._m2 = np.zeros(size)
        self._tail = np.zeros(1)  # P(max(0, n - max_scale) .. n), relative to P(n)
        self._shift: float | None = None
        self._n = 0  # analysed values (after detrend)
        self._y_mean = 0.0  # Welford over analysed values (shifted)
        self._y_m2 = 0.0
        self._n_seen = 0  # finite values received
        self._n_dropped = 0
        self._pending: list[float] = []
        self._last_x: float | None = None  # detrend="diff"
        self._window: np.ndarray = np.empty(0)  # detrend=int: last w - 1 raw values

    # ------------------------------------------------------------------ input
    def update(self, x: Any) -> StreamingSusceptibility:
        """Add one value or a 1-D chunk of values, e.g. a tensor (returns self)."""
        if isinstance(x, (float, int)) and not isinstance(x, bool):
            v = float(x)
            if math.isfinite(v):
                self._pending.append(v)
                self._n_seen += 1
                if len(self._pending) >= FLUSH_EVERY:
                    self._flush()
            else:
                self._reject(1, 0)
            return self
        arr = np.asarray(as_array(x), dtype=np.float64)
        if arr.ndim > 1:
            raise ValueError(f"update() takes a float or a 1-D chunk, got shape {arr.shape}")
        arr = arr.reshape(-1)
        finite = np.isfinite(arr)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            self._reject(int(arr.size - finite.sum()), self._n_seen + bad)
            arr = arr[finite]
        self._flush()
        self._n_seen += arr.size
        for start in range(0, arr.size, _PIECE):
            self._ingest_raw(arr[start : start + _PIECE])
        return self

    def _reject(self, count: int, index: int) -> None:
        if self.nan_policy == "raise":
            raise ValueError(
                f"non-finite value at position {index} of the stream; "
                "drop it or use nan_policy='omit'"
            )
        self._n_dropped += count

    @property
    def n(self) -> int:
        """Number of finite values received so far."""
        return self._n_seen

    @property
    def n_dropped(self) -> int:
        """Number of non-finite values dropped so far."""
        return self._n_dropped

    # --------------------------------------------------------------- internals
    def _flush(self) -> None:
        if self._pending:
            arr = np.array(self._pending, dtype=np.float64)
            self._pending = []
            self._ingest_raw(arr)

    def _ingest_raw(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        d = self._detrend
        if d == "diff":
            prev = np.array([] if self._last_x is None else [self._last_x])
            self._last_x = float(x[-1])
            y = np.diff(np.concatenate([prev, x]))
        elif isinstance(d, int):
            ext = np.concatenate([self._window, x])
            self._window = ext[-(d - 1) :].copy()
            if ext.size < d:
                return
            ref = ext[0]
            c = np.zeros(ext.size + 1)
            np.cumsum(ext - ref, out=c[1:])
            ma = (c[d:] - c[:-d]) / d
            y = (ext[d // 2 : d // 2 + ext.size - d + 1] - ref) - ma
        else:
            y = x
        if y.size:
            self._ingest(y)

    def _ingest(self, y: np.ndarray) -> None:
        self._reshift(float(y[0]))
        z = y - self._shift
        L = z.size
        n0, n1 = self._n, self._n + z.size
        # Welford / Chan merge for var(y)
        cm = float(z.mean())
        cm2 = float(((z - cm) ** 2).sum())
        delta = cm - self._y_mean
        self._y_mean += delta * L / n1
        self._y_m2 += cm2 + delta * delta * n0 * L / n1

        tail = self._tail
        Q = np.concatenate([tail - tail[-1], np.cumsum(z)])
        base = n0 - (tail.size - 1)  # time index of Q[0]
        ks = self._ks
        new = n1 // ks - n0 // ks
        due = np.flatnonzero(new)
        if due.size:
            cnt_new = new[due]
            kd = ks[due]
            first = (n0 // kd + 1) * kd
            total = int(cnt_new.sum())
            grp = np.repeat(np.arange(due.size), cnt_new)
            starts = np.cumsum(cnt_new) - cnt_new
            j = np.arange(total) - starts[grp]
            kr = kd[grp]
            b = first[grp] + j * kr
            bm = (Q[b - base] - Q[b - kr - base]) / kr
            g_mean = np.bincount(grp, weights=bm, minlength=due.size) / cnt_new
            dev = bm - g_mean[grp]
            g_m2 = np.bincount(grp, weights=dev * dev, minlength=due.size)
            c0 = self._cnt[due]
            tot = c0 + cnt_new
            dm = g_mean - self._mean[due]
            self._mean[due] += dm * cnt_new / tot
            self._m2[due] += g_m2 + dm * dm * c0 * cnt_new / tot
            self._cnt[due] = tot
        keep = min(n1, self.max_scale) + 1
        self._tail = Q[-keep:].copy()
        self._n = n1

    def _reshift(self, new: float) -> None:
        """Re-centre the stored state on ``new`` (the level of the incoming values).

        Keeps the prefix sums small when the series drifts (a falling loss): the tail
        ``P(t) - P(n)`` becomes ``P(t) - P(n) - delta (t - n)``, the block means and
        the running mean move by ``-delta``; the M2 sums do not change.
        """
        if self._shift is None:
            self._shift = new
            return
        delta = new - self._shift
        if delta == 0.0:
            return
        self._shift = new
        lag = np.arange(1 - self._tail.size, 1, dtype=np.float64)  # t - n
        self._tail = self._tail - delta * lag
        self._mean -= delta
        self._y_mean -= delta

    # ------------------------------------------------------------------ output
    def _grid(self) -> tuple[np.ndarray, bool]:
        n = self._n
        cap = n // self.min_batches
        k_hi = cap if self.K_max is None else min(self.K_max, cap)
        capped = k_hi > self.max_scale
        K_max = min(k_hi, self.max_scale) if capped else self.K_max
        grid = scale_grid(n, self.K_min, K_max, self.n_points, self.min_batches)
        if grid[-1] > self.max_scale:
            raise ValueError(
                f"the grid for {n} values needs K up to {grid[-1]} > max_scale="
                f"{self.max_scale}; raise max_scale"
            )
        return grid, capped

    def variances(self) -> tuple[np.ndarray, np.ndarray]:
        """``(K, V(K))`` on the current grid (cheap: no null, no fits)."""
        self._flush()
        K, _ = self._grid()
        idx = K - self._ks[0]
        cnt = self._cnt[idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            V = np.where(cnt >= 2, self._m2[idx] / (cnt - 1), np.nan)
        return K, np.maximum(V, 0.0)

    def result(self) -> SusceptibilityResult:
        """The analysis of everything received so far (see module docstring)."""
        self._flush()
        n = self._n
        if n < MIN_VALUES:
            raise ValueError(
                f"need at least {MIN_VALUES} finite values, got {n}"
                + (f" after detrend={self._detrend!r}" if self._detrend != "none" else "")
                + "; keep training and call result() later"
            )
        K, capped = self._grid()
        _, V = self.variances()
        var1 = self._y_m2 / (n - 1)
        B = self.n_permutations
        null_fn = None
        if B > 0 and var1 > 0:
            null_fn = lambda T: gaussian_null(n, K, T, B, self.seed, self._detrend)  # noqa: E731
        diagnostics = {
            "n_input": self._n_seen + self._n_dropped,
            "n_dropped": self._n_dropped,
            "n_finite": self._n_seen,
            "n_used": n,
            "detrend": self._detrend,
            "K_min": self.K_min,
            "K_max": self.K_max,
            "n_points": self.n_points,
            "min_batches": self.min_batches,
            "n_permutations": B,
            "seed": self.seed,
            "var_x": var1,
            "source": "streaming",
            "exactness": (
                "curve, alpha_se, tau_int, ess, K_corr equal the batch analysis; p_iid and "
                "the kappa null come from the i.i.d. Gaussian reference for (N, grid)"
            ),
            "max_scale": self.max_scale,
            "K_max_capped": capped,
        }
        return assemble_result(K, V, var1, n, null_fn=null_fn, diagnostics=diagnostics)
