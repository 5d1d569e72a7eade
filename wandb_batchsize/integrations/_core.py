"""The framework-free core of every training monitor: buffer, check, log.

Each framework adapter (``integrations.torch``, ``.keras``, ``.lightning``,
``.transformers``) only finds the raw loss of each optimizer step and the
trainer's global step, and hands them to one :class:`MonitorCore`, which

- keeps losses that are still device tensors where they are (``detach()`` only)
  and moves them to the host in one transfer (``stack`` + one ``.cpu()``) per
  check, or per ``FLUSH_EVERY`` steps when checks are rarer than that: no
  host-device synchronisation per step;
- feeds the host values to a :class:`~wandb_batchsize.analysis.streaming.StreamingSusceptibility`
  (``window=None``: every step since the start, O(number of scales) memory) or to
  a ring buffer of the last ``window`` steps analysed with
  :func:`~wandb_batchsize.analysis.susceptibility.analyze` (O(window) memory);
- every ``check_every`` steps computes a result, keeps it in ``history`` (the
  last ``max_history`` checks) and logs it to W&B: the scalars
  ``susceptibility/{K_c,kappa,alpha,tau_int,p_iid,significant,...}`` against the
  step metric ``susceptibility/step`` (the trainer's global step), and chi(K) /
  V(K) as custom charts (``tracking.charts``);
- at the end of training writes the final result to the run summary
  (``susceptibility/final/*`` and the whole result as ``susceptibility/final/result``).

Nothing here imports a framework; torch is looked up in ``sys.modules`` only when
a loss is a tensor (so torch is necessarily imported already). W&B failures warn
once (``tracking.run.WandbSink``) and an analysis failure during a check warns
once: training is never interrupted by the monitor.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from wandb_batchsize.tracking import keys

logger = logging.getLogger("wandb_batchsize")

# Largest number of pending (not yet transferred) step losses: with checks rarer
# than this, device losses are moved in one transfer per FLUSH_EVERY steps.
FLUSH_EVERY = 4096
# Fewest values the analysis accepts; checks before that are skipped quietly.
MIN_VALUES = 20

# Default detrending: a training loss is analysed on its fluctuations, not on its
# downward trend. "auto" is "linear" (the trend of the last N steps) with window=N,
# and a centred moving average of AUTO_MOVING_AVERAGE steps when streaming (a
# linear fit needs the whole series; the moving average follows a curved loss).
DEFAULT_DETREND = "auto"
AUTO_MOVING_AVERAGE = 1000
# Default budget for the time spent in checks, as a fraction of the training time:
# 0.8 %, leaving room for the per-step work (a few microseconds) under 1 % in all.
DEFAULT_MAX_OVERHEAD = 0.008

SCALAR_FIELDS = ("K_c", "kappa", "alpha", "alpha_se", "tau_int", "ess", "K_corr", "p_iid")


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def result_scalars(result: Any, prefix: str = keys.SUSCEPTIBILITY_PREFIX) -> dict[str, Any]:
    """The scalars of one check, W&B-ready: ``{prefix}/K_c``, ``kappa``, ... ``significant``."""
    out: dict[str, Any] = {}
    for name in SCALAR_FIELDS:
        if hasattr(result, name):
            out[f"{prefix}/{name}"] = _float(getattr(result, name))
    out[f"{prefix}/significant"] = int(bool(getattr(result, "is_significant", False)))
    out[f"{prefix}/n"] = int(getattr(result, "n", 0))
    return out


def _json_safe(value: Any) -> Any:
    """A result dict for the W&B summary: non-finite floats become None."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _Pending:
    """Step losses not yet on the host: device tensors (detached) and floats, in order."""

    __slots__ = ("items", "n", "n_tensors")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.n = 0
        self.n_tensors = 0

    def append(self, value: Any) -> None:
        self.n += 1
        if isinstance(value, (float, int)):
            self.items.append(float(value))
            return
        detach = getattr(value, "detach", None)
        if detach is None:  # numpy scalar, 0-d array, anything float() accepts
            self.items.append(float(np.asarray(value, dtype=np.float64).reshape(-1).mean()))
            return
        value = detach()
        if value.numel() != 1:  # a per-sample loss vector: its mean is the step loss
            value = value.float().mean()
        self.items.append(value)
        self.n_tensors += 1

    def drain(self) -> np.ndarray:
        """All pending values as one float64 host array; one device transfer for the tensors."""
        items, n_tensors = self.items, self.n_tensors
        self.items, self.n, self.n_tensors = [], 0, 0
        if not items:
            return np.empty(0)
        if n_tensors == 0:
            return np.asarray(items, dtype=np.float64)
        if n_tensors == len(items):
            return _tensors_to_host(items)
        host = iter(_tensors_to_host([v for v in items if not isinstance(v, float)]))
        return np.array([v if isinstance(v, float) else next(host) for v in items])


def _tensors_to_host(tensors: list[Any]) -> np.ndarray:
    """Stack one-element tensors on their device and copy them to the host at once."""
    torch = sys.modules["torch"]
    try:
        stacked = torch.stack(tensors).reshape(-1)  # shape () or (1,): one value each
    except (RuntimeError, TypeError):  # mixed shapes, dtypes or devices: rare
        stacked = torch.stack([t.reshape(()).float().cpu() for t in tensors])
    host = stacked.cpu()  # the one transfer, in the losses' own dtype
    if host.dtype not in (torch.float32, torch.float64):
        host = host.float()  # half, bfloat16, integers: numpy-compatible first
    return host.numpy().astype(np.float64)


def _combine_micro(values: list[Any], reduce: str) -> Any:
    """One optimizer step's loss from its micro-batch losses, on their device."""
    if len(values) == 1:
        return values[0]
    if all(isinstance(v, float | int) for v in values):
        total = float(sum(values))
        return total if reduce == "sum" else total / len(values)
    torch = sys.modules["torch"]
    stacked = torch.stack(
        [
            v.detach().reshape(()).float() if hasattr(v, "detach") else torch.tensor(float(v))
            for v in values
        ]
    )
    return stacked.sum() if reduce == "sum" else stacked.mean()


class MonitorCore:
    """Buffer, check and log the per-step loss of one training run.

    Parameters are those of every monitor and callback:

    check_every:
        analyse (and log) every this many optimizer steps.
    window:
        ``None``: analyse every step since the start with the streaming
        accumulator (memory independent of the number of steps). An int N:
        analyse the last N steps (a ring buffer of N values).
    detrend:
        passed to the analysis (``"none"``, ``"linear"``, ``"diff"`` or an int
        moving-average window), so that a falling loss curve is analysed on its
        fluctuations, not on its trend. ``"auto"`` (default): ``"linear"`` with
        ``window=N``; a moving average of ``AUTO_MOVING_AVERAGE`` (1000) steps when
        streaming (where ``"linear"`` is not possible), so the first check comes
        after about 1000 steps.
    log_to_wandb:
        log checks to the active W&B run (if any; without a run, or with
        ``WANDB_MODE=disabled``, results are still computed and returned).
    prefix:
        namespace of the W&B keys (default ``"susceptibility"``).
    chart_preset:
        ``None`` logs chi(K) and V(K) on W&B's built-in line preset; the name of
        a custom preset made from ``tracking/vega/susceptibility.json`` logs one
        panel with both curves on log axes and K_c marked.
    log_charts:
        log the chi(K)/V(K) charts at each check (the scalars are always logged).
    max_overhead:
        budget for the time spent in checks (analysis and W&B logging), as a
        fraction of the training time so far (default 0.008, so that with the
        per-step work the monitor stays under 1 %). When checks cost
        more, the following ones are spaced further apart (always a multiple of
        ``check_every`` steps) so that the monitor stays within the budget; the
        final check always runs. ``None`` checks every ``check_every`` steps
        whatever the cost.
    max_history:
        results kept in ``history`` (older checks stay on W&B); ``None`` keeps all.
    run:
        a W&B run, or a callable returning one (adapters pass the trainer's
        logger); default: the active ``wandb.run``.
    analysis_kwargs:
        further parameters of the analysis (``K_min``, ``K_max``, ``n_points``,
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
        if detrend == "auto":
            detrend = "linear" if self.window is not None else AUTO_MOVING_AVERAGE
        self.detrend = detrend
        self.max_overhead = None if max_overhead is None else float(max_overhead)
        self.log_to_wandb = bool(log_to_wandb)
        self.prefix = prefix
        self.chart_preset = chart_preset
        self.log_charts = bool(log_charts)
        self.name = name
        self.analysis_kwargs = dict(analysis_kwargs or {})
        self._run = run
        self._sink: Any = None
        self._sink_run: Any = None

        self.n_steps = 0  # optimizer steps seen (non-finite ones included)
        self.n_nonfinite = 0  # steps whose loss was NaN or inf (dropped)
        self.last_step: int | None = None  # the trainer's global step of the last step
        self.history: deque[Any] = deque(maxlen=max_history)
        self.history_steps: deque[int] = deque(maxlen=max_history)

        self._pending = _Pending()
        self._micro: list[Any] = []
        self._next_check = self.check_every
        self._n_values = 0  # finite values given to the analysis
        self._cached: tuple[int, Any] | None = None
        self._warned: set[str] = set()
        self._t_mark: float | None = None  # end of the last check (or training start)
        self._steps_mark = 0  # n_steps at _t_mark
        self._train_seconds = 0.0  # training time seen between checks
        self._train_steps = 0  # steps in that time
        self._check_seconds = 0.0  # time spent in checks
        self.n_deferred = 0  # checks skipped to respect max_overhead
        self.n_checks = 0  # checks that produced a result

        if self.window is None:
            from wandb_batchsize.analysis.streaming import StreamingSusceptibility

            self._stream: Any = StreamingSusceptibility(
                **self._kwargs_for(StreamingSusceptibility), detrend=detrend
            )
            self._ring: np.ndarray | None = None
        else:
            from wandb_batchsize.analysis.susceptibility import analyze

            self._analyze = analyze
            self._analyze_kwargs = {**self._kwargs_for(analyze), "detrend": detrend}
            self._stream = None
            self._ring = np.empty(self.window)
        self._ring_pos = 0
        # finite values the analysis needs after this detrend: fewer is "not yet"
        extra = 1 if detrend == "diff" else (detrend - 1 if isinstance(detrend, int) else 0)
        self._min_values = MIN_VALUES + extra

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

    def end_step(self, step: int | None = None, *, reduce: str = "sum") -> Any:
        """Close the optimizer step whose micro-batch losses were given to ``add_micro``.

        ``reduce="sum"`` when each micro loss is already divided by the number of
        accumulation steps (Lightning, the Transformers Trainer); ``"mean"`` for raw
        micro losses. Returns a result when this step triggered a check.
        """
        if not self._micro:
            return None
        micro, self._micro = self._micro, []
        return self.record(_combine_micro(micro, reduce), step=step)

    def record(self, loss: Any, step: int | None = None) -> Any:
        """The loss of one optimizer step (float, numpy scalar or tensor, kept on its device).

        ``step`` is the trainer's global step after it (default: steps seen so far).
        Returns a result when this step triggered a check, else None.
        """
        self._pending.append(loss)
        if self._t_mark is None:
            self._t_mark = time.perf_counter()
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
        self._t_mark = time.perf_counter()
        self._steps_mark = self.n_steps

    def steps_to_next_check(self) -> int:
        """Optimizer steps left before the next check."""
        return max(1, self._next_check - self.n_steps)

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
            return
        ring, w = self._ring, self.window
        if values.size >= w:
            ring[:] = values[-w:]
            self._ring_pos = 0
            return
        end = self._ring_pos + values.size
        if end <= w:
            ring[self._ring_pos : end] = values
        else:
            cut = w - self._ring_pos
            ring[self._ring_pos :] = values[:cut]
            ring[: end - w] = values[cut:]
        self._ring_pos = end % w

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
        n = min(self._n_values, self.window)
        if self._n_values < self.window:
            return self._ring[:n].copy()
        return np.concatenate([self._ring[self._ring_pos :], self._ring[: self._ring_pos]])

    def result(self) -> Any:
        """The analysis of every step so far (or of the last ``window`` steps).

        Raises ``ValueError`` (from the analysis) with fewer than 20 finite values.
        """
        self._flush()
        if self._cached is not None and self._cached[0] == self._n_values:
            return self._cached[1]
        if self._stream is not None:
            result = self._stream.result()
        else:
            result = self._analyze(self.values(), **self._analyze_kwargs)
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
            self._log_check(result, self.last_step)
        t1 = time.perf_counter()
        self._schedule_next(t0, t1, final)
        return result

    def _schedule_next(self, t0: float, t1: float, final: bool) -> None:
        """Put the next check ``check_every`` steps on, or further: far enough that the
        time spent in checks, the next one included, stays within ``max_overhead`` of
        the training time so far. The budget is cumulative (a costly first check is
        paid back by later spacing) and, when streaming, plans for the next check
        costing more (about in proportion to N, as the analysis simulates its null
        at length N)."""
        if self._t_mark is not None:
            self._train_seconds += max(t0 - self._t_mark, 0.0)
            self._train_steps += self.n_steps - self._steps_mark
        cost = t1 - t0
        self._check_seconds += cost
        self._t_mark, self._steps_mark = t1, self.n_steps
        if final:  # the end of a fit keeps the schedule it found
            return
        stride = self.check_every
        m = self.max_overhead
        if m is not None and self._train_steps > 0 and self._train_seconds > 0:
            step_time = self._train_seconds / self._train_steps
            n = max(self.n_steps, 1)
            # checks so far + the next one <= m * (training so far + the S steps to it)
            deficit = self._check_seconds + cost - m * self._train_seconds
            rate = m * step_time - (cost / n if self._stream is not None else 0.0)
            if deficit > 0:
                needed = deficit / rate if rate > 0 else 2.0 * n
                stride = max(stride, self.check_every * math.ceil(needed / self.check_every))
                if stride > self.check_every:
                    self.n_deferred += stride // self.check_every - 1
                    logger.info(
                        "%s: a check took %.3f s; next check in %d steps to stay within "
                        "%.1f %% of the training time",
                        self.name,
                        cost,
                        stride,
                        100 * m,
                    )
        self._next_check = self.n_steps + stride
        # keep the schedule on multiples of check_every
        self._next_check -= self._next_check % self.check_every
        if self._next_check <= self.n_steps:
            self._next_check += self.check_every

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

    # -- W&B ---------------------------------------------------------------------

    def sink(self) -> Any:
        """The W&B sink for the current run, or None (no run, disabled, or log_to_wandb=False)."""
        if not self.log_to_wandb:
            return None
        from wandb_batchsize.tracking.run import WandbSink, active_run

        try:
            run = self._run() if callable(self._run) else self._run
        except Exception:  # noqa: BLE001 - a logger that cannot give its run: use wandb.run
            run = None
        if run is False:  # the adapter says: this process does not log (not rank zero)
            return None
        if run is None:
            run = active_run()
        elif getattr(run, "disabled", False):
            run = None
        if run is None:
            return None
        if self._sink is None or self._sink_run is not run:
            self._sink = WandbSink(run, name=self.name)
            self._sink_run = run
            self._sink._guard("define_metric", self._define_metrics, run)
        return self._sink

    def _define_metrics(self, run: Any) -> None:
        """Plot every ``{prefix}/*`` key against ``{prefix}/step``. The glob covers the
        charts; the explicit names win over a framework logger's own ``"*"`` glob
        (W&B's Transformers and Lightning loggers define one)."""
        p = self.prefix
        step_key = f"{p}/step"
        run.define_metric(step_key, hidden=False)
        run.define_metric(f"{p}/*", step_metric=step_key)
        for name in (*SCALAR_FIELDS, "significant", "n"):
            run.define_metric(f"{p}/{name}", step_metric=step_key)

    def _log_check(self, result: Any, step: int | None) -> None:
        sink = self.sink()
        if sink is None:
            return
        row = {f"{self.prefix}/step": int(step if step is not None else self.n_steps)}
        row.update(result_scalars(result, self.prefix))
        if self.log_charts:
            from wandb_batchsize.tracking.charts import log_susceptibility_charts

            log_susceptibility_charts(
                sink, result, prefix=self.prefix, extra=row, preset=self.chart_preset
            )
        else:
            sink.log(row)

    def finish(self, step: int | None = None) -> Any:
        """End of training: a last check if steps came after the previous one, then the
        final result in the run summary. Returns the final result, or None (too few steps)."""
        if step is not None:
            self.last_step = int(step)
        self._micro.clear()  # micro-batches of a step the trainer never took
        self._flush()
        if self._cached is None or self._cached[0] != self._n_values:
            self._check(final=True)
        if self._cached is None or self._cached[0] != self._n_values:
            if self.n_values < self._min_values:
                self.warn_once(
                    "short",
                    f"{self.name}: only {self.n_values} finite step losses were seen; the "
                    f"analysis needs at least {self._min_values} (detrend={self.detrend!r}), "
                    "so there is no result.",
                )
            return None
        result = self._cached[1]
        sink = self.sink()
        if sink is not None:
            sink.summary_update(self._summary(result))
        return result

    def _summary(self, result: Any) -> dict[str, Any]:
        p = f"{self.prefix}/final"
        out = {
            f"{p}/{k.split('/', 1)[1]}": v for k, v in result_scalars(result, self.prefix).items()
        }
        out[f"{p}/step"] = int(self.last_step if self.last_step is not None else self.n_steps)
        out[f"{p}/steps"] = self.n_steps
        out[f"{p}/steps_nonfinite"] = self.n_nonfinite
        out[f"{p}/regime"] = str(getattr(result, "regime", ""))
        with contextlib.suppress(Exception):  # the scalars above are the essentials
            out[f"{p}/result"] = _json_safe(result.to_dict())
        return out


_CORE_OPTIONS = ("prefix", "chart_preset", "log_charts", "max_overhead", "max_history", "run")


class MonitorAPI:
    """What every monitor and callback exposes; adapters add only their framework hooks.

    ``__init__(check_every=500, window=None, detrend="auto", log_to_wandb=True,
    **options)``: options are ``prefix``, ``chart_preset``, ``log_charts``,
    ``max_overhead``, ``max_history``, ``run`` (see :class:`MonitorCore`) and any analysis
    parameter (``K_min``, ``K_max``, ``n_points``, ``min_batches``, ``max_scale``,
    ``n_permutations``, ``seed`` ...).
    """

    _core: MonitorCore

    def _init_core(
        self,
        check_every: int,
        window: int | None,
        detrend: Any,
        log_to_wandb: bool,
        options: Mapping[str, Any],
    ) -> None:
        core_options = {k: options[k] for k in _CORE_OPTIONS if k in options}
        analysis = {k: v for k, v in options.items() if k not in _CORE_OPTIONS}
        self._core = MonitorCore(
            check_every,
            window,
            detrend,
            log_to_wandb,
            name=type(self).__name__,
            analysis_kwargs=analysis,
            **core_options,
        )

    def result(self) -> Any:
        """The analysis of all steps so far (or of the last ``window``): a
        ``SusceptibilityResult``. Raises ``ValueError`` with fewer than 20 finite losses."""
        return self._core.result()

    @property
    def history(self) -> list[Any]:
        """One result per check, oldest first (the last ``max_history`` checks)."""
        return list(self._core.history)

    @property
    def history_steps(self) -> list[int]:
        """The trainer's global step of each result in ``history``."""
        return list(self._core.history_steps)

    @property
    def n_steps(self) -> int:
        """Optimizer steps recorded (steps with a non-finite loss included)."""
        return self._core.n_steps

    def values(self) -> np.ndarray:
        """The step losses the next window analysis uses, oldest first (``window=N`` only)."""
        return self._core.values()

    @property
    def check_every(self) -> int:
        return self._core.check_every

    @property
    def window(self) -> int | None:
        return self._core.window

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(check_every={self.check_every}, window={self.window}, "
            f"steps={self.n_steps}, checks={len(self._core.history)})"
        )
