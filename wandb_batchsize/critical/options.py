"""Argument checks and defaults of a measurement: integers, the reference lr, the grid."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from wandb_batchsize.critical import fit
from wandb_batchsize.critical.branch import is_sample_fn

DEFAULT_REFERENCE_BATCH = 8
#: the default grid spans this factor above the reference batch (8 .. 1024)
DEFAULT_SPAN = 128


def positive_int(value: Any, name: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or int(value) != value
        or value < 1
    ):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def reference_lr(
    backend: Any, lr: float | None, kwargs: Mapping[str, Any] | None, optimizer: Any
) -> float:
    if lr is None and kwargs and kwargs.get("lr") is not None:
        lr = kwargs["lr"]
    if lr is None and optimizer is not None:
        lr = backend.new_optimizer()[1]
    if lr is None or not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(
            f"lr must be a positive learning rate that trains at reference_batch, got {lr!r}"
        )
    return float(lr)


def grid(
    backend: Any,
    data: Any,
    reference_batch: int,
    batch_sizes: Sequence[int] | None,
    top: int | None,
) -> list[int]:
    if batch_sizes is not None:
        sizes = sorted({positive_int(b, "every batch size") for b in batch_sizes})
        if len(sizes) < 2:
            raise ValueError(f"batch_sizes needs at least two sizes, got {list(batch_sizes)}")
        return sizes
    reference_batch = positive_int(reference_batch, "reference_batch")
    n = None if is_sample_fn(data) else backend.data_len(data)
    if top is None:
        top = reference_batch * DEFAULT_SPAN
    if n is not None:
        top = min(int(top), int(n))
    return fit.geometric_grid(reference_batch, positive_int(top, "max_batch_size"))
