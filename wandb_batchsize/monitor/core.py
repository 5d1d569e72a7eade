"""``MonitorCore``: buffer, check and log the per-step loss of one training run.

Each framework adapter (``integrations.torch``, ``.keras``, ``.lightning``,
``.transformers``) only finds the raw loss of each optimizer step and the
trainer's global step, and hands them to one :class:`MonitorCore`, which

- keeps losses that are still device tensors where they are (``detach()`` only)
  and moves them to the host in one transfer per check, or per ``FLUSH_EVERY``
  steps when checks are rarer than that (:mod:`.pending`): no host-device
  synchronisation per step;
- feeds the host values to a :class:`~wandb_batchsize.analysis.streaming.StreamingSusceptibility`
  (``window=None``: every step since the start, O(number of scales) memory once
  the run is past 5000 steps, see :mod:`.detrend`) or to a ring buffer of the
  last ``window`` steps analysed with :func:`~wandb_batchsize.analysis.analyze`;
- every ``check_every`` steps computes a result, keeps it in ``history`` (the
  last ``max_history`` checks) and logs it to W&B (:mod:`.reporting`), spacing
  checks out to stay within ``max_overhead`` of the training time (:mod:`.budget`);
- at the end of training writes the final result to the run summary.

Nothing here imports a framework; a tensor loss implies torch is imported
already (``backends.values_to_host`` looks it up). An analysis failure during a
check warns once: training is never interrupted by the monitor.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from wandb_batchsize.backends import combine_losses
from wandb_batchsize.monitor.budget import OverheadBudget
from wandb_batchsize.monitor.defaults import (
    AUTO_MOVING_AVERAGE,
    AUTO_SHORT_RUN,
    DEFAULT_DETREND,
    DEFAULT_MAX_OVERHEAD,
    FLUSH_EVERY,
    MIN_VALUES,
)
from wandb_batchsize.monitor.detrend import auto_detrend, describe_auto, values_needed
from wandb_batchsize.monitor.pending import PendingLosses, RingBuffer
from wandb_batchsize.monitor.reporting import Reporter
from wandb_batchsize.tracking import keys

__all__ = ["MonitorCore"]


def _with_choice(result: Any, choice: str) -> Any:
    """The result with ``diagnostics["detrend_choice"]`` (the result is frozen; its dict is not)."""
    diagnostics = getattr(result, "diagnostics", None)
    if isinstance(diagnostics, dict):
        diagnostics["detrend_choice"] = choice
    return result


class MonitorCore:
    """Buffer, check and log the per-step loss of one training run.

    Parameters are those of every monitor and callback:

    check_every:
        analyse (and log) every this many optimizer steps.
    window:
        ``None``: analyse every step since the start (streamed: memory independent
        of the number of steps). An int N: the last N steps (a ring buffer).
    detrend:
        passed to the analysis (``"none"``, ``"linear"``, ``"diff"`` or an int
        moving-average window). ``"auto"`` (default) adapts to the run
        (:mod:`wandb_batchsize.monitor.detrend`): ``"linear"`` with ``window=N``;
        when streaming ``"linear"`` below 100 steps, then a moving average of
        ``n // 5`` steps up to 1000. Every run with 20 finite losses gets a result;
        ``result.diagnostics["detrend_choice"]`` says what was chosen.
    log_to_wandb:
        log checks to the active W&B run (if any; results are computed without one).
    prefix, chart_preset, log_charts:
        namespace of the W&B keys; a custom chart preset (``None``: W&B's line
        preset); log the chi(K)/V(K) charts at each check (scalars always).
    max_overhead:
        budget for the time spent in checks, as a fraction of the training time so
        far (default 0.008); later checks are spaced further apart (on multiples of
        ``check_every``) to stay within it; the final check always runs. ``None``:
        no budget.
    max_history:
        results kept in ``history``; ``None`` keeps all.
    run:
        a W&B run, or a callable returning one (or ``False``: do not log from this
        process); default: the active ``wandb.run``.
    analysis_kwargs:
        further analysis parameters (``K_min``, ``K_max``, ``n_points``,
        ``min_batches``, ``max_scale``, ``n_permutations``, ``seed``, ...).
    """

    def __init__(
        self,
        check_every: int = 500,
        window: int | None = None,
        detrend: Any = DEFAULT_DETREND,
        log_to_wandb: bool = True,
        *,
        prefix: str = keys.SUSCEPTIBILITY_PREFIX,
        chart_preset: str | None = None,
        log_charts: bool = True,
        max_overhead: float | None = DEFAULT_MAX_OVERHEAD,
        max_history: int | None = 100,
        run: Any = None,
        name: str = "SusceptibilityMonitor",
        analysis_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if int(check_every) < 1:
            raise ValueError(f"check_every must be a positive number of steps, got {check_every}")
        if window is not None and int(window) < MIN_VALUES:
            raise ValueError(
                f"window must be None (all steps) or at least {MIN_VALUES} steps, got {window}"
            )
        if max_overhead is not None and not 0 < float(max_overhead) <= 1:
            raise ValueError(f"max_overhead must be None or in (0, 1], got {max_overhead}")
        if max_history is not None and int(max_history) < 1:
            raise ValueError(f"max_history must be None or >= 1, got {max_history}")
        self.check_every = int(check_every)
        self.window = None if window is None else int(window)
        self.auto = detrend == "auto"
        if self.auto and self.window is not None:
            detrend = "linear"
        self.detrend = detrend  # "auto" when streaming: chosen at each check
        self.max_overhead = None if max_overhead is None else float(max_overhead)
        self.log_to_wandb = bool(log_to_wandb)
        self.prefix = prefix
        self.name = name
        self.analysis_kwargs = dict(analysis_kwargs or {})
        self.reporter = Reporter(
            run=run,
            enabled=log_to_wandb,
            prefix=prefix,
            name=name,
            chart_preset=chart_preset,
            log_charts=log_charts,
        )
        self.budget = OverheadBudget(self.check_every, self.max_overhead, name=name)

        self.n_steps = 0  # optimizer steps seen (non-finite ones included)
        self.n_nonfinite = 0  # steps whose loss was NaN or inf (dropped)
        self.last_step: int | None = None  # the trainer's global step of the last step
        self.history: deque[Any] = deque(maxlen=max_history)
        self.history_steps: deque[int] = deque(maxlen=max_history)
        self.n_checks = 0  # checks that produced a result

        self._pending = PendingLosses()
        self._micro: list[Any] = []
        self._next_check = self.check_every
        self._n_values = 0  # finite values given to the analysis
        self._cached: tuple[int, Any] | None = None
        self._finished_at: int | None = None  # _n_values when finish() last wrote the summary
        self._warned: set[str] = set()

        from wandb_batchsize.analysis.susceptibility import analyze

        self._analyze = analyze
        self._analyze_kwargs = {**self._kwargs_for(analyze), "detrend": detrend}
        self._stream: Any = None
        self._ring: RingBuffer | None = None
        self._short: list[np.ndarray] | None = None  # "auto" streaming: the first steps
        if self.window is None:
            from wandb_batchsize.analysis.streaming import StreamingSusceptibility

            self._stream = StreamingSusceptibility(
                **self._kwargs_for(StreamingSusceptibility),
                detrend=AUTO_MOVING_AVERAGE if self.auto else detrend,
            )
            self._short = [] if self.auto else None
        else:
            self._ring = RingBuffer(self.window)
        self._min_values = values_needed(detrend)  # fewer finite values: "not yet"

    def _kwargs_for(self, fn: Callable[..., Any]) -> dict[str, Any]:
        """The analysis kwargs that ``fn`` accepts; a name neither analysis knows is an error."""
        from wandb_batchsize.analysis.streaming import StreamingSusceptibility
        from wandb_batchsize.analysis.susceptibility import analyze

        valid = set(inspect.signature(StreamingSusceptibility).parameters) | set(
            inspect.signature(analyze).parameters
        )
        unknown = sorted(set(self.analysis_kwargs) - valid)
        if unknown:
            raise TypeError(
                f"{self.name}: unknown analysis parameter(s) {unknown}; accepted: "
                f"{sorted(valid - {'values', 'x', 'detrend', 'self'})}"
            )
        params = inspect.signature(fn).parameters
        return {k: v for k, v in self.analysis_kwargs.items() if k in params}

    # -- feeding -----------------------------------------------------------------

    def add_micro(self, loss: Any) -> None:
        """One micro-batch loss of an optimizer step that is not finished yet."""
        self._micro.append(loss)

    @property
    def n_micro(self) -> int:
        """Micro-batch losses given to ``add_micro`` since the last step closed."""
        return len(self._micro)

    def end_step(self, step: int | None = None, *, reduce: str = "sum", scale: float = 1.0) -> Any:
        """Close the optimizer step whose micro-batch losses were given to ``add_micro``.

        ``reduce="sum"`` when each micro loss is already divided by the number of
        accumulation steps (Lightning, the Transformers Trainer); ``"mean"`` for raw
        micro losses. ``scale`` multiplies the step loss (an adapter's correction,
        e.g. a short accumulation window divided by the full count). Returns a
        result when this step triggered a check.
        """
        if not self._micro:
            return None
        micro, self._micro = self._micro, []
        loss = micro[0] if len(micro) == 1 else combine_losses(micro, reduce)
        if scale != 1.0:
            loss = loss * scale
        return self.record(loss, step=step)

    def record(self, loss: Any, step: int | None = None) -> Any:
        """The loss of one optimizer step (float, numpy scalar or tensor, kept on its device).

        ``step`` is the trainer's global step after it (default: steps seen so far).
        Returns a result when this step triggered a check, else None.
        """
        self._pending.append(loss)
        self.budget.first_step()
        self.n_steps += 1
        self.last_step = self.n_steps if step is None else int(step)
        if self.n_steps >= self._next_check:
            return self._check()
        if self._pending.n >= FLUSH_EVERY:
            self._flush()
        return None

    def record_many(self, values: Any, step: int | None = None) -> Any:
        """Losses of several consecutive steps, already on the host (a 1-D array)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.size == 0:
            return None
        self._flush()
        self._consume(values)
        self.n_steps += int(values.size)
        self.last_step = self.n_steps if step is None else int(step)
        if self.n_steps >= self._next_check:
            return self._check()
        return None

    def start(self) -> None:
        """Training (re)starts now: the time since the last check is not training time."""
        self.budget.start(self.n_steps)

    def steps_to_next_check(self) -> int:
        """Optimizer steps left before the next check."""
        return max(1, self._next_check - self.n_steps)

    @property
    def n_deferred(self) -> int:
        """Checks skipped to respect ``max_overhead``."""
        return self.budget.n_deferred

    def _flush(self) -> None:
        if self._pending.n:
            self._consume(self._pending.drain())

    def _consume(self, values: np.ndarray) -> None:
        finite = np.isfinite(values)
        if not finite.all():
            self.n_nonfinite += int(values.size - finite.sum())
            values = values[finite]
        if values.size == 0:
            return
        self._n_values += int(values.size)
        if self._stream is not None:
            self._stream.update(values)
            if self._short is not None:
                self._short.append(values.copy())
                if self._n_values > AUTO_SHORT_RUN:
                    self._short = None  # long enough: the stream alone from now on
            return
        self._ring.add(values)

    # -- results -----------------------------------------------------------------

    @property
    def n_values(self) -> int:
        """Step losses given so far: the finite ones analysed plus those still pending
        (not yet moved to the host, nor checked for NaN)."""
        return self._n_values + self._pending.n

    def values(self) -> np.ndarray:
        """The values the next window analysis uses, oldest first (``window`` mode only)."""
        if self._ring is None:
            raise ValueError("values() needs window=N; with window=None the steps are streamed")
        self._flush()
        return self._ring.values()

    def detrend_in_use(self) -> Any:
        """The detrend the next result uses (``"auto"`` resolved for the run so far)."""
        self._flush()
        if self.auto and self.window is None:
            return auto_detrend(self._n_values) if self._short is not None else AUTO_MOVING_AVERAGE
        return self.detrend

    def result(self) -> Any:
        """The analysis of every step so far (or of the last ``window`` steps).

        Raises ``ValueError`` (from the analysis) with fewer than 20 finite values.
        """
        self._flush()
        if self._cached is not None and self._cached[0] == self._n_values:
            return self._cached[1]
        if self._short is not None:  # "auto", streaming, a short run so far
            kwargs = {**self._analyze_kwargs, "detrend": auto_detrend(self._n_values)}
            result = self._analyze(np.concatenate(self._short or [np.empty(0)]), **kwargs)
        elif self._stream is not None:
            result = self._stream.result()
        else:
            result = self._analyze(self.values(), **self._analyze_kwargs)
        if self.auto:
            result = _with_choice(result, describe_auto(self._n_values, self.window))
        self._cached = (self._n_values, result)
        return result

    def _check(self, *, final: bool = False) -> Any:
        """Analyse, keep and log; never raises. Returns the result or None."""
        t0 = time.perf_counter()
        result = self._safe_result()
        if result is not None:
            self.n_checks += 1
            self.history.append(result)
            self.history_steps.append(self.last_step)
            self.reporter.log_check(result, self._step_label())
        t1 = time.perf_counter()
        nxt = self.budget.next_check(
            t0, t1, self.n_steps, final=final, streaming=self._stream is not None
        )
        if nxt is not None:
            self._next_check = nxt
        return result

    def _step_label(self) -> int:
        return int(self.last_step if self.last_step is not None else self.n_steps)

    def _safe_result(self) -> Any:
        self._flush()  # one device transfer per check; NaN and inf are dropped here
        if self._n_values < self._min_values:
            return None
        try:
            with warnings.catch_warnings():
                # e.g. "degenerate result" on the first, short checks: expected while
                # training, and a warning per check would flood the training log
                warnings.simplefilter("ignore", RuntimeWarning)
                return self.result()
        except Exception as exc:  # noqa: BLE001 - a check must never stop training
            self.warn_once(
                "analysis",
                f"{self.name}: the check at step {self.last_step} failed "
                f"({type(exc).__name__}: {exc}); training continues, this check is skipped.",
            )
            return None

    def warn_once(self, what: str, message: str) -> None:
        """A RuntimeWarning, once per ``what`` for this monitor."""
        if what not in self._warned:
            self._warned.add(what)
            warnings.warn(message, RuntimeWarning, stacklevel=4)

    # -- W&B and the end ---------------------------------------------------------

    def sink(self) -> Any:
        """The W&B sink for the current run, or None (no run, disabled, or log_to_wandb=False)."""
        return self.reporter.sink()

    def finish(self, step: int | None = None) -> Any:
        """End of training: a last check if steps came after the previous one, then the
        final result in the run summary. Returns the final result, or None (too few
        steps). Idempotent: a second call with no new steps returns the same result
        and writes nothing again; steps recorded after it make a new final result."""
        if step is not None:
            self.last_step = int(step)
        self._micro.clear()  # micro-batches of a step the trainer never took
        self._flush()
        if self._finished_at is not None and self._finished_at == self._n_values:
            return None if self._cached is None else self._cached[1]
        if self._cached is None or self._cached[0] != self._n_values:
            self._check(final=True)
        self._finished_at = self._n_values
        if self._cached is None or self._cached[0] != self._n_values:
            if self.n_values < self._min_values:
                self.warn_once(
                    "short",
                    f"{self.name}: only {self.n_values} finite step losses were seen; the "
                    f"analysis needs at least {self._min_values} (detrend={self.detrend!r}), "
                    "so there is no result.",
                )
            self._cached = None
            return None
        result = self._cached[1]
        self.reporter.log_final(
            result, step=self._step_label(), steps=self.n_steps, nonfinite=self.n_nonfinite
        )
        return result
