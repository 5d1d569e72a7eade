"""The on-device loss buffer: step losses kept where they are until one transfer."""

from __future__ import annotations

from typing import Any

import numpy as np

from wandb_batchsize.backends import values_to_host

__all__ = ["PendingLosses", "RingBuffer"]


class PendingLosses:
    """Step losses not yet on the host: device tensors (detached) and floats, in order.

    ``append`` costs a ``detach()`` for a tensor (no host-device synchronisation);
    ``drain`` moves every pending tensor to the host in one transfer
    (``backends.values_to_host``: ``stack`` + one ``.cpu()``).
    """

    __slots__ = ("items", "n", "n_tensors")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.n = 0
        self.n_tensors = 0

    def append(self, value: Any) -> None:
        self.n += 1
        if isinstance(value, (float, int)):
            self.items.append(float(value))
            return
        detach = getattr(value, "detach", None)
        if detach is None:  # numpy scalar, 0-d array, anything float() accepts
            self.items.append(float(np.asarray(value, dtype=np.float64).reshape(-1).mean()))
            return
        value = detach()
        if value.numel() != 1:  # a per-sample loss vector: its mean is the step loss
            value = value.float().mean()
        self.items.append(value)
        self.n_tensors += 1

    def drain(self) -> np.ndarray:
        """All pending values as one float64 host array; one device transfer for the tensors."""
        items, n_tensors = self.items, self.n_tensors
        self.items, self.n, self.n_tensors = [], 0, 0
        if not items:
            return np.empty(0)
        if n_tensors == 0:
            return np.asarray(items, dtype=np.float64)
        if n_tensors == len(items):
            return values_to_host(items)
        host = iter(values_to_host([v for v in items if not isinstance(v, float)]))
        return np.array([v if isinstance(v, float) else next(host) for v in items])


class RingBuffer:
    """The last ``size`` host values, in O(size) memory."""

    __slots__ = ("buffer", "n", "pos", "size")

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.buffer = np.empty(self.size)
        self.pos = 0  # where the next value goes
        self.n = 0  # values added in all

    def add(self, values: np.ndarray) -> None:
        ring, w = self.buffer, self.size
        self.n += int(values.size)
        if values.size >= w:
            ring[:] = values[-w:]
            self.pos = 0
            return
        end = self.pos + values.size
        if end <= w:
            ring[self.pos : end] = values
        else:
            cut = w - self.pos
            ring[self.pos :] = values[:cut]
            ring[: end - w] = values[cut:]
        self.pos = end % w

    def values(self) -> np.ndarray:
        """The values kept, oldest first."""
        if self.n < self.size:
            return self.buffer[: self.n].copy()
        return np.concatenate([self.buffer[self.pos :], self.buffer[: self.pos]])
