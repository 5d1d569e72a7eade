"""Keras batches: NumPy arrays (or lists/dicts of them) cut, tiled and shuffled by rows.

- :func:`sample_batches`: ``batch_size -> (x, y)`` from a sample batch (rows
  repeated cyclically), a per-sample ``input_shape`` (seeded random inputs) or
  a ``sample_fn``; targets are made from the model's output shapes when the
  source gives inputs only (integer labels for a sparse loss);
- :func:`array_batches`: endless full batches of ``(x, y)`` arrays, shuffled
  with a seeded generator and reshuffled every pass;
- :func:`n_rows`, :func:`take`: the rows of nested arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np


def leaves(x: Any) -> list[Any]:
    if isinstance(x, Mapping):
        return [leaf for v in x.values() for leaf in leaves(v)]
    if isinstance(x, (list, tuple)):
        return [leaf for v in x for leaf in leaves(v)]
    return [x]


def take(x: Any, idx: Any) -> Any:
    """Rows ``idx`` (an index array or a slice) of every array in ``x``."""
    if isinstance(x, Mapping):
        return {k: take(v, idx) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(take(v, idx) for v in x)
    return x[idx]


def n_rows(x: Any) -> int:
    """The number of rows shared by every array in ``x`` (a ValueError when they differ)."""
    found = leaves(x)
    if not found:
        raise ValueError("x is empty")
    sizes = {int(np.shape(leaf)[0]) for leaf in found}
    if len(sizes) != 1:
        raise ValueError(f"the inputs have different numbers of rows: {sorted(sizes)}")
    return sizes.pop()


def _leading(obj: Any) -> int | None:
    if isinstance(obj, dict):
        obj = next(iter(obj.values()), None)
    if isinstance(obj, (list, tuple)):
        obj = obj[0] if obj else None
    shape = getattr(obj, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) > 0 else None


def _tile(obj: Any, n: int, b: int) -> Any:
    if isinstance(obj, dict):
        return {k: _tile(v, n, b) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tile(v, n, b) for v in obj)
    array = np.asarray(obj)
    if array.ndim == 0 or array.shape[0] != n:
        return array
    return array[np.arange(b) % n]


def is_sparse_loss(loss: Any) -> bool:
    """True for a sparse categorical loss (integer targets), by name."""
    if loss is None:
        return False
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or type(loss).__name__
    if callable(loss) and not isinstance(loss, str) and name in ("function", None):
        name = getattr(loss, "__name__", "")
    return "sparse" in str(name).lower()


def output_shapes(model: Any) -> list[tuple[int, ...]]:
    outputs = getattr(model, "outputs", None)
    if outputs:
        return [tuple(o.shape[1:]) for o in outputs]
    shape = model.output_shape
    if isinstance(shape, list):
        return [tuple(s[1:]) for s in shape]
    return [tuple(shape[1:])]


def zero_targets(model: Any, loss: Any, b: int) -> Any:
    """Targets of the model's output shapes (integer labels for a sparse loss)."""
    sparse = is_sparse_loss(loss)
    ys = [
        np.zeros((b, *s[:-1]), dtype=np.int32) if sparse else np.zeros((b, *s), np.float32)
        for s in output_shapes(model)
    ]
    return ys[0] if len(ys) == 1 else ys


def sample_batches(
    model: Any,
    loss: Any,
    sample: Any = None,
    input_shape: tuple[int, ...] | None = None,
    sample_fn: Callable[[int], Any] | None = None,
) -> Callable[[int], tuple[Any, Any]]:
    """``batch_size -> (x, y)`` from exactly one of the three sources (see the module)."""
    given = sum(x is not None for x in (sample, input_shape, sample_fn))
    if given != 1:
        raise ValueError(
            "give exactly one of: a sample batch, input_shape=(...) (per-sample shape), "
            f"or sample_fn=lambda batch_size: ...; got {given}"
        )
    rng = np.random.default_rng(0)  # never the global numpy RNG

    def make(b: int) -> tuple[Any, Any]:
        if sample_fn is not None:
            batch = sample_fn(b)
        elif sample is not None:
            n = _leading(sample)
            if not n:
                raise ValueError("the sample batch has no array with a batch dimension")
            batch = _tile(sample, n, b)
        else:
            x = rng.standard_normal((b, *input_shape), dtype=np.float32)
            return x, zero_targets(model, loss, b)
        if isinstance(batch, tuple) and len(batch) == 2:
            return batch
        return batch, zero_targets(model, loss, b)

    return make


def array_batches(x: Any, y: Any, b: int, seed: int) -> Iterator[tuple[Any, Any]]:
    """Endless full batches of ``b`` rows of ``(x, y)``, shuffled with ``seed``, every pass anew."""
    rng = np.random.default_rng(int(seed))
    n = n_rows(x)
    order, cursor = rng.permutation(n), 0
    while True:
        if cursor + b > n:
            order, cursor = rng.permutation(n), 0
        idx = order[cursor : cursor + b]
        cursor += b
        yield take(x, idx), take(y, idx)
