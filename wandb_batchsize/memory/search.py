"""The memory-ceiling search strategy: probe outcomes in, the next batch size out.

Framework-free (no torch, TensorFlow or wandb): a probe is any callable
``probe(batch_size) -> ProbeOutcome``; the strategy decides which batch size
to try next, and :func:`run_search` drives the loop.

The strategy, for a training step whose memory is affine in the batch size,
``memory(B) = a + b * B`` (activations grow linearly with ``B``; weights,
gradients and optimizer state are the constant ``a``):

1. **Ramp.** Start at ``min_batch_size``. Without memory readings, double.
   With readings, fit the headroom left at each probe's peak,
   ``headroom(B) = budget - memory(B) = c - b * B`` (least squares on the
   successful probes, largest batches first), predict the ceiling
   ``B* = c / b``, and jump towards ``B*/2`` (growing at most ``max_growth``
   times per probe) until a probe has used ``ramp_fraction`` of the way.
2. **Predict and verify.** Probe just below the predicted ceiling,
   ``B*(1 - tolerance/2)``, then step away from it by ``tolerance`` (twice),
   doubling the step each further time the outcome repeats (galloping), until
   one probe fits and one fails: with a good prediction that is two or three
   probes and one OOM.
3. **Bisect** the bracket ``[largest fitting, smallest failing)`` until the
   largest fitting size is within ``tolerance`` of the true maximum:
   ``(first_failing - 1 - max_fitting) <= tolerance * (first_failing - 1)``.
   ``tolerance=0`` bisects to the exact boundary.

Without readings (CPU without ``/proc``, MPS) this is doubling + bisection,
the method of Lightning's ``binsearch`` mode, stopped at the tolerance.
Memory readings usually cut the probe count to about half and the OOM events
to one or two (see ``BENCHMARKS.md``).

The strategy is deterministic given the outcomes it sees, so under
``torch.distributed`` every rank that feeds it the same (all-reduced)
outcomes asks for the same batch sizes in the same order: no rank waits for
a collective that another rank skips.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ProbeOutcome:
    """What one probe of a batch size observed.

    ``fitted`` is False after an out-of-memory error (or a reading over a
    user-named budget). ``headroom_bytes`` is the budget left at the probe's
    peak (negative when over), ``None`` when the backend has no readings.
    """

    fitted: bool
    peak_bytes: int | None = None
    headroom_bytes: int | None = None
    budget_bytes: int | None = None
    error: str | None = None
    complete: bool | None = None  # the reading covers the whole step (default: ``fitted``)


@dataclass(frozen=True)
class Probe:
    """One probe as recorded in the result (and in W&B's ``batch_finder/probes``)."""

    batch_size: int
    fitted: bool
    peak_bytes: int | None
    seconds: float
    headroom_bytes: int | None = None
    phase: str = ""
    error: str | None = None
    complete: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AffineFit:
    """``headroom(B) = intercept - slope * B`` in bytes, from ``points`` probes.

    Equivalently ``memory(B) = budget - intercept + slope * B``: ``slope`` is
    the memory one more sample costs.
    """

    intercept: float
    slope: float
    points: int

    @property
    def ceiling(self) -> float:
        """The batch size at which the headroom reaches zero."""
        return self.intercept / self.slope


@dataclass(frozen=True)
class SearchOutcome:
    """The search's answer before the safety factor."""

    max_fitting: int | None
    first_failing: int | None
    probes: tuple[Probe, ...]
    fit: AffineFit | None
    predicted: int | None
    stopped: str

    @property
    def oom_events(self) -> int:
        return sum(1 for p in self.probes if not p.fitted)


def fit_headroom(points: list[tuple[int, int]]) -> AffineFit | None:
    """Least-squares fit of ``headroom = c - b * B`` on ``(B, headroom)`` points.

    Only the points with ``B >= largest / 8`` are used (small batches are
    dominated by fixed costs and allocator rounding). Returns ``None`` with
    fewer than two distinct batch sizes or a slope that is not positive
    (memory that does not grow with the batch predicts nothing).
    """
    if not points:
        return None
    largest = max(b for b, _ in points)
    used = [(b, h) for b, h in points if b >= largest / 8]
    if len({b for b, _ in used}) < 2:
        by_size = sorted({b for b, _ in points})
        if len(by_size) < 2:
            return None
        keep = set(by_size[-2:])
        used = [(b, h) for b, h in points if b in keep]
    n = len(used)
    mean_b = sum(b for b, _ in used) / n
    mean_h = sum(h for _, h in used) / n
    sxx = sum((b - mean_b) ** 2 for b, _ in used)
    sxy = sum((b - mean_b) * (h - mean_h) for b, h in used)
    if sxx <= 0:
        return None
    slope = -sxy / sxx
    if not slope > 0:
        return None
    intercept = mean_h + slope * mean_b
    return AffineFit(intercept=intercept, slope=slope, points=n)


class CeilingSearch:
    """Decides the next batch size to probe; see the module docstring.

    Use :meth:`next_batch` and :meth:`observe` in a loop, or :func:`run_search`.
    """

    def __init__(
        self,
        min_batch_size: int = 2,
        max_batch_size: int = 4096,
        *,
        tolerance: float = 0.02,
        max_probes: int = 40,
        ramp_target: float = 0.5,
        ramp_fraction: float = 0.4,
        max_growth: float = 8.0,
    ) -> None:
        if int(min_batch_size) != min_batch_size or min_batch_size < 1:
            raise ValueError(f"min_batch_size must be a positive integer, got {min_batch_size!r}")
        if int(max_batch_size) != max_batch_size or max_batch_size < min_batch_size:
            raise ValueError(
                f"max_batch_size must be an integer >= min_batch_size={min_batch_size}, "
                f"got {max_batch_size!r}"
            )
        if not 0 <= tolerance < 0.5:
            raise ValueError(f"tolerance must be in [0, 0.5), got {tolerance!r}")
        if max_probes < 1:
            raise ValueError(f"max_probes must be >= 1, got {max_probes!r}")
        self.min_batch_size = int(min_batch_size)
        self.max_batch_size = int(max_batch_size)
        self.tolerance = float(tolerance)
        self.max_probes = int(max_probes)
        self.ramp_target = ramp_target
        self.ramp_fraction = ramp_fraction
        self.max_growth = max_growth
        self.lo: int | None = None  # largest batch that fitted
        self.hi: int | None = None  # smallest batch that failed
        self.probes: list[Probe] = []
        self.predicted: int | None = None
        self._near = False  # past the ramp: predicting / galloping / bisecting
        self._bisect = False
        self._streak = 0  # +k successes or -k failures in a row, near the ceiling
        self._phase = "ramp"
        self._repredicts = 0
        self.stopped = ""

    # -- state -------------------------------------------------------------
    def fit(self) -> AffineFit | None:
        points = [
            (p.batch_size, p.headroom_bytes)
            for p in self.probes
            if p.complete and p.headroom_bytes is not None
        ]
        return fit_headroom(points)

    def converged(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        top = self.hi - 1
        return top - self.lo <= self.tolerance * top

    # -- decisions ---------------------------------------------------------
    def next_batch(self) -> int | None:
        """The next batch size to probe, or None when the search is over."""
        if self.lo is None and self.hi is None:
            self._phase = "ramp"
            return self.min_batch_size
        if self.lo is None:
            self.stopped = "min_batch_size does not fit"
            return None
        if self.lo >= self.max_batch_size:
            self.stopped = "max_batch_size fits"
            return None
        if self.converged():
            self.stopped = "converged"
            return None
        if len(self.probes) >= self.max_probes:
            self.stopped = "max_probes reached"
            return None
        lo, tol = self.lo, self.tolerance
        fit = self.fit()
        ceiling = fit.ceiling if fit is not None else None
        # the step away from the prediction: ``tolerance`` twice, then doubling (galloping)
        step = max(tol, 0.01) * 2 ** max(0, abs(self._streak) - 2)
        if self.hi is None:
            if ceiling is None and not self._near:
                cand, self._phase = lo * 2, "ramp"
            elif not self._near and lo < self.ramp_fraction * ceiling:
                want = round(ceiling * self.ramp_target)
                cand = int(min(max(want, 2 * lo), self.max_growth * lo))
                self._phase = "ramp"
            elif not self._near:
                self._near = True
                self.predicted = int(ceiling)
                cand, self._phase = math.floor(ceiling * (1 - tol / 2)), "predict"
            else:
                cand, self._phase = math.ceil(lo * (1 + step)), "verify"
            cand = min(max(cand, lo + 1), self.max_batch_size)
            return cand
        hi = self.hi
        mid = (lo + hi) // 2
        last = self.probes[-1]
        if (
            self._near
            and not self._bisect
            and not last.fitted
            and last.complete
            and ceiling is not None
            and self._repredicts < 2
            and lo < math.floor(ceiling * (1 - tol / 2)) < hi * (1 - 2 * max(tol, 0.01))
        ):
            # a complete reading over the budget (a target, not an OOM) corrects the fit
            # where it matters: predict again (twice at most) instead of galloping
            self._streak = 0
            self._repredicts += 1
            cand, self._phase = math.floor(ceiling * (1 - tol / 2)), "predict"
        elif not self._near and ceiling is not None:
            self._near = True
            self.predicted = int(ceiling)
            cand, self._phase = math.floor(ceiling * (1 - tol / 2)), "predict"
        elif self._near and not self._bisect and self._streak < 0:
            cand, self._phase = max(math.floor(hi * (1 - step)), mid), "verify"
        elif self._near and not self._bisect and self._streak > 0:
            cand, self._phase = min(math.ceil(lo * (1 + step)), mid), "verify"
        else:
            cand, self._phase = mid, "bisect"
        return min(max(cand, lo + 1), hi - 1)

    def observe(self, batch_size: int, outcome: ProbeOutcome, seconds: float) -> Probe:
        """Record the outcome of probing ``batch_size``; returns the stored :class:`Probe`."""
        probe = Probe(
            batch_size=int(batch_size),
            fitted=bool(outcome.fitted),
            peak_bytes=outcome.peak_bytes,
            seconds=float(seconds),
            headroom_bytes=outcome.headroom_bytes,
            phase=self._phase,
            error=outcome.error,
            complete=outcome.fitted if outcome.complete is None else bool(outcome.complete),
        )
        self.probes.append(probe)
        if probe.fitted:
            if self.lo is None or batch_size > self.lo:
                self.lo = int(batch_size)
            if self._near:
                self._streak = self._streak + 1 if self._streak > 0 else 1
        else:
            if self.hi is None or batch_size < self.hi:
                self.hi = int(batch_size)
            if self._near:
                self._streak = self._streak - 1 if self._streak < 0 else -1
        if self._near and self.lo is not None and self.hi is not None and self._phase == "verify":
            # a verify probe that closed the bracket from the other side: bisect from now on
            prev = self.probes[-2] if len(self.probes) > 1 else None
            if prev is not None and prev.fitted != probe.fitted:
                self._bisect = True
        return probe

    def outcome(self) -> SearchOutcome:
        if not self.stopped:
            self.stopped = "stopped"
        return SearchOutcome(
            max_fitting=self.lo,
            first_failing=self.hi,
            probes=tuple(self.probes),
            fit=self.fit(),
            predicted=self.predicted,
            stopped=self.stopped,
        )


def run_search(
    probe: Callable[[int], ProbeOutcome],
    strategy: CeilingSearch,
    *,
    on_probe: Callable[[Probe, CeilingSearch], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> SearchOutcome:
    """Probe until the strategy is done. Exceptions from ``probe`` propagate unchanged."""
    while True:
        batch_size = strategy.next_batch()
        if batch_size is None:
            return strategy.outcome()
        start = clock()
        outcome = probe(batch_size)
        record = strategy.observe(batch_size, outcome, clock() - start)
        if on_probe is not None:
            on_probe(record, strategy)


def apply_safety(
    max_fitting: int,
    *,
    safety_factor: float = 0.9,
    multiple_of: int = 8,
    min_batch_size: int = 1,
    ceiling_found: bool = True,
) -> int:
    """The batch size to train with: ``floor(max_fitting * safety_factor)``, rounded down
    to a multiple of ``multiple_of``.

    The rounding is skipped when it would give less than one multiple (a ceiling
    of 12 with ``multiple_of=8`` gives ``floor(12 * 0.9) = 10``, not 8 — rounding
    down to 8 would waste a third). The result is never below ``min_batch_size``
    (which is known to fit). When ``max_batch_size`` itself fitted
    (``ceiling_found=False``) no margin is needed from a memory limit that was
    never reached: ``max_fitting`` is returned as is.

    The seed's rule multiplied by 0.9 and claimed "multiples of 32" (768 x 0.9 =
    691 is not one); here the alignment is the explicit ``multiple_of``.
    """
    if not 0 < safety_factor <= 1:
        raise ValueError(f"safety_factor must be in (0, 1], got {safety_factor!r}")
    if multiple_of < 1:
        raise ValueError(f"multiple_of must be >= 1, got {multiple_of!r}")
    if not ceiling_found:
        return int(max_fitting)
    value = math.floor(max_fitting * safety_factor + 1e-9)
    if multiple_of > 1 and value >= multiple_of:
        value = value // multiple_of * multiple_of
    return int(max(value, min(min_batch_size, max_fitting), 1))


def accumulation_for(effective_batch: int, ceiling: int) -> tuple[int, int]:
    """``(micro_batch, steps)`` for a wanted effective batch under a memory ceiling.

    ``steps = ceil(effective_batch / ceiling)`` gradient-accumulation steps of
    ``micro_batch <= ceiling`` samples. When a number of steps in
    ``[steps, 2 * steps]`` divides ``effective_batch`` the product is exact and
    the fewest such steps are used; otherwise ``micro_batch =
    ceil(effective_batch / steps)``, and the effective batch becomes
    ``micro_batch * steps`` (larger by less than ``steps`` samples).

    >>> accumulation_for(1024, 300)
    (256, 4)
    >>> accumulation_for(100, 300)
    (100, 1)
    """
    if int(effective_batch) != effective_batch or effective_batch < 1:
        raise ValueError(f"effective_batch must be a positive integer, got {effective_batch!r}")
    if int(ceiling) != ceiling or ceiling < 1:
        raise ValueError(f"ceiling must be a positive integer, got {ceiling!r}")
    effective_batch, ceiling = int(effective_batch), int(ceiling)
    if effective_batch <= ceiling:
        return effective_batch, 1
    steps = math.ceil(effective_batch / ceiling)
    for s in range(steps, 2 * steps + 1):
        if effective_batch % s == 0:
            return effective_batch // s, s
    return math.ceil(effective_batch / steps), steps
