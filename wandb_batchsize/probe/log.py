"""The probe on W&B: its table, the chi(K) chart and ``probe/K_c``."""

from __future__ import annotations

import math
from typing import Any

from wandb_batchsize.probe.result import TABLE_COLUMNS, ProbeResult
from wandb_batchsize.tracking import keys


def log_probe(
    result: ProbeResult, run: Any | None = None, *, prefix: str = keys.PROBE_PREFIX
) -> bool:
    """Log the probe table, the chi(K) chart and ``probe/K_c`` to the active W&B run.

    Keys: ``probe/table`` (a ``wandb.Table`` of every probe), ``probe/chi_chart``
    and ``probe/V_chart`` (chi and the metric against the batch size, on the
    built-in line preset), summary ``probe/K_c``, ``probe/kappa``,
    ``probe/K_c_low``/``probe/K_c_high`` (bootstrap interval with repeats),
    ``probe/metric``, ``probe/budget``, ``probe/samples_per_size``,
    ``probe/oom_batch_size``. Does nothing without a run; never raises.
    """
    from wandb_batchsize.tracking.run import WandbSink, reraise, table_cell

    sink = WandbSink(run, name="probe_batch_sizes")
    if not sink.enabled:
        return False
    try:
        import wandb

        rows = [[table_cell(row[c]) for c in TABLE_COLUMNS] for row in result.table()]
        table = wandb.Table(columns=TABLE_COLUMNS, data=rows)
    except Exception as exc:  # noqa: BLE001 - W&B must never stop the caller
        return sink._guard("table", reraise, exc)
    summary: dict[str, Any] = {
        f"{prefix}/metric": result.metric,
        f"{prefix}/budget": result.budget,
        f"{prefix}/n_sizes": len(result.batch_sizes),
    }
    if result.samples_per_size is not None:
        summary[f"{prefix}/samples_per_size"] = result.samples_per_size
    if result.oom_batch_sizes:
        summary[f"{prefix}/oom_batch_size"] = result.oom_batch_sizes[0]
    sweep = result.sweep
    if sweep is None:
        ok = sink.log({f"{prefix}/table": table})
        summary[f"{prefix}/message"] = result.message
    else:
        scalars = {f"{prefix}/K_c": float(sweep.K_c), f"{prefix}/kappa": float(sweep.kappa)}
        interval = getattr(sweep, "K_c_interval", None)
        if interval is not None and all(_finite(v) for v in interval):
            scalars[f"{prefix}/K_c_low"] = float(interval[0])
            scalars[f"{prefix}/K_c_high"] = float(interval[1])
        from wandb_batchsize.tracking.charts import log_susceptibility_charts

        # one history row: the table, the charts and the scalars together
        ok = log_susceptibility_charts(
            sink,
            sweep,
            prefix=prefix,
            extra={f"{prefix}/table": table, **scalars},
            value_label=result.metric,
        )
        summary.update(scalars)
    return sink.summary_update(summary) and ok


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


