"""``measure_critical_batch``: steps to a target loss at each batch size, from branches.

The method of ``spec/critical-batch.md`` (McCandlish et al. 2018; Merrill et
al. 2025): from the model's current state (a snapshot, restored bitwise
afterwards, also after an error or Ctrl-C), for each batch size of a geometric
grid, train with the learning rate the saturating rule predicts and its
neighbours (x2, x0.5, extended while the best sits at an edge) until a target
loss is reached on a fixed evaluation set; keep the fewest steps. Fit
``S = S_min (1 + B_noise / B)`` on ``log S``; ``B_crit = E_min / S_min``, with a
bootstrap interval over repeats. Framework-free: the model is trained through
its backend (:func:`wandb_batchsize.backends.backend_for`).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wandb_batchsize.backends import backend_for, restoring
from wandb_batchsize.critical import fit
from wandb_batchsize.critical.branch import DIVERGE_FACTOR, Branch, DataSource, run_branch
from wandb_batchsize.critical.options import DEFAULT_REFERENCE_BATCH
from wandb_batchsize.critical.options import grid as _grid
from wandb_batchsize.critical.options import positive_int as _positive_int
from wandb_batchsize.critical.options import reference_lr as _reference_lr
from wandb_batchsize.critical.progress import CriticalProgress
from wandb_batchsize.critical.result import CriticalBatchResult, CriticalBatchRow
from wandb_batchsize.critical.rules import grid_warnings, optimizer_kind_of

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
EVAL_SEED_OFFSET = 7919
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
    rows: list[CriticalBatchRow] = field(default_factory=list)


def measure_critical_batch(
    model: Any,
    data: Any,
    loss_fn: Any = None,
    *,
    optimizer: Any = None,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    lr: float | None = None,
    reference_batch: int = DEFAULT_REFERENCE_BATCH,
    batch_sizes: Sequence[int] | None = None,
    max_batch_size: int | None = None,
    val_data: Any = None,
    target: float | None = None,
    max_steps: int = 1000,
    reference_steps: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    repeats: int = 2,
    optimizer_kind: str | None = None,
    eval_size: int = 1024,
    log_to_wandb: bool = True,
    verbose: bool = True,
    **backend_options: Any,
) -> CriticalBatchResult:
    """Measure the critical batch size of ``model`` on ``data`` from its current state.

    Args:
        model: a ``torch.nn.Module`` or a Keras model (its state is restored bitwise).
        data: a dataset the backend reads (a torch ``Dataset``; Keras ``(x, y)``)
            or ``sample_fn(batch_size) -> batch`` (fresh samples, no epochs).
        loss_fn: as for the backend; None: the model returns the loss (torch),
            the compiled loss or MSE (Keras).
        optimizer: class, factory ``f(params, lr)``, name or Keras optimizer;
            None means plain SGD (``"sgd"``). ``optimizer_kind`` ("sgd"/"adam")
            picks the lr rule; by default "adam" for any Adam-type name.
        lr: the learning rate that works at ``reference_batch`` (else
            ``optimizer_kwargs["lr"]`` or the optimizer's own).
        reference_batch, max_batch_size, batch_sizes: the grid (default powers
            of two from ``reference_batch`` to ``min(128 x reference_batch,
            len(data))``), or the sizes given.
        val_data: where the target is evaluated (default: one fixed batch of
            ``eval_size`` examples drawn from ``data``).
        target: the loss to reach; default the loss the reference batch
            reaches at ``lr`` after ``reference_steps`` (default ``max_steps // 2``).
        max_steps: cap of steps per branch; max_samples: cap of examples for
            the whole measurement (the grid stops when it is spent).
        repeats: seeds per size: every lr tried runs on each, scored by the
            median steps; the bootstrap interval resamples the best lr's repeats.
        log_to_wandb: log ``critical_batch/*`` to the active run (never raises).
        backend_options: passed to :func:`~wandb_batchsize.backends.backend_for`
            (``step_fn``, ``precision``, ``device``, ``input_shape``).
    """
    kind = optimizer_kind_of(optimizer, optimizer_kind)
    options = dict(backend_options)
    if optimizer_kwargs:
        options["optimizer_kwargs"] = dict(optimizer_kwargs)
    backend = backend_for(
        model, loss_fn=loss_fn, optimizer=optimizer if optimizer is not None else "sgd", **options
    )
    settings = Settings(
        lr=_reference_lr(backend, lr, optimizer_kwargs, optimizer),
        sizes=_grid(backend, data, reference_batch, batch_sizes, max_batch_size),
        optimizer_kind=kind,
        target=target,
        max_steps=_positive_int(max_steps, "max_steps"),
        reference_steps=None
        if reference_steps is None
        else _positive_int(reference_steps, "reference_steps"),
        max_samples=None if max_samples is None else _positive_int(max_samples, "max_samples"),
        seed=int(seed),
        repeats=_positive_int(repeats, "repeats"),
        val_data=val_data,
        eval_size=_positive_int(eval_size, "eval_size"),
    )
    result = measure_with_backend(backend, data, settings, progress=CriticalProgress(verbose))
    if log_to_wandb:
        from wandb_batchsize.critical.tracking import log_critical_batch

        log_critical_batch(result)
    return result


def measure_with_backend(
    backend: Any, data: Any, settings: Settings, *, progress: CriticalProgress | None = None
) -> CriticalBatchResult:
    """The measurement over a ready backend (also what :class:`CriticalBatchMonitor` runs)."""
    progress = progress or CriticalProgress(False)
    started = time.perf_counter()
    snapshot = backend.snapshot()
    with restoring(snapshot):
        source = DataSource(backend, data, val_data=settings.val_data, eval_size=settings.eval_size)
        eval_set = source.eval_data(settings.seed + EVAL_SEED_OFFSET)
        snapshot.restore()
        run = _Runner(backend, source, settings, lambda: backend.evaluate(eval_set), snapshot)
        progress.header(
            framework=backend.framework,
            device=backend.device_name,
            sizes=settings.sizes,
            optimizer_kind=settings.optimizer_kind,
            lr=settings.lr,
        )
        target, source_name = run.target()
        progress.target(target, source_name, run.start_loss, run.reference_samples)
        per_size, best_lr, stop_note = run.grid(progress)
    return _result(
        settings, run, per_size, best_lr, target, source_name, stop_note, started, progress
    )


class _Runner:
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
                    b_noise = fit.fit_steps(*_medians(per_size)).B_noise
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


def _medians(per_size: Mapping[int, Sequence[float]]) -> tuple[list[float], list[float]]:
    sizes = sorted(per_size)
    return [float(b) for b in sizes], [statistics.median(per_size[b]) for b in sizes]


def _result(
    s: Settings,
    run: _Runner,
    per_size: dict[int, list[float]],
    best_lr: dict[int, float],
    target: float,
    source_name: str,
    stop_note: str,
    started: float,
    progress: CriticalProgress,
) -> CriticalBatchResult:
    B, S = _medians(per_size)
    nan = math.nan
    S_min = B_noise = nan
    status = "too few"
    interval = (nan, nan)
    if len(B) >= 2:
        steps_fit = fit.fit_steps(B, S)
        S_min, B_noise = steps_fit.S_min, steps_fit.B_noise
        status = fit.knee_bracketed(B, S, B_noise)
        interval = fit.bootstrap_b_crit(per_size, n_boot=s.n_boot, level=s.level, seed=s.seed)
    lr_max = fit.fit_lr_max(best_lr, B_noise, s.optimizer_kind) if len(B) >= 2 else nan
    result = CriticalBatchResult(
        B_crit=B_noise,
        interval=interval,
        S_min=S_min,
        E_min=S_min * B_noise,
        B_noise=B_noise,
        bracketed=status == "bracketed",
        best_lr=dict(best_lr),
        steps=dict(zip([int(b) for b in B], S, strict=True)),
        lr_max=lr_max,
        lr_B_noise=B_noise,
        optimizer_kind=s.optimizer_kind,
        target=target,
        target_source=source_name,
        reference_batch=int(s.sizes[0]),
        level=s.level,
        warnings=tuple(grid_warnings(status, B, s.sizes, stop_note, B_noise)),
        table=tuple(run.rows),
        samples_used=run.samples,
        seconds=time.perf_counter() - started,
    )
    progress.footer(result)
    return result
