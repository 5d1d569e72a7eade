"""One memory probe: real training steps at a batch size, metered, OOM caught.

:class:`MemoryProbe` turns a backend (:mod:`wandb_batchsize.backends`) into the
``probe(batch_size) -> ProbeOutcome`` callable the search strategy drives:
``steps`` full training steps (forward, loss, backward, optimizer step; an
evaluation forward pass too with ``eval_step``) on a batch of that size, with
the backend's meter around them (``eval_only``: only the no-grad evaluation
forward pass, for the evaluation ceiling). An out-of-memory error is an outcome
(``fitted=False``, memory released); any other error propagates unchanged.
A reading over a user's ``target_memory`` counts as not fitting, as on a
smaller device. Framework-free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wandb_batchsize.backends.oom import short_message
from wandb_batchsize.memory.search import ProbeOutcome

OVER_TARGET = "over target_memory"


class MemoryProbe:
    """``probe(batch_size) -> ProbeOutcome`` over a backend (see the module docstring)."""

    def __init__(
        self,
        backend: Any,
        make_batch: Callable[[int], Any],
        optimizer: Any,
        *,
        meter: Any,
        steps: int = 1,
        eval_step: bool = False,
        eval_only: bool = False,
    ) -> None:
        self.backend = backend
        self.make_batch = make_batch
        self.optimizer = optimizer
        self.meter = meter
        self.steps = max(1, int(steps))
        self.eval_step = eval_step
        self.eval_only = eval_only

    def _run(self, batch_size: int) -> None:
        for _ in range(self.steps):
            batch = self.make_batch(batch_size)
            if not self.eval_only:
                self.backend.train_step(batch, self.optimizer)
            if self.eval_step or self.eval_only:
                self.backend.eval_step(batch)
            del batch

    def __call__(self, batch_size: int) -> ProbeOutcome:
        error: str | None = None
        self.meter.start()
        try:
            self._run(batch_size)
        except Exception as exc:
            if not self.backend.is_oom(exc):
                raise
            error = short_message(exc)
            self.backend.release(exc)
        finally:
            self.backend.zero_grad()
        reading = self.meter.stop()
        self.backend.release(full=False)
        over = self.meter.over_budget(reading)
        if over and error is None:
            error = OVER_TARGET
        return ProbeOutcome(
            fitted=error is None,
            peak_bytes=reading.peak_bytes,
            headroom_bytes=reading.headroom_bytes,
            budget_bytes=reading.budget_bytes,
            error=error,
            complete=error is None or (over and error == OVER_TARGET),
        )
