"""Recording a memory-search result on W&B (``find_batch_size(..., log_to_wandb=True)``).

- Config: ``batch_size`` and ``batch_size_source="dynamic_finder"``, updated
  with ``allow_val_change=True`` so an existing value never crashes the run. A
  different existing value is replaced, with a note saying so.
- Inside a W&B sweep whose parameters set ``batch_size``, the sweep's value
  wins: it stays in the config, ``batch_size_source`` becomes ``"sweep"``, and
  a warning says which size the finder would have chosen.
- Summary: ``batch_finder/model_params``, ``batch_finder/model_memory_mb``,
  ``batch_finder/optimal_batch_size`` (the confirmed size),
  ``batch_finder/max_fitting``, ``batch_finder/cap_reached`` (``max_batch_size``
  fitted: the true ceiling is higher), ``batch_finder/confirmed``,
  ``batch_finder/confirm_steps``, ``batch_finder/step_downs`` and
  ``batch_finder/step_down_sizes`` (the sizes that failed their confirmation),
  with ``find_eval_batch_size`` ``batch_finder/eval_batch_size`` and
  ``batch_finder/eval_max_fitting``, and the table ``batch_finder/probes``
  (one row per probe, the evaluation search's rows with an ``eval`` phase).

With no active run the result waits for the next run the process starts
(:mod:`wandb_batchsize.tracking.pending`). With no run ever started, nothing
is logged and nothing fails. A W&B error only warns.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Any

from wandb_batchsize.tracking import keys
from wandb_batchsize.tracking.run import WandbSink, active_run, in_sweep

SOURCE = "find_batch_size"


def _swept_batch_size(run: Any) -> Any | None:
    if not in_sweep(run):
        return None
    try:
        return run.config.get(keys.CONFIG_BATCH_SIZE)
    except Exception:  # noqa: BLE001
        return None


def apply_result(run: Any, result: Any, *, verbose: bool = True) -> dict[str, Any]:
    """Record ``result`` (a ``MemorySearchResult``) on ``run``; returns the config written."""
    sink = WandbSink(run, name=SOURCE)
    config = dict(result.config)
    swept = _swept_batch_size(run)
    if swept is not None:
        config = {keys.CONFIG_BATCH_SIZE_SOURCE: "sweep"}
        warnings.warn(
            f"find_batch_size: this W&B sweep set batch_size={swept}; keeping it. The "
            f"finder's choice, {result.batch_size} (largest fitting {result.max_fitting}), "
            f"is in the summary as {keys.BATCH_FINDER_OPTIMAL}.",
            UserWarning,
            stacklevel=3,
        )
    else:
        try:
            old = run.config.get(keys.CONFIG_BATCH_SIZE)
        except Exception:  # noqa: BLE001
            old = None
        if old is not None and old != result.batch_size and verbose:
            print(
                f"find_batch_size: replacing batch_size={old} in the W&B config with "
                f"{result.batch_size} (batch_size_source=dynamic_finder)",
                flush=True,
            )
    sink.config_update(config, allow_val_change=True)
    summary = dict(result.summary())
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        columns, rows = result.probe_rows()
        with contextlib.suppress(Exception):  # the scalars still go in
            summary[keys.BATCH_FINDER_PROBES] = wandb.Table(columns=columns, data=rows)
    sink.summary_update(summary)
    return config


def log_result(result: Any, *, verbose: bool = True) -> str:
    """Record ``result`` on the active run, or on the next one started.

    Returns ``"run"`` (logged now), ``"pending"`` (waiting for ``wandb.init``)
    or ``"off"`` (``WANDB_MODE=disabled``: nothing to do).
    """
    run = active_run()
    if run is not None:
        apply_result(run, result, verbose=verbose)
        return "run"
    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        return "off"
    from wandb_batchsize.tracking import pending

    pending.defer(SOURCE, apply=lambda new_run: apply_result(new_run, result, verbose=verbose))
    if verbose:
        print(
            "find_batch_size: no W&B run yet; batch_size and batch_finder/* will be recorded "
            "on the next wandb.init() of this process",
            flush=True,
        )
    return "pending"
