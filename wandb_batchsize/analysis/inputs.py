"""Input checks shared by the batch and streaming analyses (spec, "Input")."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MIN_VALUES", "as_array", "clean_series", "check_enough"]

#: fewer finite values than this is an error (spec).
MIN_VALUES = 20

_NAN_POLICIES = ("omit", "raise")


def as_array(values: Any) -> Any:
    """``values`` as something numpy reads: a tensor (an object with ``detach``,
    ``cpu`` and ``numpy``, e.g. a PyTorch tensor on any device, with or without
    grad) becomes ``values.detach().cpu().numpy()``; anything else is unchanged.
    No framework is imported."""
    if all(callable(getattr(values, name, None)) for name in ("detach", "cpu", "numpy")):
        return values.detach().cpu().numpy()
    return values


def clean_series(values: Any, nan_policy: str = "omit") -> tuple[np.ndarray, int]:
    """Return ``(finite float64 1-D array, number of dropped non-finite values)``.

    ``nan_policy="omit"`` drops NaN and +-inf; ``"raise"`` raises ``ValueError``
    naming the first bad index.
    """
    if nan_policy not in _NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {_NAN_POLICIES}, got {nan_policy!r}")
    try:
        x = np.asarray(as_array(values), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"values must be a 1-D sequence of numbers (got {type(values).__name__}): {exc}"
        ) from None
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1:
        raise ValueError(
            f"values must be 1-D (one value per step), got shape {x.shape}; "
            "flatten it or pass one column"
        )
    finite = np.isfinite(x)
    n_bad = int(x.size - np.count_nonzero(finite))
    if n_bad:
        if nan_policy == "raise":
            first = int(np.flatnonzero(~finite)[0])
            raise ValueError(
                f"values[{first}] is {x[first]!r} ({n_bad} non-finite values in all); "
                "drop them or use nan_policy='omit'"
            )
        x = x[finite]
    return x, n_bad


def check_enough(n: int, n_dropped: int = 0, needed: int = MIN_VALUES) -> None:
    """Raise ``ValueError`` when fewer than ``needed`` finite values remain."""
    if n < needed:
        dropped = f" ({n_dropped} non-finite dropped)" if n_dropped else ""
        raise ValueError(
            f"need at least {needed} finite values, got {n}{dropped}; "
            "log more steps before analysing"
        )
