"""Small decisions of a measurement: which lr rule applies, and what to warn about."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

KINDS = ("sgd", "adam")


def optimizer_kind_of(optimizer: Any, given: str | None = None) -> str:
    """``"adam"`` for Adam-type optimizers (Adam, AdamW, NAdam, ...), else ``"sgd"``.

    ``optimizer`` is a class, an instance, a name or a factory; ``given``
    overrides the guess (a factory's name may say nothing).
    """
    if given is not None:
        if given not in KINDS:
            raise ValueError(f"optimizer_kind must be 'sgd' or 'adam', got {given!r}")
        return given
    if optimizer is None:
        return "sgd"
    if isinstance(optimizer, str):
        name = optimizer
    else:
        name = getattr(optimizer, "__name__", None) or type(optimizer).__name__
    return "adam" if "adam" in name.lower() else "sgd"


def grid_warnings(
    status: str,
    measured: Sequence[float],
    grid: Sequence[int],
    stop_note: str,
    B_noise: float,
) -> list[str]:
    """Plain-language caveats: knee not bracketed (and how to extend the grid), the grid cut short."""
    out: list[str] = []
    if stop_note and "no fewer steps" not in stop_note:
        out.append(stop_note)
    if status == "too few":
        out.append(
            "fewer than two batch sizes reached the target: no fit; raise max_steps, "
            "lower the target, or give an lr that trains at the reference batch"
        )
        return out
    top, bottom = int(max(measured)), int(min(measured))
    if status == "below":
        out.append(
            f"the knee is not bracketed: steps still fall almost in proportion up to batch size "
            f"{top}, so B_crit = {B_noise:.4g} is a lower bound; extend the grid, e.g. "
            f"max_batch_size={4 * top} (or batch_sizes=[..., {2 * top}, {4 * top}])"
        )
    elif status == "above":
        out.append(
            f"every batch size is already past the knee (B_noise = {B_noise:.4g} < {bottom}): "
            f"B_crit is at most about {bottom}; lower reference_batch, e.g. "
            f"reference_batch={max(1, bottom // 8)}"
        )
    if len(measured) < 3:
        out.append(f"only {len(measured)} batch sizes reached the target: the fit is rough")
    if math.isfinite(B_noise) and len(measured) < len(grid) and status == "below":
        out.append(f"the grid was cut short at {top} of {int(max(grid))}")
    return out
