"""The batch that bounds memory: the longest sequences, by construction.

The memory of a step over token sequences grows with their length (linearly
for the MLPs and embeddings, quadratically for attention scores), so a
ceiling measured on the first batch of a dataset OOMs when a longer batch
arrives. With ``max_length`` the probes use that length:

- ``sample_fn(batch_size, length)`` is called with ``length=max_length``;
- a ``sample`` whose sequences are shorter is lengthened to ``max_length``
  along dimension 1 by repeating its tokens cyclically (every array or tensor
  of two or more dimensions whose dimension 1 is the sample's sequence
  length: ``input_ids``, ``attention_mask``, ``labels`` alike).

Framework-free: the lengthening indexes with a NumPy integer array, which
PyTorch tensors and NumPy arrays both accept (a TensorFlow tensor does not:
pass NumPy arrays to a Keras model, as ``fit`` accepts).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def _positional_arity(fn: Callable[..., Any]) -> tuple[int, int]:
    """(required, maximum) positional parameters of ``fn``; maximum -1 for ``*args``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1, 1
    required = maximum = 0
    for p in params:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            return required, -1
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            maximum += 1
            if p.default is inspect.Parameter.empty:
                required += 1
    return required, maximum


def length_sample_fn(
    sample_fn: Callable[..., Any] | None, max_length: int | None
) -> Callable[[int], Any] | None:
    """``sample_fn`` as a one-argument ``batch_size -> batch`` function at ``max_length``."""
    if sample_fn is None:
        return None
    required, maximum = _positional_arity(sample_fn)
    if max_length is None:
        if required >= 2:
            raise TypeError(
                "sample_fn takes a sequence length (sample_fn(batch_size, length)): pass "
                "max_length=, the longest sequence training will see"
            )
        return sample_fn
    if maximum != -1 and maximum < 2:
        raise TypeError(
            f"max_length={max_length} needs sample_fn(batch_size, length) -> batch; this "
            "sample_fn takes only the batch size"
        )
    return lambda batch_size: sample_fn(batch_size, max_length)


def _sequence_length(sample: Any) -> int | None:
    """Dimension 1 of the first leaf with two or more dimensions (dict order, then tuple)."""
    leaves = (
        list(sample.values())
        if isinstance(sample, Mapping)
        else (list(sample) if isinstance(sample, (list, tuple)) else [sample])
    )
    for leaf in leaves:
        shape = getattr(leaf, "shape", None)
        if shape is not None and len(shape) >= 2:
            return int(shape[1])
    return None


def _lengthen(leaf: Any, length: int, max_length: int) -> Any:
    shape = getattr(leaf, "shape", None)
    if shape is None or len(shape) < 2 or int(shape[1]) != length:
        return leaf
    index = np.arange(max_length) % length
    return leaf[:, index]


def lengthen_sample(sample: Any, max_length: int | None) -> Any:
    """``sample`` with its sequences repeated up to ``max_length`` tokens (see the module doc)."""
    if max_length is None or sample is None:
        return sample
    length = _sequence_length(sample)
    if length is None:
        raise ValueError(
            "max_length needs a sample with sequences (arrays of shape (batch, length, ...)); "
            "this sample has none"
        )
    if length > max_length:
        raise ValueError(
            f"the sample's sequences have {length} tokens, more than max_length={max_length}: "
            "pass the longest length training will see"
        )
    if length == max_length:
        return sample
    if isinstance(sample, Mapping):
        items = {k: _lengthen(v, length, max_length) for k, v in sample.items()}
        try:
            return type(sample)(items)
        except TypeError:
            return items
    if isinstance(sample, (list, tuple)):
        values = [_lengthen(v, length, max_length) for v in sample]
        return tuple(values) if isinstance(sample, tuple) else values
    return _lengthen(sample, length, max_length)


def check_max_length(max_length: Any) -> int | None:
    if max_length is None:
        return None
    if isinstance(max_length, bool) or int(max_length) != max_length or max_length < 1:
        raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
    return int(max_length)
