"""The branches of one measurement: the target, the lr search per size, the grid walk.

:class:`Runner` runs every branch from the snapshot (restoring it after each)
and keeps the table; :func:`wandb_batchsize.critical.measure.measure_with_backend`
drives it and turns its table into a :class:`CriticalBatchResult`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wandb_batchsize.critical import fit
from wandb_batchsize.critical.branch import DIVERGE_FACTOR, Branch, DataSource, run_branch
from wandb_batchsize.critical.progress import CriticalProgress
from wandb_batchsize.critical.result import CriticalBatchRow

#: lr multiples tried around the prediction, in this order
LR_FACTORS = (1.0, 2.0, 0.5)
#: then the best is refined with these multiples (the x2 grid can miss a sharp optimum)
REFINE = (2**0.5, 2**-0.5)
#: how many further x2 (or x0.5) steps are tried while the best lr is at an edge
LR_EXTENSIONS = 2
#: a size "needs no fewer steps" than a smaller one when it saves less than 10 % of them
NO_GAIN = 0.9
#: the grid stops once this many sizes beyond the first flat one also show no gain
PATIENCE = 1
#: an lr's run stops (counted as not reaching) past this multiple of the best score so far
CAP_FACTOR = 1.5
#: default target: this fraction of the way back from the reference run's final
#: loss (mean of its last checks) to the starting loss, so the target lies on
#: the descent, not in the noise floor where reaching it is a matter of luck
TARGET_FRACTION = 0.1


@dataclass
class Settings:
    """What one measurement does (the keyword arguments of :func:`measure_critical_batch`)."""

    lr: float
    sizes: Sequence[int]
    optimizer_kind: str
    target: float | None = None
    max_steps: int = 1000
    reference_steps: int | None = None
    max_samples: int | None = None
    seed: int = 0
    repeats: int = 2
    val_data: Any = None
    eval_size: int = 1024
    early_stop: bool = True
    level: float = 0.9
    n_boot: int = 400


class Runner:
    """Runs branches from the snapshot and keeps the table."""

    def __init__(
        self, backend: Any, source: DataSource, settings: Settings, evaluate: Any, snapshot: Any
    ):
        self.backend, self.source, self.s = backend, source, settings
        self.evaluate, self.snapshot = evaluate, snapshot
        self.rows: list[CriticalBatchRow] = []
        self.start_loss = float(evaluate())
        if not math.isfinite(self.start_loss):
            raise ValueError(f"the loss at the current state is not finite ({self.start_loss})")
        self.diverge_above = DIVERGE_FACTOR * self.start_loss if self.start_loss > 0 else math.inf
        self.target_loss = math.nan
        self.reference_samples = 0

    @property
    def samples(self) -> int:
        return sum(r.samples for r in self.rows)

    def branch(
        self, batch_size: int, lr: float, cap: int, repeat: int, target: float, trace: Any = None
    ) -> CriticalBatchRow:
        seed = self.s.seed + 1000 * repeat + batch_size
        try:
            row = run_branch(
                self.backend,
                self.source,
                Branch(batch_size, lr, cap, seed, repeat),
                target=target,
                evaluate=self.evaluate,
                diverge_above=self.diverge_above,
                trace=trace,
            )
        finally:
            self.snapshot.restore()
        self.rows.append(row)
        return row

    def target(self) -> tuple[float, str]:
        s = self.s
        if s.target is not None:
            if not float(s.target) < self.start_loss:
                raise ValueError(
                    f"target={s.target} is not below the current loss {self.start_loss:.5g}: "
                    "nothing to measure; pass a lower target or none (the default)"
                )
            self.target_loss = float(s.target)
            return self.target_loss, "user"
        steps = s.reference_steps or max(1, s.max_steps // 2)
        trace: list[tuple[int, float]] = []
        row = self.branch(s.sizes[0], s.lr, steps, 0, -math.inf, trace)
        self.rows.pop()  # the lr0 branch of the first size is read off its trace below
        end = _tail_mean(trace)
        if row.diverged or not end < self.start_loss:
            raise ValueError(
                f"at reference_batch={s.sizes[0]} and lr={s.lr:.4g} the loss did not fall in "
                f"{steps} steps ({self.start_loss:.5g} -> {row.final_loss:.5g}"
                f"{', diverged' if row.diverged else ''}); pass an lr that trains at that batch, "
                "more reference_steps, or target="
            )
        self.target_loss = end + TARGET_FRACTION * (self.start_loss - end)
        reached = next(t for t, loss in trace if loss <= self.target_loss)
        self.rows.append(
            CriticalBatchRow(
                **{
                    **row.as_dict(),
                    "steps": reached,
                    "samples": reached * row.batch_size,
                    "reached": True,
                    "final_loss": dict(trace)[reached],
                }
            )
        )
        self.reference_samples = row.samples
        return self.target_loss, "reference"

    def search(self, batch_size: int, centre: float) -> tuple[float, list[float]] | None:
        """The best lr at ``batch_size`` and its steps per repeat, or None if none reached.

        Each lr (``centre`` x LR_FACTORS, then further x2 / x0.5 while the best is
        at an edge, then x sqrt 2 and x 1/sqrt 2 around the best) runs on every
        repeat's seed; its score is the median steps
        (a run that diverges, or passes CAP_FACTOR x the best score without
        reaching the target, counts as infinite).
        """
        known = {(r.lr, r.repeat): r for r in self.rows if r.batch_size == batch_size}
        runs: dict[float, list[float]] = {}
        scores: dict[float, float] = {}
        best: float | None = None
        fails_allowed = (self.s.repeats + 1) // 2  # this many failures make the median inf

        def consider(lr: float) -> None:
            nonlocal best
            lr = _canonical(lr, scores)
            if lr in scores:
                return
            cap = self.s.max_steps
            if best is not None:
                cap = min(cap, max(1, math.ceil(CAP_FACTOR * scores[best])))
            steps: list[float] = []
            for repeat in range(self.s.repeats):
                row = known.get((lr, repeat)) or self.branch(
                    batch_size, lr, cap, repeat, self.target_loss
                )
                steps.append(float(row.steps) if row.reached else math.inf)
                if steps.count(math.inf) >= fails_allowed or row.diverged:
                    steps += [math.inf] * (self.s.repeats - len(steps))
                    break
            runs[lr] = steps
            scores[lr] = statistics.median(steps)
            if math.isfinite(scores[lr]) and (best is None or scores[lr] < scores[best]):
                best = lr

        for factor in LR_FACTORS:
            consider(centre * factor)
        for direction in (2.0, 0.5):
            for _ in range(LR_EXTENSIONS):
                edge = max(scores) if direction > 1 else min(scores)
                if best != edge or self._spent():
                    break
                consider(edge * direction)
        if best is None:
            return None
        for factor in REFINE:  # halfway (in log lr) to the neighbours of the best
            if self._spent():
                break
            consider(best * factor)
        return best, [v for v in runs[best] if math.isfinite(v)]

    def _spent(self) -> bool:
        return self.s.max_samples is not None and self.samples >= self.s.max_samples

    def grid(
        self, progress: CriticalProgress
    ) -> tuple[dict[int, list[float]], dict[int, float], str]:
        s = self.s
        per_size: dict[int, list[float]] = {}
        best_lr: dict[int, float] = {}
        b_noise: float | None = None
        note = ""
        for i, batch_size in enumerate(s.sizes):
            if i and self._spent():
                note = f"max_samples={s.max_samples} spent before batch size {batch_size}"
                break
            centre = (
                s.lr if i == 0 else fit.predict_lr(batch_size, best_lr, s.optimizer_kind, b_noise)
            )
            found = self.search(batch_size, centre)
            rows = [r for r in self.rows if r.batch_size == batch_size]
            if found is None:
                progress.size(batch_size, rows, None)
                note = (
                    f"no learning rate reached the target at batch size {batch_size} "
                    f"in {s.max_steps} steps"
                )
                break
            best_lr[batch_size], per_size[batch_size] = found
            median = statistics.median(per_size[batch_size])
            progress.size(batch_size, rows, (best_lr[batch_size], median))
            if len(per_size) >= 2:
                try:
                    b_noise = fit.fit_steps(*medians(per_size)).B_noise
                except ValueError:
                    b_noise = None
            if s.early_stop and i + 1 < len(s.sizes):
                note = _saturated(per_size, s.sizes[: i + 1])
                if note:
                    break
        if note:
            progress.note(note)
        return per_size, best_lr, note


def _canonical(lr: float, seen: Mapping[float, Any]) -> float:
    """``lr``, or the one already in ``seen`` it equals up to rounding (0.05 / sqrt 2 / sqrt 2)."""
    for known in seen:
        if abs(math.log(lr / known)) < 1e-6:
            return known
    return lr


def _saturated(per_size: Mapping[int, Sequence[float]], sizes: Sequence[int]) -> str:
    """Why the grid stops, or "": the last PATIENCE + 1 sizes needed no fewer steps than
    the size before them (a single noisy size does not stop it)."""
    if len(sizes) < PATIENCE + 2:
        return ""
    before = sizes[-PATIENCE - 2]
    reference = statistics.median(per_size[before])
    last = [statistics.median(per_size[b]) for b in sizes[-PATIENCE - 1 :]]
    if all(v >= NO_GAIN * reference for v in last):
        shown = ", ".join(
            f"{b}: {v:.0f}" for b, v in zip(sizes[-PATIENCE - 1 :], last, strict=True)
        )
        return (
            f"batch sizes past {before} need no fewer steps than it ({reference:.0f}; {shown}): "
            "the grid stops here"
        )
    return ""


def _tail_mean(trace: Sequence[tuple[int, float]], share: float = 0.1) -> float:
    """Mean loss over the checks in the last ``share`` of a run's steps (at least one)."""
    last = trace[-1][0]
    tail = [loss for t, loss in trace if t >= (1.0 - share) * last] or [trace[-1][1]]
    return float(sum(tail) / len(tail))


def medians(per_size: Mapping[int, Sequence[float]]) -> tuple[list[float], list[float]]:
    sizes = sorted(per_size)
    return [float(b) for b in sizes], [statistics.median(per_size[b]) for b in sizes]
