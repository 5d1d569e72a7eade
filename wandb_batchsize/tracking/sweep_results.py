"""Sweep results back into sweep-mode K_c: ``wandb-batchsize sweep analyze``.

One collector, :func:`collect_sweep_runs`, reads ``(batch_size, metric)`` from
runs shaped as ``wandb.Api`` returns them (``run.config``, ``run.summary_metrics``,
``run.state``, ``run.scan_history(keys=...)``). Online, those are the runs of
``wandb.Api().sweep("ENTITY/PROJECT/SWEEP_ID")``; offline, :class:`OfflineApiRun`
exposes the same four members over run folders read from their files
(``tracking/offline_sweep.py``), so both paths share every line after the source.

Runs that did not finish (crashed, failed, killed, still running), whose run file
cannot be read, that lack the batch size or the metric, or whose metric is not
finite, are skipped and counted by reason. Repeats (several seeds per batch size) are aggregated by
``analyze_sweep``; :func:`log_sweep_analysis` logs the result as one W&B run
(``job_type="sweep-analysis"``): the chi(B) and metric custom charts, the
per-batch table, ``sweep/K_c`` and the figure.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wandb_batchsize.tracking import keys
from wandb_batchsize.tracking.offline_sweep import (  # noqa: F401 - the offline source
    ANALYSIS_JOB_TYPE,
    OfflineApiRun,
    local_sweep_config,
    offline_runs,
    select_group,
    wandb_root,
)

SWEEP_PATH = re.compile(r"^[^/\s]+/[^/\s]+/[^/\s]+$")
REDUCTIONS = ("last", "min", "max")
METRIC_KINDS = ("loss", "steps_to_target", "samples_to_target")


def metric_kind_for(metric: str) -> str:
    """``"steps_to_target"`` / ``"samples_to_target"`` when the metric's name says so,
    else ``"loss"`` (any metric read as a value to compare across batch sizes)."""
    leaf = metric.rsplit("/", 1)[-1]
    if leaf.endswith("samples_to_target"):
        return "samples_to_target"
    if leaf.endswith("steps_to_target"):
        return "steps_to_target"
    return "loss"


def online_sweep(path: str, api: Any | None = None) -> tuple[list[Any], dict[str, Any]]:
    """The runs and the config of the W&B sweep ``ENTITY/PROJECT/SWEEP_ID`` (needs an
    account: ``wandb.Api()`` reads the API key at construction)."""
    if api is None:
        import wandb

        api = wandb.Api()
    sweep = api.sweep(path)
    return list(sweep.runs), dict(sweep.config or {})


# -- collecting (batch_size, metric) -------------------------------------------------


@dataclass(frozen=True)
class SweepRunRecord:
    """One run that entered the analysis."""

    run_id: str
    name: str
    batch_size: int
    metric: float
    seed: Any = None


@dataclass(frozen=True)
class CollectedSweep:
    """The usable runs of a sweep, and how many were skipped for which reason."""

    metric: str
    records: list[SweepRunRecord]
    skipped: dict[str, int] = field(default_factory=dict)
    n_seen: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)  # run folder -> why

    @property
    def batch_sizes(self) -> np.ndarray:
        return np.array([r.batch_size for r in self.records], dtype=float)

    @property
    def metrics(self) -> np.ndarray:
        return np.array([r.metric for r in self.records], dtype=float)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def skipped_text(self) -> str:
        """``"skipped 3 of 12 runs: 2 failed, 1 running"`` (empty when none were)."""
        if not self.skipped:
            return ""
        parts = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        return f"skipped {self.n_skipped} of {self.n_seen} runs: {parts}"

    def per_batch(self) -> list[dict[str, float]]:
        """Mean, standard error (ddof=1; NaN for one run) and count per batch size."""
        rows = []
        for b in sorted({r.batch_size for r in self.records}):
            values = np.array([r.metric for r in self.records if r.batch_size == b], float)
            se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
            rows.append({"batch_size": b, "n": len(values), "mean": float(values.mean()), "se": se})
        return rows


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Mapping):  # a summary entry such as {"min": ..., "max": ...}
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def run_metric(run: Any, metric: str, reduce: str = "last") -> float | None:
    """The run's value of ``metric``: its summary value (``last``; the last history
    value if the summary lacks it), or the ``min`` / ``max`` over its history."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduce!r}; use one of {REDUCTIONS}")
    if reduce == "last":
        value = _number((run.summary_metrics or {}).get(metric))
        if value is not None:
            return value
    values = [
        v
        for v in (_number(row.get(metric)) for row in run.scan_history(keys=[metric]))
        if v is not None
    ]
    if not values:
        return None
    if reduce == "last":
        return values[-1]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return values[-1]
    return min(finite) if reduce == "min" else max(finite)


def collect_sweep_runs(
    runs: Iterable[Any],
    *,
    metric: str,
    reduce: str = "last",
    batch_key: str = "batch_size",
) -> CollectedSweep:
    """``(batch_size, metric)`` of every finished run; the others are counted by reason.

    ``runs`` are ``wandb.Api`` runs or anything with the same ``state``,
    ``config``, ``summary_metrics`` and ``scan_history``.
    """
    records: list[SweepRunRecord] = []
    skipped: Counter[str] = Counter()
    unreadable: dict[str, str] = {}
    n_seen = 0
    for run in runs:
        if getattr(run, "job_type", None) == ANALYSIS_JOB_TYPE:
            continue
        n_seen += 1
        state = str(getattr(run, "state", "") or "unknown")
        if getattr(run, "problem", None):
            unreadable[str(run.path)] = run.problem
        if state != "finished":
            skipped[getattr(run, "skip_reason", None) or state] += 1
            continue
        config = run.config or {}
        b = _number(config.get(batch_key))
        if b is None or b < 1 or b != int(b):
            skipped[f"without an integer {batch_key}"] += 1
            continue
        value = run_metric(run, metric, reduce)
        if value is None:
            skipped[f"without {metric}"] += 1
            continue
        if not math.isfinite(value):
            skipped[f"with non-finite {metric}"] += 1
            continue
        records.append(
            SweepRunRecord(
                run_id=str(getattr(run, "id", "")),
                name=str(getattr(run, "name", "") or getattr(run, "id", "")),
                batch_size=int(b),
                metric=float(value),
                seed=config.get("seed"),
            )
        )
    return CollectedSweep(
        metric=metric,
        records=records,
        skipped=dict(skipped),
        n_seen=n_seen,
        unreadable=unreadable,
    )


def analyze_collected(
    collected: CollectedSweep,
    *,
    metric_kind: str | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Any:
    """Run ``analyze_sweep`` on the collected runs (raises ValueError with < 4 sizes)."""
    from wandb_batchsize.analysis.sweep import analyze_sweep

    kind = metric_kind or metric_kind_for(collected.metric)
    if kind not in METRIC_KINDS:
        raise ValueError(f"unknown metric kind {kind!r}; use one of {METRIC_KINDS}")
    n_sizes = len({r.batch_size for r in collected.records})
    if n_sizes < 4:
        why = f" ({collected.skipped_text()})" if collected.skipped else ""
        raise ValueError(
            f"sweep-mode analysis needs runs at >= 4 distinct batch sizes, got {n_sizes} "
            f"from {len(collected.records)} usable runs{why}"
        )
    return analyze_sweep(
        collected.batch_sizes,
        collected.metrics,
        n_bootstrap=n_bootstrap,
        seed=seed,
        metric_kind=kind,
    )


# -- reporting -----------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def analysis_document(
    result: Any, collected: CollectedSweep, *, source: str, metric_kind: str
) -> dict[str, Any]:
    """The JSON that ``sweep analyze --json`` writes (strict JSON: NaN becomes null)."""
    return {
        "source": source,
        "metric": collected.metric,
        "metric_kind": metric_kind,
        "n_runs_used": len(collected.records),
        "n_runs_seen": collected.n_seen,
        "skipped": collected.skipped,
        "unreadable": collected.unreadable,
        "per_batch": [
            {k: _finite(v) if k in ("mean", "se") else v for k, v in row.items()}
            for row in collected.per_batch()
        ],
        "runs": [
            {
                "id": r.run_id,
                "name": r.name,
                "batch_size": r.batch_size,
                "metric": r.metric,
                "seed": r.seed,
            }
            for r in collected.records
        ],
        "result": result.to_dict(),
    }


def summary_scalars(result: Any) -> dict[str, Any]:
    """``sweep/K_c``, ``sweep/kappa``, ``sweep/alpha``, ``sweep/n_runs`` and, when they
    exist, the K_c interval and ``sweep/B_crit`` with its interval and ``S_min``."""
    out: dict[str, Any] = {
        keys.SWEEP_K_C: float(result.K_c),
        f"{keys.SWEEP_PREFIX}/kappa": _finite(result.kappa),
        f"{keys.SWEEP_PREFIX}/alpha": _finite(result.alpha),
        f"{keys.SWEEP_PREFIX}/n_runs": int(result.n_runs),
    }
    interval = getattr(result, "K_c_interval", None)
    if interval is not None:
        out[f"{keys.SWEEP_PREFIX}/K_c_low"] = _finite(interval[0])
        out[f"{keys.SWEEP_PREFIX}/K_c_high"] = _finite(interval[1])
    b_crit = _finite(getattr(result, "B_crit", None))
    if b_crit is not None:
        out[f"{keys.SWEEP_PREFIX}/B_crit"] = b_crit
        b_int = getattr(result, "B_crit_interval", None)
        if b_int is not None:
            out[f"{keys.SWEEP_PREFIX}/B_crit_low"] = _finite(b_int[0])
            out[f"{keys.SWEEP_PREFIX}/B_crit_high"] = _finite(b_int[1])
        out[f"{keys.SWEEP_PREFIX}/S_min"] = _finite(getattr(result, "S_min", None))
    return {k: v for k, v in out.items() if v is not None}


def per_batch_rows(result: Any) -> list[list[Any]]:
    """Rows of the per-batch table: batch_size, n, mean, se, chi, is_K_c."""
    rows = []
    for b, m, se, n, chi in zip(
        result.batch_sizes,
        result.metric_mean,
        result.metric_se,
        result.counts,
        result.chi_values,
        strict=True,
    ):
        rows.append(
            [
                int(b),
                int(n),
                _finite(m),
                _finite(se),
                _finite(chi),
                bool(float(b) == float(result.K_c)),
            ]
        )
    return rows


PER_BATCH_COLUMNS = ["batch_size", "n_runs", "metric_mean", "metric_se", "chi", "is_K_c"]


def log_sweep_analysis(
    result: Any,
    collected: CollectedSweep,
    *,
    source: str,
    metric_kind: str,
    project: str | None = None,
    entity: str | None = None,
    group: str | None = None,
    mode: str | None = None,
    image: str | Path | None = None,
    wandb_dir: str | Path | None = None,
    settings: Any | None = None,
) -> Any:
    """Log the analysis as one W&B run; return the finished run (None if wandb refused).

    Logged: the chi(B) and metric-versus-B custom charts (``sweep/chi_chart``,
    ``sweep/V_chart``, via ``tracking.charts``), the per-batch table
    (``sweep/table``), the scalars of :func:`summary_scalars` (``sweep/K_c`` ...)
    in the same row and in the summary, and the PNG file ``image`` as ``sweep/plot``.
    ``wandb_dir`` is the run's ``dir`` (its files go to ``<wandb_dir>/wandb/``).
    """
    import wandb

    from wandb_batchsize.tracking.charts import log_susceptibility_charts
    from wandb_batchsize.tracking.run import WandbSink

    if settings is None:
        settings = wandb.Settings(
            silent=True, console="off", x_disable_stats=True, disable_git=True, save_code=False
        )
    run = wandb.init(
        project=project or os.environ.get("WANDB_PROJECT") or "wandb-batchsize",
        entity=entity,
        group=group,
        job_type=ANALYSIS_JOB_TYPE,
        name=f"sweep-analysis-{group}" if group else None,
        mode=mode,
        dir=None if wandb_dir is None else str(wandb_dir),
        config={
            "source": source,
            "metric": collected.metric,
            "metric_kind": metric_kind,
            "n_runs_used": len(collected.records),
            "n_runs_skipped": collected.n_skipped,
        },
        settings=settings,
        reinit="create_new",
    )
    try:
        sink = WandbSink(run, name="wandb-batchsize sweep analyze")
        scalars = summary_scalars(result)
        extra: dict[str, Any] = dict(scalars)
        extra[keys.SWEEP_TABLE] = wandb.Table(
            columns=PER_BATCH_COLUMNS, data=per_batch_rows(result)
        )
        if image is not None:
            extra[f"{keys.SWEEP_PREFIX}/plot"] = wandb.Image(str(image))
        logged = log_susceptibility_charts(
            sink, result, prefix=keys.SWEEP_PREFIX, extra=extra, value_label=collected.metric
        )
        if not logged:  # the charts failed: keep the scalars and the table
            sink.log(extra)
        sink.summary_update(scalars)
    finally:
        run.finish()
    return run
