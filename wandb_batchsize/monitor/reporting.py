"""What a monitor writes to W&B: check rows against a step metric, the final summary.

- each check: the scalars ``{prefix}/{K_c,kappa,alpha,alpha_se,tau_int,ess,K_corr,
  p_iid,significant,n}`` (and ``detrend_window``, the moving-average window the
  check used, 0 for another detrend) against ``{prefix}/step`` (the trainer's
  global step), and chi(K) / V(K) as custom charts (``tracking.charts``);
- the end of training: ``{prefix}/final/*``, the detrend used
  (``{prefix}/final/detrend``) and the whole result as ``{prefix}/final/result``.

W&B failures warn once and never stop training (``tracking.run.WandbSink``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any

from wandb_batchsize.monitor.defaults import SCALAR_FIELDS
from wandb_batchsize.tracking import keys

__all__ = ["Reporter", "json_safe", "result_scalars"]


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
    detrend = (getattr(result, "diagnostics", None) or {}).get("detrend")
    out[f"{prefix}/detrend_window"] = int(detrend) if isinstance(detrend, int) else 0
    return out


def json_safe(value: Any) -> Any:
    """A result dict for the W&B summary: non-finite floats become None."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Reporter:
    """The W&B side of one monitor: finds the run, defines the metrics, logs rows."""

    def __init__(
        self,
        *,
        run: Any,
        enabled: bool,
        prefix: str,
        name: str,
        chart_preset: str | None,
        log_charts: bool,
    ) -> None:
        self.run = run
        self.enabled = bool(enabled)
        self.prefix = prefix
        self.name = name
        self.chart_preset = chart_preset
        self.log_charts = bool(log_charts)
        self._sink: Any = None
        self._sink_run: Any = None

    def sink(self) -> Any:
        """The W&B sink for the current run, or None (no run, disabled, or not logging)."""
        if not self.enabled:
            return None
        from wandb_batchsize.tracking.run import WandbSink, active_run

        try:
            run = self.run() if callable(self.run) else self.run
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
        for name in (*SCALAR_FIELDS, "significant", "n", "detrend_window"):
            run.define_metric(f"{p}/{name}", step_metric=step_key)

    def log_check(self, result: Any, step: int) -> None:
        sink = self.sink()
        if sink is None:
            return
        row = {f"{self.prefix}/step": int(step)}
        row.update(result_scalars(result, self.prefix))
        if self.log_charts:
            from wandb_batchsize.tracking.charts import log_susceptibility_charts

            log_susceptibility_charts(
                sink, result, prefix=self.prefix, extra=row, preset=self.chart_preset
            )
        else:
            sink.log(row)

    def log_final(self, result: Any, *, step: int, steps: int, nonfinite: int) -> None:
        sink = self.sink()
        if sink is not None:
            sink.summary_update(self.summary(result, step=step, steps=steps, nonfinite=nonfinite))

    def summary(self, result: Any, *, step: int, steps: int, nonfinite: int) -> dict[str, Any]:
        p = f"{self.prefix}/final"
        out = {
            f"{p}/{k.split('/', 1)[1]}": v for k, v in result_scalars(result, self.prefix).items()
        }
        out[f"{p}/step"] = int(step)
        out[f"{p}/steps"] = int(steps)
        out[f"{p}/steps_nonfinite"] = int(nonfinite)
        out[f"{p}/regime"] = str(getattr(result, "regime", ""))
        diagnostics = getattr(result, "diagnostics", None) or {}
        out[f"{p}/detrend"] = str(diagnostics.get("detrend", ""))
        if "detrend_choice" in diagnostics:
            out[f"{p}/detrend_choice"] = str(diagnostics["detrend_choice"])
        with contextlib.suppress(Exception):  # the scalars above are the essentials
            out[f"{p}/result"] = json_safe(result.to_dict())
        return out
