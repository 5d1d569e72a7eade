"""The ``find_batch_size`` options a framework finder passes through, checked up front."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

#: what every framework finder decides itself: the trainer's step, optimizer and precision
OWNED = (
    "model",
    "optimizer",
    "loss_fn",
    "step_fn",
    "precision",
    "input_shape",
    "log_to_wandb",
    "verbose",
)


def check_finder_options(
    options: dict[str, Any], who: str, also_owned: Iterable[str] = ()
) -> dict[str, Any]:
    """``options`` if every name is a ``find_batch_size`` option the finder ``who`` does not set.

    ``TypeError`` naming the options the finder sets itself (:data:`OWNED` and
    ``also_owned``) or that ``find_batch_size`` does not know, with the allowed names.
    """
    from wandb_batchsize.memory.finder import find_batch_size

    owned = {*OWNED, *also_owned}
    allowed = set(inspect.signature(find_batch_size).parameters) - owned
    taken = sorted(set(options) & owned)
    if taken:
        raise TypeError(
            f"{who} sets {taken} itself: the step is the trainer's own training step, with "
            "its optimizer and its precision"
        )
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"unknown find_batch_size option(s) {unknown}; allowed: {sorted(allowed)}")
    return options
