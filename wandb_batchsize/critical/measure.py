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
import time
from collections.abc import Mapping, Sequence
from typing import Any

from wandb_batchsize.backends import backend_for, restoring
from wandb_batchsize.critical import fit
from wandb_batchsize.critical.branch import DataSource, is_sample_fn
from wandb_batchsize.critical.options import DEFAULT_REFERENCE_BATCH
from wandb_batchsize.critical.options import grid as _grid
from wandb_batchsize.critical.options import positive_int as _positive_int
from wandb_batchsize.critical.options import reference_lr as _reference_lr
from wandb_batchsize.critical.progress import CriticalProgress
from wandb_batchsize.critical.result import CriticalBatchResult
from wandb_batchsize.critical.rules import grid_warnings, optimizer_kind_of
from wandb_batchsize.critical.runner import Runner, Settings, medians

EVAL_SEED_OFFSET = 7919


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
    max_batch_size: int | str | None = None,
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
    memory_options: Mapping[str, Any] | None = None,
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
            len(data))``), or the sizes given. ``max_batch_size="memory"``: up
            to the memory ceiling of this training step, found first with
            :func:`wandb_batchsize.find_batch_size` on a batch of ``data``
            (confirmed to train; options in ``memory_options``).
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
    if max_batch_size == "memory":
        max_batch_size = _memory_ceiling(
            backend, data, reference_batch, seed, verbose, memory_options, backend_options
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


def _memory_ceiling(
    backend: Any,
    data: Any,
    reference_batch: int,
    seed: int,
    verbose: bool,
    memory_options: Mapping[str, Any] | None,
    backend_options: Mapping[str, Any],
) -> int:
    """The confirmed memory ceiling of the backend's step on a batch drawn from ``data``."""
    from wandb_batchsize.memory import find_batch_size

    passed = {k: backend_options[k] for k in ("step_fn", "precision") if k in backend_options}
    options = {"verbose": verbose, "log_to_wandb": False, **passed, **dict(memory_options or {})}
    with restoring(backend.snapshot()):  # drawing the sample leaves no trace in the RNGs
        if is_sample_fn(data):
            options.setdefault("sample_fn", data)
        else:
            size = _positive_int(reference_batch, "reference_batch")
            options.setdefault("sample", next(iter(DataSource(backend, data).batches(size, seed))))
        options.setdefault("optimizer", backend.new_optimizer()[0])  # the measurement's kind
        found = find_batch_size(backend.model, loss_fn=backend.loss_fn, **options)
    return int(found.batch_size)


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
        run = Runner(backend, source, settings, lambda: backend.evaluate(eval_set), snapshot)
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


def _result(
    s: Settings,
    run: Runner,
    per_size: dict[int, list[float]],
    best_lr: dict[int, float],
    target: float,
    source_name: str,
    stop_note: str,
    started: float,
    progress: CriticalProgress,
) -> CriticalBatchResult:
    B, S = medians(per_size)
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
