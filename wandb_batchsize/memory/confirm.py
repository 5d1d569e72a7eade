"""Proving the returned size: full training steps after the search, stepping down until they run.

A search ends at the largest size that fitted *while it probed*. What the
user trains with runs later, in a process that the probes have changed: the
caching allocators keep blocks (CUDA's is fragmented by the probes near the
limit), glibc keeps heap pages and address space (its dynamic mmap threshold
moves large tensors onto a heap that is rarely given back), oneDNN keeps a
primitive per shape. Seen on the CPU under ``RLIMIT_AS``: a search found 256,
the process then held all 256 MiB of its cap in address space, and the very
first training step at 224 (the size after the safety factor) failed.

So after the search, memory is released (gc, the device caches, glibc's
``malloc_trim``) and the size is *confirmed*: ``confirm_steps`` full training
steps (the user's optimizer, the user's ``step_fn``) at that size, from the
restored state, restored again afterwards. When they do not run, the size
steps down — first by the search's tolerance, then halving the gap to
``min_batch_size`` each time — until they do (:func:`step_down`). Framework-free:
the attempts are probes (:class:`~wandb_batchsize.memory.probe.MemoryProbe`
with ``steps=confirm_steps``) run by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from wandb_batchsize.memory.search import ProbeOutcome


@dataclass(frozen=True)
class Confirmation:
    """What the confirmation found.

    ``batch_size`` ran ``steps`` full training steps right after the search
    (``confirmed``); ``step_downs`` are the sizes tried first that did not,
    in order; ``seconds`` the time all attempts took.
    """

    batch_size: int
    confirmed: bool
    steps: int
    step_downs: tuple[int, ...] = ()
    seconds: float = 0.0
    error: str | None = None


def _align(value: int, multiple_of: int) -> int:
    if multiple_of > 1 and value >= multiple_of:
        return value // multiple_of * multiple_of
    return value


def step_down(
    size: int,
    attempt: int,
    *,
    min_batch_size: int,
    tolerance: float,
    multiple_of: int = 1,
) -> int | None:
    """The next size after ``size`` failed its ``attempt``-th confirmation (0 = the first).

    The first step is by the search's tolerance, ``floor(size * (1 - tolerance))``
    (at least 1 % lower); the next ones halve the gap to ``min_batch_size``,
    ``min + (size - min) // 2``. Sizes are rounded down to ``multiple_of`` where
    they are at least one multiple, and always decrease. ``None`` once
    ``size`` is ``min_batch_size``: nothing smaller is allowed.
    """
    if size <= min_batch_size:
        return None
    if attempt == 0:
        nxt = math.floor(size * (1 - max(float(tolerance), 0.01)))
    else:
        nxt = min_batch_size + (size - min_batch_size) // 2
    aligned = _align(nxt, multiple_of)
    nxt = aligned if aligned >= min_batch_size else nxt
    nxt = min(nxt, size - 1)
    return max(nxt, min_batch_size)


def confirm(
    attempt: Callable[[int], ProbeOutcome],
    size: int,
    *,
    steps: int,
    min_batch_size: int,
    tolerance: float,
    multiple_of: int = 1,
    on_attempt: Callable[[int, ProbeOutcome], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> Confirmation:
    """Run ``attempt(size)`` (``steps`` training steps) and step down until one fits.

    ``attempt`` must restore the state before returning (the finder runs each
    one inside a restoring guard). Returns a :class:`Confirmation` with
    ``confirmed=False`` when even ``min_batch_size`` did not fit; the caller
    decides what that means. ``steps=0`` skips the confirmation.
    """
    import time

    clock = clock or time.perf_counter
    if steps <= 0:
        return Confirmation(batch_size=size, confirmed=False, steps=0)
    start = clock()
    failed: list[int] = []
    current: int | None = size
    error = None
    while current is not None:
        outcome = attempt(current)
        if on_attempt is not None:
            on_attempt(current, outcome)
        if outcome.fitted:
            return Confirmation(
                batch_size=current,
                confirmed=True,
                steps=steps,
                step_downs=tuple(failed),
                seconds=clock() - start,
            )
        failed.append(current)
        error = outcome.error
        current = step_down(
            current,
            len(failed) - 1,
            min_batch_size=min_batch_size,
            tolerance=tolerance,
            multiple_of=multiple_of,
        )
    return Confirmation(
        batch_size=min_batch_size,
        confirmed=False,
        steps=steps,
        step_downs=tuple(failed),
        seconds=clock() - start,
        error=error,
    )
