"""What a critical-batch measurement logs to W&B, and its key names.

Summary (and one history row): ``critical_batch/B_crit``, ``B_crit_low``,
``B_crit_high``, ``S_min``, ``E_min``, ``B_noise``, ``bracketed``, ``lr_max``,
``target``, ``samples_used``, ``seconds``; ``critical_batch/table`` (one row
per branch); ``critical_batch/chart``: steps to target against batch size,
measured and fitted, log-log. The chart is drawn on W&B's built-in line
preset with ``log2(batch)`` and ``log10(steps)`` columns, so it is log-log in
any entity; :data:`~wandb_batchsize.critical.vega.CRITICAL_BATCH_SPEC` is a
Vega-Lite preset with true log axes (add it once as a custom chart preset and
pass its name as ``preset=``). The monitor's series (``local_B_crit`` ...) are
logged against ``critical_batch/step``. wandb is imported only once a run is
active; nothing here raises.
"""

from __future__ import annotations

import math
from typing import Any

from wandb_batchsize.tracking.run import WandbSink, reraise, table_cell

PREFIX = "critical_batch"
B_CRIT = f"{PREFIX}/B_crit"
B_CRIT_LOW = f"{PREFIX}/B_crit_low"
B_CRIT_HIGH = f"{PREFIX}/B_crit_high"
S_MIN = f"{PREFIX}/S_min"
E_MIN = f"{PREFIX}/E_min"
B_NOISE = f"{PREFIX}/B_noise"
BRACKETED = f"{PREFIX}/bracketed"
LR_MAX = f"{PREFIX}/lr_max"
TARGET = f"{PREFIX}/target"
SAMPLES_USED = f"{PREFIX}/samples_used"
SECONDS = f"{PREFIX}/seconds"
TABLE = f"{PREFIX}/table"
CHART = f"{PREFIX}/chart"
BUILTIN_PRESET = "wandb/line/v0"
TABLE_COLUMNS = [
    "batch_size",
    "lr",
    "steps",
    "samples",
    "reached",
    "diverged",
    "repeat",
    "final_loss",
    "seconds",
]
CHART_COLUMNS = ["batch_size", "steps", "series", "log2_batch_size", "log10_steps"]
#: the monitor's series, against its own step metric
STEP = f"{PREFIX}/step"
LOCAL_B_CRIT = f"{PREFIX}/local_B_crit"
LOCAL_B_CRIT_LOW = f"{PREFIX}/local_B_crit_low"
LOCAL_B_CRIT_HIGH = f"{PREFIX}/local_B_crit_high"
LOCAL_S_MIN = f"{PREFIX}/local_S_min"
LOCAL_BRACKETED = f"{PREFIX}/local_bracketed"
LOCAL_TARGET = f"{PREFIX}/local_target"
LOCAL_SECONDS = f"{PREFIX}/local_seconds"


def _num(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def scalars(result: Any) -> dict[str, Any]:
    """The summary values of ``result`` (non-finite ones left out)."""
    low, high = result.interval
    values = {
        B_CRIT: result.B_crit,
        B_CRIT_LOW: low,
        B_CRIT_HIGH: high,
        S_MIN: result.S_min,
        E_MIN: result.E_min,
        B_NOISE: result.B_noise,
        LR_MAX: result.lr_max,
        TARGET: result.target,
        SECONDS: result.seconds,
    }
    out: dict[str, Any] = {k: _num(v) for k, v in values.items() if _num(v) is not None}
    out[BRACKETED] = bool(result.bracketed)
    out[SAMPLES_USED] = int(result.samples_used)
    return out


def chart_rows(result: Any, points: int = 25) -> list[list[Any]]:
    """Measured steps per size (``series="measured"``) and the fit on a log grid (``"fit"``)."""
    rows = [[int(b), float(s), "measured"] for b, s in sorted(result.steps.items())]
    sizes = sorted(result.steps)
    if len(sizes) >= 2 and math.isfinite(result.S_min) and math.isfinite(result.B_noise):
        lo, hi = math.log2(sizes[0]), math.log2(sizes[-1])
        for i in range(points):
            b = 2.0 ** (lo + (hi - lo) * i / (points - 1))
            rows.append([b, result.steps_for(b), "fit"])
    return [[b, s, kind, math.log2(b), math.log10(s)] for b, s, kind in rows]


def log_critical_batch(result: Any, run: Any | None = None, *, preset: str | None = None) -> bool:
    """Log ``result`` to ``run`` (default the active run): summary, table, chart. Never raises."""
    sink = WandbSink(run, name="measure_critical_batch")
    if not sink.enabled:
        return False
    try:
        import wandb

        table = wandb.Table(
            columns=TABLE_COLUMNS,
            data=[[table_cell(row.as_dict()[c]) for c in TABLE_COLUMNS] for row in result.table],
        )
        curve = wandb.Table(columns=CHART_COLUMNS, data=chart_rows(result))
        title = f"steps to target vs batch size, B_crit = {result.B_crit:.4g}"
        if preset:
            fields = {"x": "batch_size", "y": "steps", "series": "series"}
        else:
            preset = BUILTIN_PRESET
            fields = {"x": "log2_batch_size", "y": "log10_steps", "stroke": "series"}
        chart = wandb.plot_table(preset, curve, fields, {"title": title})
    except Exception as exc:  # noqa: BLE001 - W&B must never stop the caller
        return sink._guard("table", reraise, exc)
    values = scalars(result)
    ok = sink.log({**values, TABLE: table, CHART: chart})
    return sink.summary_update(values) and ok


def log_local(sink: WandbSink, step: int, result: Any) -> bool:
    """One point of the monitor's series at training ``step``."""
    if not sink.enabled:
        return False
    sink.define_step_metric(f"{PREFIX}/local_*", STEP)
    low, high = result.interval
    row = {
        STEP: int(step),
        LOCAL_B_CRIT: _num(result.B_crit),
        LOCAL_B_CRIT_LOW: _num(low),
        LOCAL_B_CRIT_HIGH: _num(high),
        LOCAL_S_MIN: _num(result.S_min),
        LOCAL_TARGET: _num(result.target),
        LOCAL_SECONDS: float(result.seconds),
        LOCAL_BRACKETED: bool(result.bracketed),
    }
    return sink.log({k: v for k, v in row.items() if v is not None})


