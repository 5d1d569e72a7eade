"""The seed's Keras API, kept working: ``find_optimal_batch_size`` and ``calculate_adjusted_epochs``.

    from wandb_batchsize.keras import find_optimal_batch_size, calculate_adjusted_epochs

    batch_size = find_optimal_batch_size(model, input_shape=(224, 224, 3))
    epochs = calculate_adjusted_epochs(100, reference_batch=256, actual_batch=batch_size)

``find_optimal_batch_size`` is :func:`wandb_batchsize.find_batch_size` with the
seed's signature and return value (an ``int``): same progress table, same W&B
keys (``batch_finder/*`` in the summary, ``batch_size`` and
``batch_size_source="dynamic_finder"`` in the config). Two things differ from
the seed, on purpose: the search predicts the ceiling from memory readings
where it has them (fewer probes, fewer OOMs than doubling + bisection), and
the final rounding is the explicit ``multiple_of`` (default 8; the seed's
"multiple of 32" was not applied: 768 x 0.9 = 691).

Importing this module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from wandb_batchsize.analysis.schedules import calculate_adjusted_epochs

__all__ = ["calculate_adjusted_epochs", "find_optimal_batch_size"]  # noqa: F822 - lazy


def find_optimal_batch_size(
    model: Any,
    input_shape: tuple[int, ...],
    min_batch_size: int = 2,
    max_batch_size: int = 4096,
    safety_factor: float = 0.9,
    verbose: bool = True,
    log_to_wandb: bool = True,
    *,
    multiple_of: int = 8,
    target_memory: int | str | None = None,
) -> int:
    """The largest batch size that trains ``model`` in memory, times ``safety_factor``.

    ``input_shape`` is the shape of one sample (no batch dimension). Targets
    are made from the model's output shape (integer labels for a sparse loss).
    Returns the batch size as an ``int``; for every probe, the fit and the
    largest fitting size use :func:`wandb_batchsize.find_batch_size`.
    """
    from wandb_batchsize.memory import find_batch_size

    result = find_batch_size(
        model,
        input_shape=tuple(input_shape),
        min_batch_size=min_batch_size,
        max_batch_size=max_batch_size,
        safety_factor=safety_factor,
        multiple_of=multiple_of,
        target_memory=target_memory,
        verbose=verbose,
        log_to_wandb=log_to_wandb,
    )
    return int(result.batch_size)


def __getattr__(name: str) -> Any:
    if name == "calculate_adjusted_epochs":
        value = importlib.import_module(
            "wandb_batchsize.analysis.schedules"
        ).calculate_adjusted_epochs
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
