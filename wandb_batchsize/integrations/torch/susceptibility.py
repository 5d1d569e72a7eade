"""``SusceptibilityMonitor``: watch the batch-scale statistics of a plain PyTorch loop.

    monitor = wandb_batchsize.SusceptibilityMonitor(check_every=500)
    for step, (x, y) in enumerate(loader, 1):
        loss = loss_fn(model(x), y)
        loss.backward(); optimizer.step(); optimizer.zero_grad()
        monitor.on_step(loss, step=step)   # the tensor itself: no .item(), no sync
    monitor.finish()                       # final result -> run summary

Give ``on_step`` the loss of each optimizer step, once per step (with gradient
accumulation: the mean of the micro-batch losses of that step). A tensor stays
on its device (``detach()`` only) until the next check, where all pending
losses are stacked and copied to the host in one transfer: the monitor adds no
host-device synchronisation to the steps in between. Checks, W&B logging and
memory are those of :class:`~wandb_batchsize.monitor.core.MonitorCore`.

torch itself is not imported here: a tensor loss implies it already is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wandb_batchsize.monitor.api import MonitorAPI

__all__ = ["SusceptibilityMonitor"]


class SusceptibilityMonitor(MonitorAPI):
    """Batch-size susceptibility of the per-step loss, checked and logged while training.

    ``check_every`` steps between checks; ``window`` None (all steps, streaming,
    memory independent of the number of steps) or N (the last N steps);
    ``detrend`` the analysis' detrending (``"auto"``: adapted to the length of
    the run, reported in ``result().diagnostics["detrend_choice"]``); ``log_to_wandb`` log to the active run
    (results are computed without one too). Options: ``prefix``,
    ``chart_preset``, ``log_charts``, ``max_history``, ``run`` and any analysis
    parameter (``K_min``, ``n_points``, ``n_permutations``, ``seed`` ...).

    Use it as a context manager, or call :meth:`finish` when training ends, to
    write the final result to the W&B run summary (``susceptibility/final/*``);
    without it the run has the checks' rows but no final summary.
    """

    def on_step(self, loss: Any, step: int | None = None) -> Any:
        """Record the loss of one optimizer step: a float or a tensor (a dict with
        ``"loss"`` too). ``step`` is the global step to log against (default: the
        number of steps so far). Returns the result when this step was a check."""
        if isinstance(loss, Mapping):
            loss = loss["loss"]
        return self._core.record(loss, step=step)

    def finish(self, step: int | None = None) -> Any:
        """A last check, and the final result to the run summary; returns that result
        (None with fewer than 20 finite losses). Idempotent: calling it again (or
        leaving a ``with`` block after calling it) writes nothing twice."""
        return self._core.finish(step)

    def __enter__(self) -> SusceptibilityMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()
