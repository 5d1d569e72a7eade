"""The phases of one ``find_batch_size`` call over one backend: search, confirm, evaluate.

Every phase changes the training state (probes run real optimizer steps) and
runs inside :meth:`InterruptGuard.restoring` over the same in-memory
snapshot: restored bitwise, and memory released (gc, the device caches,
glibc's ``malloc_trim``: the backend's ``release``), after each search and
after each confirmation attempt, uninterruptible by Ctrl-C. Each probe goes
through :func:`wandb_batchsize.memory.distributed.guarded`, so ranks agree on
its outcome and a non-OOM error on one rank stops the others. Framework-free.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from wandb_batchsize.memory import distributed
from wandb_batchsize.memory.confirm import Confirmation, confirm
from wandb_batchsize.memory.guard import InterruptGuard
from wandb_batchsize.memory.probe import MemoryProbe
from wandb_batchsize.memory.search import CeilingSearch, Probe, SearchOutcome, run_search


@dataclasses.dataclass
class SearchSession:
    """What the phases share (see the module docstring)."""

    backend: Any
    make_batch: Callable[[int], Any]
    optimizer: Any
    meter: Any
    snapshot: Any
    guard: InterruptGuard
    target_bytes: int | None = None
    steps_per_probe: int = 1
    eval_step: bool = False
    tolerance: float = 0.02
    max_probes: int = 40
    multiple_of: int = 1
    on_probe: Callable[[Probe, CeilingSearch], None] | None = None
    on_attempt: Callable[[int, Any], None] | None = None

    @contextlib.contextmanager
    def _phase(self) -> Iterator[None]:
        with (
            self.guard.restoring(self.snapshot, self.backend.release),
            self.backend.memory_cap(self.target_bytes),
        ):
            yield

    def _probe(self, steps: int, eval_only: bool) -> Callable[[int], Any]:
        probe = MemoryProbe(
            self.backend,
            self.make_batch,
            self.optimizer,
            meter=self.meter,
            steps=steps,
            eval_step=self.eval_step and not eval_only,
            eval_only=eval_only,
        )
        return distributed.guarded(probe)

    def search(self, lo: int, hi: int, *, eval_only: bool = False) -> SearchOutcome:
        """The ceiling in ``[lo, hi]`` (training steps, or no-grad forwards with ``eval_only``)."""
        strategy = CeilingSearch(lo, hi, tolerance=self.tolerance, max_probes=self.max_probes)
        probe = self._probe(self.steps_per_probe, eval_only)
        with self._phase():
            return run_search(probe, strategy, on_probe=self.on_probe)

    def confirm(
        self, size: int, steps: int, *, min_batch_size: int, eval_only: bool = False
    ) -> Confirmation:
        """``steps`` steps at ``size`` from the restored state, stepping down until they run."""
        probe = self._probe(max(1, steps), eval_only)

        def attempt(batch_size: int) -> Any:
            with self._phase():
                return probe(batch_size)

        return confirm(
            attempt,
            size,
            steps=steps,
            min_batch_size=min_batch_size,
            tolerance=self.tolerance,
            multiple_of=self.multiple_of,
            on_attempt=self.on_attempt,
        )
