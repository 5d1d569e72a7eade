"""The framework-free part of a batch-size probe, by concern (this module re-exports them).

A probe trains briefly at each batch size from the same starting weights, with
a fresh optimizer and the same seed, and records one number per run: the mean
training loss over the last third of the probe (the published definition) or,
when a validation set is given, the validation loss after it. The pairs
``(batch size, metric)`` are then analysed in sweep mode (``analyze_sweep``,
``spec/susceptibility.md``): ``chi = |dM / d log10 B|`` and ``K_c`` where the
metric changes fastest with the batch size.

- :mod:`probe.sizes`: the sizes probed and the budget of each;
- :mod:`probe.result`: ``ProbeRecord``, ``ProbeResult``;
- :mod:`probe.driver`: the loop over sizes and repeats, the analysis;
- :mod:`probe.trainer`: one probe over any framework backend;
- :mod:`probe.log`, :mod:`probe.progress`: W&B and stderr.
"""

from __future__ import annotations

from wandb_batchsize.probe.driver import (
    ProbeBackend,
    TrainOutcome,
    analyze_records,
    build_result,
    choose_metric,
    run_probes,
)
from wandb_batchsize.probe.log import log_probe
from wandb_batchsize.probe.progress import Progress
from wandb_batchsize.probe.result import STATUSES, TABLE_COLUMNS, ProbeRecord, ProbeResult
from wandb_batchsize.probe.sizes import (
    BUDGETS,
    DEFAULT_LARGEST,
    DEFAULT_SMALLEST,
    LR_RULES,
    METRICS,
    MIN_SIZES_FOR_ANALYSIS,
    MIN_STEPS,
    BudgetPlan,
    default_batch_sizes,
    last_third_mean,
    lr_factor,
    plan_budget,
    resolve_batch_sizes,
)

__all__ = [
    "BUDGETS",
    "DEFAULT_LARGEST",
    "DEFAULT_SMALLEST",
    "LR_RULES",
    "METRICS",
    "MIN_SIZES_FOR_ANALYSIS",
    "MIN_STEPS",
    "STATUSES",
    "TABLE_COLUMNS",
    "BudgetPlan",
    "ProbeBackend",
    "ProbeRecord",
    "ProbeResult",
    "Progress",
    "TrainOutcome",
    "analyze_records",
    "build_result",
    "choose_metric",
    "default_batch_sizes",
    "last_third_mean",
    "log_probe",
    "lr_factor",
    "plan_budget",
    "resolve_batch_sizes",
    "run_probes",
]
