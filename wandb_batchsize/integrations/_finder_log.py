"""Recording a framework finder's answer on the trainer's W&B run.

The search result goes through :func:`wandb_batchsize.tracking.finder_log.apply_result`
(config ``batch_size``/``batch_size_source``, ``batch_finder/*`` and the probe
table; a sweep's ``batch_size`` wins), with the per-device size actually
trained in the config, plus what the integration set: the per-device batch,
the accumulation, the global batch and the world size
(``batch_finder/per_device_batch_size``, ``batch_finder/accumulation_steps``,
``batch_finder/global_batch_size``, ``batch_finder/world_size``). On the run
given (the Trainer's ``WandbLogger`` run), the active run, or — with none yet,
as for the Transformers ``WandbCallback`` that starts its run in ``train()`` —
on the next run the process starts (:mod:`wandb_batchsize.tracking.pending`).
A W&B failure only warns.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any

PER_DEVICE = "batch_finder/per_device_batch_size"
ACCUMULATION = "batch_finder/accumulation_steps"
GLOBAL_BATCH = "batch_finder/global_batch_size"
WORLD_SIZE = "batch_finder/world_size"


def record(
    result: Any,
    *,
    source: str,
    per_device: int,
    accumulation: int,
    world_size: int,
    config: dict[str, Any],
    run: Any = None,
    verbose: bool = True,
) -> str:
    """Record ``result`` and the split on ``run`` (or the active/next run); returns where.

    ``"run"`` (logged now), ``"pending"`` (waiting for ``wandb.init``), ``"off"``
    (``WANDB_MODE=disabled``) or ``"failed"`` (W&B raised; a warning said so).
    """
    from wandb_batchsize.tracking.finder_log import apply_result
    from wandb_batchsize.tracking.run import WandbSink, active_run

    trained = dataclasses.replace(result, config={**result.config, "batch_size": int(per_device)})
    summary = {
        PER_DEVICE: int(per_device),
        ACCUMULATION: int(accumulation),
        GLOBAL_BATCH: int(per_device) * int(accumulation) * int(world_size),
        WORLD_SIZE: int(world_size),
    }

    def apply(target: Any) -> None:
        try:
            apply_result(target, trained, verbose=verbose)
        except Exception as exc:  # noqa: BLE001 - W&B must never stop training
            warnings.warn(
                f"{source}: recording batch_finder/* on W&B failed ({type(exc).__name__}: "
                f"{exc}); training continues",
                RuntimeWarning,
                stacklevel=2,
            )
        sink = WandbSink(target, name=source)
        sink.config_update(config, allow_val_change=True)
        sink.summary_update(summary)

    target = run if run is not None else active_run()
    if target is not None:
        apply(target)
        return "run"
    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        return "off"
    from wandb_batchsize.tracking import pending

    pending.defer(source, apply=apply)
    if verbose:
        print(
            f"{source}: no W&B run yet; batch_size and batch_finder/* will be recorded on "
            "the next wandb.init() of this process (the Trainer's W&B run)",
            flush=True,
        )
    return "pending"
