"""Agreement between ranks under ``torch.distributed``: every rank probes, all agree.

Each rank probes the same batch size on its own device with no collective
inside the step (DDP is unwrapped by the backend), then the outcomes are
all-reduced: a batch size fits only if it fitted on every rank, the headroom
is the smallest, the peak the largest. Every rank then feeds the same outcome
to the same deterministic strategy, so all ranks ask for the same next batch
size and run the same number of all-reduces: a rank that ran out of memory
never leaves another one waiting, and the result is the minimum over ranks.

A rank whose probe raises something other than an OOM (or is interrupted)
still joins that probe's all-reduce, with an error flag (:func:`guarded`),
before its error propagates unchanged: the other ranks see the flag in the
same all-reduce and raise :class:`PeerError` within seconds, instead of
waiting in the next collective until the process group's timeout.

Framework-free: the collective is the torch backend's
(:mod:`wandb_batchsize.backends.torch_distributed`), used only when torch is
loaded and a process group with more than one rank exists.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable

from wandb_batchsize.memory.search import ProbeOutcome

#: the number of values each agreement all-reduces (one slot is the error flag)
_SLOTS = 7


class PeerError(RuntimeError):
    """Another rank's probe raised an error that is not an out-of-memory error."""


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


def _group():  # noqa: ANN202 - the torch_distributed module when a group exists
    module = _torch_distributed()
    if module is None or module.process_group() is None:
        return None
    return module


def report_failure() -> None:
    """Join the pending agreement all-reduce with the error flag set (this rank failed).

    Never raises: the rank's own error is what must propagate.
    """
    module = _group()
    if module is None:
        return
    with contextlib.suppress(BaseException):  # the caller's own error matters more
        module.all_reduce_min([0.0] * (_SLOTS - 1) + [-1.0])


def guarded(probe: Callable[[int], ProbeOutcome]) -> Callable[[int], ProbeOutcome]:
    """``probe`` whose outcomes are agreed over ranks, and whose errors reach the other ranks."""

    def agreed(batch_size: int) -> ProbeOutcome:
        try:
            outcome = probe(batch_size)
        except BaseException:
            report_failure()
            raise
        return agree(outcome)

    return agreed


def agree(outcome: ProbeOutcome) -> ProbeOutcome:
    """The outcome of a probe over all ranks (the local one when not distributed).

    Raises :class:`PeerError` when another rank reported a failure in this all-reduce.
    """
    module = _group()
    if module is None:
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
            0.0,  # the error flag: -1 from a rank whose probe raised
        ]
    )
    fitted, headroom, neg_peak, readings, budget, complete_all, failed = reduced
    if failed < 0:
        raise PeerError(
            "another rank's memory probe raised an error that is not an out-of-memory "
            "error (see that rank's log); stopping this rank's search too"
        )
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
