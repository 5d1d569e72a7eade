"""Goodput: training progress per second, throughput times statistical efficiency.

Pollux (Qiao et al., OSDI 2021, "Pollux: Co-adaptive Cluster Scheduling for
Goodput-Optimized Deep Learning") scores a batch size ``B`` by

    goodput(B) = throughput(B) * efficiency(B)
               = B / t(B)  *  (phi + B0) / (phi + B)

with ``t(B)`` the seconds per optimizer step, ``phi`` the gradient noise scale
and ``B0`` a reference batch size (efficiency 1 there). The efficiency is the
McCandlish et al. (2018) trade-off ``E = E_min (1 + B / B_noise)`` expressed
relative to ``B0``: a batch far beyond the noise scale needs proportionally
more examples for the same progress, so a larger batch that merely *fits* is
not chosen unless its throughput gain pays for that.

Gradient accumulation does not raise a single device's throughput (k
micro-batches take k times as long), so an accumulated batch never has a
higher goodput than its micro-batch: goodput is maximised over batch sizes the
device can run directly.

numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["GoodputChoice", "best_goodput", "goodput", "step_times_from_probes"]


def goodput(
    batch_size: Any, step_seconds: Any, noise_scale: float, reference_batch: float
) -> np.ndarray:
    """``B / t(B) * (phi + B0) / (phi + B)`` (examples per second, efficiency-weighted).

    ``noise_scale`` (``phi``) of ``inf`` means no statistical penalty (pure
    throughput); it must be positive.
    """
    B = np.asarray(batch_size, dtype=float)
    t = np.asarray(step_seconds, dtype=float)
    if np.any(B <= 0) or np.any(t <= 0):
        raise ValueError("batch sizes and step times must be positive")
    if not noise_scale > 0:
        raise ValueError(f"noise scale must be positive, got {noise_scale}")
    if not reference_batch > 0:
        raise ValueError(f"reference batch must be positive, got {reference_batch}")
    if math.isinf(noise_scale):
        return B / t
    return B / t * (noise_scale + reference_batch) / (noise_scale + B)


def step_times_from_probes(probes: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(batch_sizes, seconds)`` of the probes that fitted and were timed.

    Probes are duck-typed: anything with ``batch_size``, ``fitted`` and
    ``seconds`` (a memory search's ``probes``), or ``(batch_size, seconds)``
    pairs. A size probed more than once keeps its fastest time (the others
    carry warm-up or allocator noise).
    """
    best: dict[int, float] = {}
    for probe in probes:
        if isinstance(probe, tuple | list):
            batch, seconds, fitted = probe[0], probe[1], True
        else:
            batch = getattr(probe, "batch_size", None)
            seconds = getattr(probe, "seconds", None)
            fitted = bool(getattr(probe, "fitted", True))
        if batch is None or seconds is None or not fitted:
            continue
        seconds = float(seconds)
        if not (math.isfinite(seconds) and seconds > 0) or int(batch) < 1:
            continue
        best[int(batch)] = min(seconds, best.get(int(batch), math.inf))
    sizes = np.array(sorted(best), dtype=float)
    return sizes, np.array([best[int(b)] for b in sizes], dtype=float)


@dataclass(frozen=True)
class GoodputChoice:
    """The batch size with the highest goodput, and the table it was chosen from.

    ``table`` rows are ``(batch_size, seconds_per_step, throughput, efficiency,
    goodput)``; seconds between measured sizes are linearly interpolated.
    """

    batch_size: int
    goodput: float
    throughput: float
    efficiency: float
    noise_scale: float
    reference_batch: float
    table: tuple[tuple[float, float, float, float, float], ...]
    measured_sizes: tuple[int, ...]

    @property
    def gain_over_largest(self) -> float:
        """Goodput of the choice over that of the largest candidate (>= 1)."""
        last = self.table[-1][4]
        return self.goodput / last if last > 0 else math.inf


def best_goodput(
    probes: Iterable[Any],
    noise_scale: float,
    *,
    reference_batch: float | None = None,
    ceiling: int | None = None,
    multiple_of: int = 8,
) -> GoodputChoice:
    """Maximise goodput over batch sizes between the smallest timed probe and ``ceiling``.

    Candidates are the timed sizes and every multiple of ``multiple_of`` in
    between (step times interpolated linearly between measurements, never
    extrapolated). ``reference_batch`` defaults to the smallest timed size.
    Needs at least one fitted probe with a positive time.
    """
    sizes, seconds = step_times_from_probes(probes)
    if ceiling is not None:
        keep = sizes <= ceiling
        sizes, seconds = sizes[keep], seconds[keep]
    if sizes.size == 0:
        raise ValueError(
            "no timed probe that fitted"
            + (f" at or below the ceiling {ceiling}" if ceiling is not None else "")
            + ": goodput needs step times (probe.seconds) for at least one batch size"
        )
    lo, hi = int(sizes[0]), int(sizes[-1])
    step = max(int(multiple_of), 1)
    grid = np.arange(math.ceil(lo / step) * step, hi + 1, step, dtype=float)
    candidates = np.unique(np.concatenate([sizes, grid]))
    times = np.interp(candidates, sizes, seconds)
    B0 = float(reference_batch) if reference_batch is not None else float(lo)
    thr = candidates / times
    eff = (
        np.ones_like(candidates)
        if math.isinf(noise_scale)
        else (noise_scale + B0) / (noise_scale + candidates)
    )
    gp = thr * eff
    i = int(np.argmax(gp))
    table = tuple(
        (float(b), float(t), float(r), float(e), float(g))
        for b, t, r, e, g in zip(candidates, times, thr, eff, gp, strict=True)
    )
    return GoodputChoice(
        batch_size=int(candidates[i]),
        goodput=float(gp[i]),
        throughput=float(thr[i]),
        efficiency=float(eff[i]),
        noise_scale=float(noise_scale),
        reference_batch=B0,
        table=table,
        measured_sizes=tuple(int(b) for b in sizes),
    )
