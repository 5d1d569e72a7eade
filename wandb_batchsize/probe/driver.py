"""The probe loop: every size in the plan, ``repeats`` times, from the same start.

A backend (``ProbeBackend``) trains one probe at a time; :mod:`probe.trainer`
builds one over any framework backend of :mod:`wandb_batchsize.backends`, and
the Lightning probe brings its own (a ``Trainer`` per size). The driver records
each run, skips what is larger than a size that ran out of memory, and
analyses the pairs (batch size, metric) in sweep mode (``analyze_sweep``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from wandb_batchsize.analysis.sweep import analyze_sweep
from wandb_batchsize.backends.oom import short_message
from wandb_batchsize.probe.log import log_probe
from wandb_batchsize.probe.progress import Progress
from wandb_batchsize.probe.result import ProbeRecord, ProbeResult
from wandb_batchsize.probe.sizes import (
    METRICS,
    MIN_SIZES_FOR_ANALYSIS,
    BudgetPlan,
    last_third_mean,
    lr_factor,
)


@dataclass
class TrainOutcome:
    """What a backend returns for one probe."""

    losses: Sequence[float]
    seconds: float
    warmup_seconds: float
    val_loss: float | None = None
    lr: float | None = None
    samples: int | None = None  # when the backend counted real samples


class ProbeBackend(Protocol):
    """A framework adapter: one probe at a time, from the shared starting state."""

    def restore(self) -> None:
        """Put the model, RNG and everything a probe touches back to the start."""

    def train(
        self,
        batch_size: int,
        steps: int,
        seed: int,
        lr_factor: float,
        on_step: Callable[[int], None],
    ) -> TrainOutcome:
        """Train ``steps`` steps at ``batch_size`` with a fresh optimizer, seeded with ``seed``."""

    def is_oom(self, exc: BaseException) -> bool: ...

    def release(self, exc: BaseException | None = None) -> None:
        """Free what a failed or finished probe held (an OOM's frames, gc, caches)."""


def run_probes(
    backend: ProbeBackend,
    plan: BudgetPlan,
    *,
    repeats: int = 1,
    seed: int = 0,
    lr_scaling: str | None = None,
    base_batch_size: int | None = None,
    use_val: bool = False,
    progress: Progress | None = None,
) -> list[ProbeRecord]:
    """Probe every size in ``plan`` (ascending), ``repeats`` times each.

    Repeat ``r`` uses seed ``seed + r`` at every size (common random numbers:
    sizes differ by their batch size, not their luck). The backend restores the
    shared starting state before each probe and once more at the end, also when
    a probe raises. A size that runs out of memory is recorded (``"oom"``) and
    every larger size is skipped; any other error propagates.
    """
    repeats = int(repeats)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    sizes = plan.batch_sizes
    base = int(base_batch_size) if base_batch_size is not None else sizes[0]
    progress = progress or Progress(enabled=False)
    records: list[ProbeRecord] = []
    oom_at: int | None = None
    try:
        for b in sizes:
            steps = plan.steps[b]
            factor = lr_factor(b, base, lr_scaling)
            if oom_at is not None:
                note = f"not probed: {oom_at} already ran out of memory"
                records.append(_empty_record(b, 0, seed, "skipped", note))
                progress.size_done(b, [records[-1]])
                continue
            group: list[ProbeRecord] = []
            for r in range(repeats):
                backend.restore()
                progress.start_probe(b, r, repeats, steps)
                oom_note = None
                try:
                    outcome = backend.train(b, steps, seed + r, factor, progress.step)
                except Exception as exc:
                    if not backend.is_oom(exc):
                        raise
                    oom_note = f"out of memory: {short_message(exc)}"
                    backend.release(exc)  # clears the frames that hold the step's tensors
                if oom_note is not None:
                    group.append(_empty_record(b, r, seed + r, "oom", oom_note))
                    oom_at = b
                    break
                group.append(_record(b, r, seed + r, steps, outcome, use_val))
            records.extend(group)
            progress.size_done(b, group)
    finally:
        progress.close()
        backend.restore()
        backend.release()
    return records


def _empty_record(b: int, r: int, seed: int, status: str, note: str) -> ProbeRecord:
    nan = float("nan")
    return ProbeRecord(b, r, seed, status, nan, nan, None, 0, 0, 0.0, nan, None, note)


def _record(b: int, r: int, seed: int, steps: int, out: TrainOutcome, use_val: bool) -> ProbeRecord:
    losses = np.asarray([float(v) for v in out.losses], dtype=float)
    samples = int(out.samples) if out.samples is not None else len(losses) * b
    train_loss = last_third_mean(losses)
    val_loss = None if out.val_loss is None else float(out.val_loss)
    metric = val_loss if use_val else train_loss
    status, note = "ok", ""
    if len(losses) < steps:
        note = f"the data ran out after {len(losses)} of {steps} steps"
    if not np.all(np.isfinite(losses)) or metric is None or not math.isfinite(metric):
        bad = int(np.argmax(~np.isfinite(losses))) if not np.all(np.isfinite(losses)) else -1
        status = "diverged"
        note = f"non-finite loss at step {bad + 1}" if bad >= 0 else "non-finite validation loss"
        metric = float("nan")
    timed = max(out.seconds - out.warmup_seconds, 0.0)
    per_step = samples / max(len(losses), 1)
    throughput = (
        (len(losses) - 1) * per_step / timed
        if len(losses) > 1 and timed > 0
        else (samples / out.seconds if out.seconds > 0 else float("nan"))
    )
    return ProbeRecord(
        batch_size=b,
        repeat=r,
        seed=seed,
        status=status,
        metric=float(metric),
        train_loss=train_loss,
        val_loss=val_loss,
        samples=samples,
        steps=len(losses),
        seconds=float(out.seconds),
        throughput=float(throughput),
        lr=None if out.lr is None else float(out.lr),
        note=note,
    )


def choose_metric(metric: str, has_val: bool) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric == "auto":
        return "val_loss" if has_val else "train_loss"
    if metric == "val_loss" and not has_val:
        raise ValueError('metric="val_loss" needs validation data (val_data=...)')
    return metric


def analyze_records(
    records: Sequence[ProbeRecord], *, n_bootstrap: int = 1000, seed: int = 0
) -> tuple[Any | None, str]:
    """Sweep-mode analysis of the successful probes, or (None, why not)."""
    ok = [r for r in records if r.status == "ok"]
    distinct = sorted({r.batch_size for r in ok})
    if len(distinct) < MIN_SIZES_FOR_ANALYSIS:
        return None, (
            f"only {len(distinct)} batch size(s) probed successfully ({distinct}); the sweep "
            f"analysis needs at least {MIN_SIZES_FOR_ANALYSIS} distinct sizes. Give more "
            "batch_sizes, a larger budget, or a higher memory ceiling."
        )
    try:
        sweep = analyze_sweep(
            [r.batch_size for r in ok],
            [r.metric for r in ok],
            n_bootstrap=n_bootstrap,
            seed=seed,
            metric_kind="loss",
        )
    except ValueError as exc:
        return None, f"the sweep analysis failed: {exc}"
    return sweep, ""


def build_result(
    records: Sequence[ProbeRecord],
    plan: BudgetPlan,
    *,
    metric: str,
    framework: str,
    left_out: dict[int, str],
    n_bootstrap: int = 1000,
    seed: int = 0,
    log_to_wandb: bool = True,
) -> ProbeResult:
    """Analyse, warn when there is no analysis, log to the active W&B run."""
    sweep, message = analyze_records(records, n_bootstrap=n_bootstrap, seed=seed)
    result = ProbeResult(
        records=tuple(records),
        sweep=sweep,
        metric=metric,
        budget=plan.budget,
        samples_per_size=plan.samples_per_size,
        framework=framework,
        left_out={**left_out, **plan.left_out},
        message=message,
    )
    if sweep is None:
        import warnings

        warnings.warn(f"probe_batch_sizes: {message}", RuntimeWarning, stacklevel=3)
    if log_to_wandb:
        log_probe(result)
    return result
