"""One branch of a critical-batch measurement: train at (B, lr) from the snapshot until the target.

A branch draws its batches from ``data`` with a fixed seed (every lr at one
batch size and repeat sees the same stream: common random numbers), takes
optimizer steps through the backend, and evaluates the target loss on a fixed
evaluation set at a geometric schedule of steps (every step up to
:data:`DENSE_STEPS`, then every :data:`CHECK_GROWTH` x), so the step count is
exact early and within 5 % later, at O(log steps) evaluations. It stops when
the loss reaches the target, when it diverges (non-finite or above
``diverge_above``), or at its step cap. The caller restores the snapshot.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from wandb_batchsize.critical.result import CriticalBatchRow

DENSE_STEPS = 20
CHECK_GROWTH = 1.05
#: a loss above this multiple of the starting loss counts as diverged
DIVERGE_FACTOR = 3.0


def check_steps(max_steps: int) -> list[int]:
    """Steps after which the target is checked: 1..DENSE_STEPS, then x CHECK_GROWTH, then max_steps."""
    steps: list[int] = []
    t = 1
    while t < max_steps:
        steps.append(t)
        t = t + 1 if t < DENSE_STEPS else max(t + 1, math.ceil(t * CHECK_GROWTH))
    steps.append(int(max_steps))
    return steps


def is_sample_fn(data: Any) -> bool:
    """A callable that is not a dataset: ``sample_fn(batch_size) -> batch`` (fresh samples)."""
    return callable(data) and not hasattr(data, "__getitem__") and not isinstance(data, tuple)


class DataSource:
    """Endless batches of one size from ``data`` through ``backend``, and a fixed eval set.

    ``data`` is a dataset the backend reads (torch ``Dataset``, Keras ``(x, y)``)
    or ``sample_fn(batch_size) -> batch``. The evaluation set is ``val_data``
    when given, else one batch of ``eval_size`` examples drawn from ``data``
    once, with a seed no branch uses.
    """

    def __init__(self, backend: Any, data: Any, *, val_data: Any = None, eval_size: int = 1024):
        self.backend = backend
        self.data = data
        self.sampler = backend.batch_maker(sample_fn=data) if is_sample_fn(data) else None
        self.eval_size = int(eval_size)
        self._val = val_data
        self._own_val = val_data is None

    def batches(self, batch_size: int, seed: int) -> Iterator[Any]:
        if self.sampler is not None:
            sampler = self.sampler

            def endless() -> Iterator[Any]:
                while True:
                    yield sampler(batch_size)

            return endless()
        return self.backend.data_batches(self.data, batch_size, seed)

    def eval_data(self, seed: int) -> Any:
        """``val_data``, or a fixed batch from ``data`` in the form ``backend.evaluate`` takes."""
        if self._val is None:
            size = self.eval_size
            n = None if self.sampler is not None else self.backend.data_len(self.data)
            if n is not None:
                size = min(size, n)
            self.backend.seed(seed)
            batch = next(iter(self.batches(size, seed)))
            # torch evaluates an iterable of batches; Keras an (x, y) pair
            self._val = batch if self.backend.framework == "keras" else [batch]
        return self._val

    @property
    def own_eval_set(self) -> bool:
        return self._own_val


@dataclass
class Branch:
    """What to run: the size, the lr, the step cap, the seed and repeat index."""

    batch_size: int
    lr: float
    max_steps: int
    seed: int
    repeat: int = 0


def run_branch(
    backend: Any,
    source: DataSource,
    branch: Branch,
    *,
    target: float,
    evaluate: Callable[[], float],
    diverge_above: float,
    on_step: Callable[[int], None] | None = None,
    trace: list[tuple[int, float]] | None = None,
) -> CriticalBatchRow:
    """Train ``branch`` until ``evaluate() <= target``; return its table row.

    The model is left as the branch left it: the caller restores the snapshot.
    ``trace`` (a list) receives ``(step, loss)`` at every check.
    """
    start = time.perf_counter()
    backend.seed(branch.seed)
    optimizer, _ = backend.new_optimizer(lr=branch.lr)
    batches = source.batches(branch.batch_size, branch.seed)
    checks = set(check_steps(branch.max_steps))
    pending: list[Any] = []
    reached = diverged = False
    loss = math.nan
    step = 0
    try:
        for step in range(1, branch.max_steps + 1):
            pending.append(backend.train_step(next(batches), optimizer))
            if on_step is not None:
                on_step(step)
            if step not in checks:
                continue
            train = backend.to_host(pending) if pending[0] is not None else ()
            pending = []
            if any(not math.isfinite(v) for v in train):
                diverged = True
                break
            loss = evaluate()
            if trace is not None:
                trace.append((step, loss))
            if not math.isfinite(loss) or loss > diverge_above:
                diverged = True
                break
            if loss <= target:
                reached = True
                break
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        backend.forget_steps()  # a Keras step traced with this optimizer holds it
        del optimizer
    return CriticalBatchRow(
        batch_size=int(branch.batch_size),
        lr=float(branch.lr),
        steps=int(step),
        samples=int(step) * int(branch.batch_size),
        reached=reached,
        diverged=diverged,
        repeat=int(branch.repeat),
        final_loss=float(loss),
        seconds=time.perf_counter() - start,
    )
