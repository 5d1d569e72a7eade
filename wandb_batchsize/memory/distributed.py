"""Agreement between ranks under ``torch.distributed``: every rank probes, all agree.

Each rank probes the same batch size on its own device with no collective
inside the step (DDP is unwrapped by the backend), then the outcomes are
all-reduced: a batch size fits only if it fitted on every rank, the headroom
is the smallest, the peak the largest. Every rank then feeds the same outcome
to the same deterministic strategy, so all ranks ask for the same next batch
size and run the same number of all-reduces: a rank that ran out of memory
never leaves another one waiting, and the result is the minimum over ranks.

A rank that raises something other than an OOM (or is interrupted) leaves the
others waiting in the next all-reduce until the process group's timeout, as
any collective does; the error itself propagates on that rank unchanged.

Framework-free: the collective is the torch backend's
(:mod:`wandb_batchsize.backends.torch_distributed`), used only when torch is
loaded and a process group with more than one rank exists.
"""

from __future__ import annotations

import math
import sys

from wandb_batchsize.memory.search import ProbeOutcome


def _torch_distributed():  # noqa: ANN202 - a module or None
    if "torch" not in sys.modules:
        return None
    from wandb_batchsize.backends import torch_distributed

    return torch_distributed


def world_size() -> int:
    module = _torch_distributed()
    return 1 if module is None else module.world_size()


def rank() -> int:
    module = _torch_distributed()
    return 0 if module is None else module.rank()


def agree(outcome: ProbeOutcome) -> ProbeOutcome:
    """The outcome of a probe over all ranks (the local one when not distributed)."""
    module = _torch_distributed()
    if module is None or module.process_group() is None:
        return outcome
    inf = math.inf
    has_reading = outcome.headroom_bytes is not None
    complete = outcome.fitted if outcome.complete is None else outcome.complete
    reduced = module.all_reduce_min(
        [
            1.0 if outcome.fitted else 0.0,
            float(outcome.headroom_bytes) if has_reading else inf,
            -float(outcome.peak_bytes) if outcome.peak_bytes is not None else inf,
            1.0 if has_reading else 0.0,
            float(outcome.budget_bytes) if outcome.budget_bytes is not None else inf,
            1.0 if complete else 0.0,
        ]
    )
    fitted, headroom, neg_peak, readings, budget, complete_all = reduced
    error = outcome.error
    if fitted < 1 and outcome.fitted:
        error = "out of memory on another rank"
    return ProbeOutcome(
        fitted=fitted >= 1,
        peak_bytes=None if math.isinf(neg_peak) else int(-neg_peak),
        headroom_bytes=int(headroom) if readings >= 1 and math.isfinite(headroom) else None,
        budget_bytes=None if math.isinf(budget) else int(budget),
        error=error,
        complete=complete_all >= 1,
    )
