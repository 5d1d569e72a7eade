"""The contract every framework backend meets, and the framework-free parts they share.

A *backend* owns everything one framework needs to run short, exact
experiments on a model: the memory search (:mod:`wandb_batchsize.memory`), the
batch-size probes and the critical-batch measurement
(:mod:`wandb_batchsize.probe`) and the monitors drive a model only through it.

=====================  ===========================================================
concern                methods
=====================  ===========================================================
facts                  ``framework``, ``device_name``, ``model_params``,
                       ``model_memory_bytes``, ``resident_bytes``
batches                ``batch_maker(sample=, input_shape=, sample_fn=)``,
                       ``data_batches(data, b, seed)``, ``data_len(data)``,
                       ``batch_len(batch)``
training               ``seed(seed)``, ``new_optimizer(lr=, lr_factor=)``,
                       ``search_optimizer(user_optimizer)``,
                       ``train_step(batch, optimizer)`` (precision, ``step_fn``,
                       micro-batch accumulation), ``eval_step(batch)``,
                       ``evaluate(data)``, ``zero_grad()``, ``forget_steps()``
state                  ``snapshot(optimizers)`` -> :class:`Snapshot`, restored bitwise
memory                 ``meter(target_bytes)``, ``memory_cap(target_bytes)``,
                       ``is_oom(exc)``, ``release(*objects, full=)``
host                   ``to_host(values)`` (one transfer), ``synchronize(value)``
=====================  ===========================================================

A training step returns the loss *on the device* (detached); nothing in a
backend forces a host sync except ``to_host``, ``synchronize`` and
``evaluate``. Nothing here imports a framework.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: ``precision=`` values a backend accepts: full precision, bfloat16 or float16 autocast
PRECISIONS = (None, "bf16", "fp16")


@runtime_checkable
class Snapshot(Protocol):
    """Everything a step can change, copied in host memory; ``restore()`` puts it back bitwise."""

    def restore(self) -> None: ...


class Meter(Protocol):
    """Brackets one probe: ``start()`` before it, ``stop()`` after it (a ``Reading``)."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> Any: ...

    def over_budget(self, reading: Any) -> bool: ...


class Backend(Protocol):
    """One framework's side of every experiment on a model (see the module docstring)."""

    framework: str
    model: Any

    @property
    def device_name(self) -> str: ...

    @property
    def model_params(self) -> int: ...

    @property
    def model_memory_bytes(self) -> int: ...

    # -- batches
    def batch_maker(
        self,
        sample: Any = None,
        input_shape: tuple[int, ...] | None = None,
        sample_fn: Callable[[int], Any] | None = None,
    ) -> Callable[[int], Any]: ...

    def data_batches(self, data: Any, batch_size: int, seed: int) -> Iterator[Any]: ...

    def data_len(self, data: Any) -> int | None: ...

    def batch_len(self, batch: Any) -> int: ...

    # -- training
    def seed(self, seed: int) -> None: ...

    def new_optimizer(
        self, lr: float | None = None, lr_factor: float = 1.0
    ) -> tuple[Any, float | None]: ...

    def search_optimizer(self, optimizer: Any = None) -> tuple[Any, bool]: ...

    def train_step(self, batch: Any, optimizer: Any, micro_batch_size: int | None = None) -> Any: ...

    def eval_step(self, batch: Any) -> Any: ...

    def evaluate(self, data: Any) -> float: ...

    def zero_grad(self) -> None: ...

    def forget_steps(self) -> None: ...

    # -- state
    def snapshot(self, optimizers: Sequence[Any] = ()) -> Snapshot: ...

    # -- memory
    def meter(self, target_bytes: int | None = None) -> Meter: ...

    def memory_cap(self, target_bytes: int | None) -> contextlib.AbstractContextManager[Any]: ...

    def is_oom(self, exc: BaseException) -> bool: ...

    def release(self, *objects: Any, full: bool = True) -> None: ...

    # -- host
    def to_host(self, values: Sequence[Any]) -> np.ndarray: ...

    def synchronize(self, value: Any = None) -> None: ...


def check_precision(precision: str | None) -> str | None:
    """``precision`` normalised (``"bfloat16"`` -> ``"bf16"``), or a ValueError naming the choices."""
    aliases = {"bfloat16": "bf16", "float16": "fp16", "16": "fp16", "fp32": None, "32": None}
    value = aliases.get(str(precision), precision) if precision is not None else None
    if value not in PRECISIONS:
        raise ValueError(f"precision must be None, 'bf16' or 'fp16', got {precision!r}")
    return value


# -- host RNG streams (Python's and NumPy's), saved by every snapshot ------------------


def host_rng_state() -> tuple[Any, Any]:
    """Python's ``random`` state and NumPy's global state (None when numpy is not loaded)."""
    np_module = sys.modules.get("numpy")
    return random.getstate(), None if np_module is None else np_module.random.get_state()


def restore_host_rng(state: tuple[Any, Any]) -> None:
    python_state, numpy_state = state
    random.setstate(python_state)
    if numpy_state is not None:
        sys.modules["numpy"].random.set_state(numpy_state)


def seed_host(seed: int) -> None:
    """Seed Python's and NumPy's global generators (a backend seeds its framework too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)


@contextlib.contextmanager
def restoring(snapshot: Snapshot, *, release: Callable[[], None] | None = None) -> Iterator[Any]:
    """Yield ``snapshot``; restore it on any exit (an error or KeyboardInterrupt too).

    ``release`` (e.g. a backend's ``release``) runs after the restore.
    """
    try:
        yield snapshot
    finally:
        try:
            snapshot.restore()
        finally:
            if release is not None:
                release()
