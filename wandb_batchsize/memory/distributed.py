"""Agreement between ranks under ``torch.distributed``: every rank probes, all agree.

Each rank probes the same batch size on its own device with no collective
inside the step (DDP is unwrapped by the probe), then the outcomes are
all-reduced: a batch size fits only if it fitted on every rank, the headroom
is the smallest, the peak the largest. Every rank then feeds the same outcome
to the same deterministic strategy, so all ranks ask for the same next batch
size and run the same number of all-reduces: a rank that ran out of memory
never leaves another one waiting, and the result is the minimum over ranks.

A rank that raises something other than an OOM (or is interrupted) leaves the
others waiting in the next all-reduce until the process group's timeout, as
any collective does; the error itself propagates on that rank unchanged.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from wandb_batchsize.memory.search import ProbeOutcome


def process_group() -> Any | None:
    """``torch.distributed`` when it is initialised with more than one rank, else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist if dist.get_world_size() > 1 else None


def world_size() -> int:
    dist = process_group()
    return 1 if dist is None else dist.get_world_size()


def rank() -> int:
    dist = process_group()
    return 0 if dist is None else dist.get_rank()


def _reduce_device(dist: Any) -> Any:
    import torch

    backend = str(dist.get_backend()).lower()
    if "nccl" in backend and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if "xccl" in backend and hasattr(torch, "xpu") and torch.xpu.is_available():
        return torch.device("xpu", torch.xpu.current_device())
    return torch.device("cpu")


def agree(outcome: ProbeOutcome) -> ProbeOutcome:
    """The outcome of a probe over all ranks (the local one when not distributed)."""
    dist = process_group()
    if dist is None:
        return outcome
    import torch

    inf = math.inf
    has_reading = outcome.headroom_bytes is not None
    complete = outcome.fitted if outcome.complete is None else outcome.complete
    local = torch.tensor(
        [
            1.0 if outcome.fitted else 0.0,
            float(outcome.headroom_bytes) if has_reading else inf,
            -float(outcome.peak_bytes) if outcome.peak_bytes is not None else inf,
            1.0 if has_reading else 0.0,
            float(outcome.budget_bytes) if outcome.budget_bytes is not None else inf,
            1.0 if complete else 0.0,
        ],
        dtype=torch.float64,
        device=_reduce_device(dist),
    )
    dist.all_reduce(local, op=dist.ReduceOp.MIN)
    fitted, headroom, neg_peak, readings, budget, complete_all = local.cpu().tolist()
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
