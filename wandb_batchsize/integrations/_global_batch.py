"""Keeping a global batch under a memory ceiling: per-device batch x accumulation x world size.

``global = per_device * accumulation * world_size``, exactly. With ``P =
global / world_size`` samples per rank and a per-device ceiling ``C``, the
per-device batch is the largest divisor of ``P`` that is at most ``C``, and
``accumulation = P / per_device``. When ``P`` has no divisor close to ``C``
(a prime ``P`` leaves only 1) the per-device batch is smaller than the memory
allows: :class:`GlobalBatch` says so in ``note``, and the caller prints it.
Framework-free; used by the Lightning and Transformers finders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class GlobalBatch:
    """How a global batch is split: ``per_device * accumulation * world_size == global_batch``."""

    global_batch: int
    world_size: int
    per_device: int
    accumulation: int
    ceiling: int
    note: str = ""


def _largest_divisor_at_most(n: int, limit: int) -> int:
    """The largest ``d`` with ``n % d == 0`` and ``d <= limit`` (divisor pairs up to sqrt(n))."""
    best = 1
    for small in range(1, math.isqrt(n) + 1):
        if n % small:
            continue
        for d in (small, n // small):
            if best < d <= limit:
                best = d
    return best


def split_global_batch(global_batch: int, world_size: int, ceiling: int) -> GlobalBatch:
    """Split ``global_batch`` over ``world_size`` ranks with at most ``ceiling`` samples a step.

    Raises ``ValueError`` when the global batch is not a positive integer, is
    smaller than the world size, or is not a multiple of it.
    """
    if isinstance(global_batch, bool) or int(global_batch) != global_batch or global_batch < 1:
        raise ValueError(f"global_batch_size must be a positive integer, got {global_batch!r}")
    global_batch, world_size, ceiling = int(global_batch), int(world_size), int(ceiling)
    if world_size < 1:
        raise ValueError(f"world size must be at least 1, got {world_size}")
    if ceiling < 1:
        raise ValueError(f"the memory ceiling must be at least 1 sample, got {ceiling}")
    if global_batch < world_size:
        raise ValueError(
            f"global_batch_size={global_batch} is smaller than the world size {world_size}: "
            "every rank needs at least one sample a step; ask for a global batch of at "
            f"least {world_size}"
        )
    if global_batch % world_size:
        lower = global_batch // world_size * world_size
        raise ValueError(
            f"global_batch_size={global_batch} is not a multiple of the world size "
            f"{world_size}, so the ranks cannot share it equally; use {lower} or "
            f"{lower + world_size}"
        )
    per_rank = global_batch // world_size
    per_device = _largest_divisor_at_most(per_rank, ceiling)
    note = ""
    if per_device < min(per_rank, ceiling):
        note = (
            f"{per_rank} samples per rank (global {global_batch} / {world_size} ranks) have no "
            f"divisor between {per_device} and the memory ceiling {ceiling}: training at "
            f"{per_device} per device x {per_rank // per_device} accumulation steps keeps the "
            f"global batch exactly; a global batch with more divisors (a multiple of "
            f"{world_size * 8}, say) would use more of the memory"
        )
    return GlobalBatch(
        global_batch=global_batch,
        world_size=world_size,
        per_device=per_device,
        accumulation=per_rank // per_device,
        ceiling=ceiling,
        note=note,
    )
