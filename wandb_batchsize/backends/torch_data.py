"""PyTorch batches: made to a size from a sample, a shape or a function; drawn from data.

- :func:`batch_maker`: ``batch_size -> batch`` from a sample batch (rows repeated
  cyclically), a per-sample ``input_shape`` (seeded random inputs) or a
  ``sample_fn(batch_size)``: the memory search's worst case;
- :func:`data_batches`: endless full batches from a ``Dataset`` (seeded
  shuffle, reshuffled every pass) or a factory ``f(batch_size) -> loader``;
- :func:`batch_len`, :func:`to_device`, :func:`split_batch`: the size of a
  batch, a batch on a device, a batch cut into micro-batches.

Batches are tensors, tuples/lists (namedtuples too) and mappings of tensors
whose first dimension is the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """``obj`` with ``fn`` applied to every tensor in it, containers rebuilt as they were."""
    if torch.is_tensor(obj):
        return fn(obj)
    if isinstance(obj, Mapping):
        mapped = {k: map_tensors(v, fn) for k, v in obj.items()}
        try:
            return type(obj)(mapped)
        except Exception:  # noqa: BLE001 - a mapping type that cannot be rebuilt from a dict
            return mapped
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(map_tensors(v, fn) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_tensors(v, fn) for v in obj)
    return obj


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor on ``device`` (non-blocking copies)."""
    return map_tensors(batch, lambda t: t.to(device, non_blocking=True))


def batch_len(batch: Any) -> int:
    """The number of samples in a batch: the first dimension of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, Mapping):
        values: Iterable[Any] = batch.values()
    elif isinstance(batch, (tuple, list)):
        values = batch
    elif isinstance(batch, np.ndarray):
        return int(batch.shape[0])
    else:
        values = ()
    for value in values:
        try:
            return batch_len(value)
        except TypeError:
            continue
    raise TypeError(f"cannot tell the size of a batch of type {type(batch).__name__}")


def split_batch(batch: Any, parts: int) -> list[Any]:
    """``batch`` cut along its first dimension into ``parts`` micro-batches (as even as can be)."""
    n = batch_len(batch)
    if parts <= 1 or n <= 1:
        return [batch]
    bounds = np.linspace(0, n, min(parts, n) + 1).astype(int)

    def cut(lo: int, hi: int) -> Any:
        return map_tensors(batch, lambda t: t[lo:hi] if t.dim() and t.shape[0] == n else t)

    return [cut(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _leading_size(obj: Any) -> int | None:
    sizes: list[int] = []
    map_tensors(obj, lambda t: sizes.append(t.shape[0]) if t.dim() > 0 else None)
    return max(sizes) if sizes else None


def batch_maker(
    sample: Any = None,
    input_shape: tuple[int, ...] | None = None,
    sample_fn: Callable[[int], Any] | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Callable[[int], Any]:
    """A function ``batch_size -> batch`` on ``device``, from one of the three sources.

    ``sample``: a batch (tensor, tuple/list, dict) whose tensors share a leading
    batch dimension; rows are repeated cyclically to reach the batch size (use
    your *longest* sequences: the probe's memory is the worst case you give it).
    ``input_shape``: per-sample shape, random normal inputs. ``sample_fn``: called
    with the batch size, returns the batch.
    """
    given = sum(x is not None for x in (sample, input_shape, sample_fn))
    if given != 1:
        raise ValueError(
            "give exactly one of: a sample batch, input_shape=(...) (per-sample shape), "
            f"or sample_fn=lambda batch_size: ...; got {given}"
        )
    device = device or torch.device("cpu")
    if sample_fn is not None:
        return lambda b: map_tensors(sample_fn(b), lambda t: t.to(device))
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        generator = torch.Generator().manual_seed(0)  # never the global RNG

        def from_shape(b: int) -> torch.Tensor:
            return torch.randn((b, *shape), generator=generator, dtype=dtype).to(device)

        return from_shape
    n = _leading_size(sample)
    if not n:
        raise ValueError(
            "the sample batch has no tensor with a batch dimension; pass a tensor, a tuple "
            "(inputs, targets) or a dict of tensors whose first dimension is the batch"
        )

    def tile(b: int) -> Any:
        def grow(t: torch.Tensor) -> torch.Tensor:
            if t.dim() == 0 or t.shape[0] != n:
                return t.to(device)
            index = torch.arange(b, device=t.device) % n
            return t.index_select(0, index).to(device)

        return map_tensors(sample, grow)

    return tile


# -- training data -----------------------------------------------------------------


def is_factory(data: Any) -> bool:
    """True for ``f(batch_size) -> batches`` (a callable that is not a Dataset)."""
    return callable(data) and not isinstance(data, Dataset)


def data_len(data: Any) -> int | None:
    """The number of samples of a Dataset or of the dataset behind a factory's loader."""
    if isinstance(data, DataLoader):
        raise TypeError(
            "pass the DataLoader's dataset, or a factory such as "
            "`lambda b: DataLoader(ds, batch_size=b, shuffle=True, drop_last=True)`: "
            "a DataLoader has one fixed batch size"
        )
    if isinstance(data, Dataset) or hasattr(data, "__getitem__"):
        try:
            return len(data)  # type: ignore[arg-type]
        except TypeError:
            return None
    if callable(data):
        try:
            return len(data(1).dataset)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - unknown length: bounded by max_batch only
            return None
    raise TypeError(
        f"dataset must be a torch Dataset or a factory f(batch_size) -> batches, "
        f"got {type(data).__name__}"
    )


def data_batches(
    data: Any, b: int, seed: int, num_workers: int = 0, collate_fn: Any = None
) -> Iterator[Any]:
    """Endless full batches of ``b`` samples from a Dataset or a factory (see the module)."""
    if is_factory(data):
        return _factory_batches(data, b)
    return _dataset_batches(data, b, seed, num_workers, collate_fn)


def _dataset_batches(
    dataset: Dataset, b: int, seed: int, num_workers: int, collate_fn: Any
) -> Iterator[Any]:
    """Endless shuffled full batches of ``dataset``, reshuffled every pass, seeded."""
    gen = torch.Generator().manual_seed(int(seed))
    if type(dataset) is TensorDataset and collate_fn is None:
        tensors = dataset.tensors
        n = len(dataset)
        while True:  # indexing the tensors directly: no per-sample collate
            order = torch.randperm(n, generator=gen)
            for start in range(0, n - b + 1, b):
                idx = order[start : start + b]
                yield tuple(t[idx] for t in tensors)
    loader = DataLoader(
        dataset,
        batch_size=b,
        shuffle=True,
        drop_last=True,
        generator=gen,
        num_workers=num_workers,
        collate_fn=collate_fn,
    )
    while True:
        yield from loader


def _factory_batches(factory: Callable[[int], Iterable[Any]], b: int) -> Iterator[Any]:
    """Full batches from ``factory(b)``, restarted (or rebuilt) when a pass ends."""
    loader = factory(b)
    while True:
        full, seen = 0, set()
        iterator = iter(loader)
        for batch in iterator:
            size = batch_len(batch)
            if size != b:
                seen.add(size)
                continue
            full += 1
            yield batch
        if full == 0:
            raise ValueError(
                f"the loader made by the factory for batch size {b} yielded no batch of {b} "
                f"samples (sizes seen: {sorted(seen) or 'none'}); it must honour the size it "
                "is given, with enough data for one full batch"
            )
        if iterator is loader:  # a one-shot iterator: ask for a new one
            loader = factory(b)


def eval_batches(data: Any, batch_size: int, num_workers: int = 0, collate_fn: Any = None) -> Any:
    """Validation batches: a Dataset in order (``batch_size`` at most), or the iterable given."""
    if isinstance(data, Dataset) and not isinstance(data, DataLoader):
        return DataLoader(
            data,
            batch_size=min(batch_size, max(1, len(data))),  # type: ignore[arg-type]
            shuffle=False,
            num_workers=num_workers,
            collate_fn=collate_fn,
        )
    return data
