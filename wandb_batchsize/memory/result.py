"""The answer of :func:`~wandb_batchsize.memory.finder.find_batch_size`, as a frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wandb_batchsize.memory.search import AffineFit, Probe


class NoBatchSizeFitsError(RuntimeError):
    """Even ``min_batch_size`` does not fit in memory."""


@dataclass(frozen=True)
class MemorySearchResult:
    """What :func:`find_batch_size` found.

    ``batch_size`` is the size to train with: ``max_fitting`` times the safety
    factor, rounded down to ``multiple_of`` (``searched_batch_size``), then
    confirmed by ``confirm_steps`` full training steps right after the search
    (``confirmed``), stepped down through ``step_downs`` where those did not
    run. ``max_fitting`` is the largest size whose training step fitted during
    the search; ``first_failing`` the smallest that did not (None when
    ``max_batch_size`` fitted: ``cap_reached``, the true ceiling is higher).
    ``probes`` are every search probe in order. ``eval_batch_size`` (with
    ``find_eval_batch_size=True``) is the same for a no-grad evaluation
    forward pass. ``config`` goes into ``wandb.config``; :meth:`summary` into
    the run summary. ``int(result)`` is ``result.batch_size``.
    """

    batch_size: int
    max_fitting: int
    first_failing: int | None
    probes: tuple[Probe, ...]
    model_params: int
    model_memory_mb: float
    device: str
    config: dict[str, Any]
    framework: str = ""
    safety_factor: float = 0.9
    multiple_of: int = 8
    predicted: int | None = None
    fit: AffineFit | None = None
    seconds: float = 0.0
    stopped: str = ""
    world_size: int = 1
    searched_batch_size: int | None = None
    confirmed: bool = False
    confirm_steps: int = 0
    step_downs: tuple[int, ...] = ()
    confirm_seconds: float = 0.0
    eval_batch_size: int | None = None
    eval_max_fitting: int | None = None
    eval_confirmed: bool = False
    eval_probes: tuple[Probe, ...] = ()
    max_length: int | None = None
    meter: str = ""

    @property
    def oom_events(self) -> int:
        """Search probes that did not fit (out of memory, or over ``target_memory``)."""
        return sum(1 for p in self.probes if not p.fitted)

    @property
    def cap_reached(self) -> bool:
        """``max_batch_size`` fitted with no OOM seen: the true ceiling is higher."""
        return self.first_failing is None

    def summary(self) -> dict[str, Any]:
        """The ``batch_finder/*`` scalars for the W&B run summary (the probe table apart)."""
        from wandb_batchsize.tracking import keys

        out: dict[str, Any] = {
            keys.BATCH_FINDER_MODEL_PARAMS: self.model_params,
            keys.BATCH_FINDER_MODEL_MEMORY_MB: round(self.model_memory_mb, 3),
            keys.BATCH_FINDER_OPTIMAL: self.batch_size,
            keys.BATCH_FINDER_MAX_FITTING: self.max_fitting,
            keys.BATCH_FINDER_CAP_REACHED: self.cap_reached,
            keys.BATCH_FINDER_CONFIRMED: self.confirmed,
            keys.BATCH_FINDER_CONFIRM_STEPS: self.confirm_steps,
            keys.BATCH_FINDER_STEP_DOWNS: len(self.step_downs),
            keys.BATCH_FINDER_STEP_DOWN_SIZES: list(self.step_downs),
        }
        if self.eval_batch_size is not None:
            out[keys.BATCH_FINDER_EVAL_BATCH_SIZE] = self.eval_batch_size
            out[keys.BATCH_FINDER_EVAL_MAX_FITTING] = self.eval_max_fitting
        return out

    def probe_rows(self) -> tuple[list[str], list[list[Any]]]:
        """Columns and rows of the ``batch_finder/probes`` table."""
        columns = ["batch_size", "fitted", "peak_bytes", "seconds", "phase", "error"]
        rows = [
            [p.batch_size, p.fitted, p.peak_bytes, round(p.seconds, 4), p.phase, p.error or ""]
            for p in (*self.probes, *self.eval_probes)
        ]
        return columns, rows

    def __int__(self) -> int:
        return self.batch_size

    def __index__(self) -> int:
        return self.batch_size
