"""``CriticalBatchMonitor``: the local critical batch size over training (Merrill et al. 2025).

Every ``every`` steps the monitor branches off the current weights, runs a
small :func:`~wandb_batchsize.critical.measure.measure_critical_batch` (short
branches to a nearby target: by default the loss the reference batch reaches
in ``reference_steps`` steps from here) and logs ``critical_batch/local_B_crit``
(with its interval, ``local_S_min``, ``local_target``, ``local_bracketed``,
``local_seconds``) against ``critical_batch/step``. The training run's state
(weights, buffers, gradients, train/eval flags, RNG streams) is restored
bitwise after every measurement; the run's own optimizer is never touched
(branches use fresh optimizers). A measurement that fails warns once and
training goes on.

Plain loop::

    monitor = CriticalBatchMonitor(model, sample_fn, loss_fn, lr=0.05, every=500)
    for step in range(n):
        ...
        monitor.step(step)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from wandb_batchsize.backends import backend_for
from wandb_batchsize.critical import options as checks
from wandb_batchsize.critical.measure import measure_with_backend
from wandb_batchsize.critical.progress import CriticalProgress
from wandb_batchsize.critical.result import CriticalBatchResult
from wandb_batchsize.critical.rules import optimizer_kind_of
from wandb_batchsize.critical.runner import Settings


class CriticalBatchMonitor:
    """Re-measures the critical batch every ``every`` steps on a small budget.

    Args mirror :func:`measure_critical_batch`; the defaults are small:
    ``max_steps=200`` per branch, ``reference_steps=50`` (the local target),
    ``repeats=1``, grid ``reference_batch`` .. ``max_batch_size`` (default
    32 x reference). ``lr`` is the rate at ``reference_batch`` (e.g. the run's
    own lr scaled to it). ``history`` holds ``(step, result)`` pairs.
    """

    def __init__(
        self,
        model: Any,
        data: Any,
        loss_fn: Any = None,
        *,
        lr: float,
        every: int = 1000,
        optimizer: Any = None,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        reference_batch: int = checks.DEFAULT_REFERENCE_BATCH,
        max_batch_size: int | None = None,
        batch_sizes: Sequence[int] | None = None,
        max_steps: int = 200,
        reference_steps: int = 50,
        max_samples: int | None = None,
        repeats: int = 1,
        val_data: Any = None,
        eval_size: int = 512,
        seed: int = 0,
        optimizer_kind: str | None = None,
        log_to_wandb: bool = True,
        verbose: bool = False,
        **backend_options: Any,
    ) -> None:
        self.every = checks.positive_int(every, "every")
        kind = optimizer_kind_of(optimizer, optimizer_kind)
        options = dict(backend_options)
        if optimizer_kwargs:
            options["optimizer_kwargs"] = dict(optimizer_kwargs)
        self.backend = backend_for(
            model,
            loss_fn=loss_fn,
            optimizer=optimizer if optimizer is not None else "sgd",
            **options,
        )
        if max_batch_size is None and batch_sizes is None:
            max_batch_size = 32 * int(reference_batch)
        self.data = data
        self.settings = Settings(
            lr=checks.reference_lr(self.backend, lr, optimizer_kwargs, optimizer),
            sizes=checks.grid(self.backend, data, reference_batch, batch_sizes, max_batch_size),
            optimizer_kind=kind,
            max_steps=checks.positive_int(max_steps, "max_steps"),
            reference_steps=checks.positive_int(reference_steps, "reference_steps"),
            max_samples=None
            if max_samples is None
            else checks.positive_int(max_samples, "max_samples"),
            seed=int(seed),
            repeats=checks.positive_int(repeats, "repeats"),
            val_data=val_data,
            eval_size=checks.positive_int(eval_size, "eval_size"),
            n_boot=200,
        )
        self.log_to_wandb = log_to_wandb
        self.verbose = verbose
        self.history: list[tuple[int, CriticalBatchResult]] = []
        self._sink: Any = None
        self._warned = False

    def due(self, step: int) -> bool:
        return int(step) > 0 and int(step) % self.every == 0

    def step(self, step: int) -> CriticalBatchResult | None:
        """Call once per training step; measures (and logs) when ``step`` is a multiple of ``every``."""
        return self.measure(step) if self.due(step) else None

    def measure(self, step: int) -> CriticalBatchResult | None:
        """Measure now, from the current weights; None (with one warning) if it fails."""
        try:
            result = measure_with_backend(
                self.backend, self.data, self.settings, progress=CriticalProgress(self.verbose)
            )
        except Exception as exc:  # noqa: BLE001 - a monitor must never stop training
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"CriticalBatchMonitor: the measurement at step {step} failed "
                    f"({type(exc).__name__}: {exc}); training continues, later failures are silent",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return None
        self.history.append((int(step), result))
        if self.log_to_wandb:
            from wandb_batchsize.critical.tracking import log_local
            from wandb_batchsize.tracking.run import WandbSink

            if self._sink is None or not self._sink.enabled:
                self._sink = WandbSink(name="CriticalBatchMonitor")
            log_local(self._sink, step, result)
        return result

    @property
    def B_crit_series(self) -> list[tuple[int, float]]:
        """``(step, local B_crit)`` for every measurement so far."""
        return [(s, r.B_crit) for s, r in self.history]
