"""What the Lightning and Transformers noise-scale callbacks share: their options,
the monitor they build at the start of training, and ``result()``.

Framework-free itself: the torch monitor is imported when training starts, by
callbacks whose framework (and so torch) is already imported.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["NoiseScaleCallbackAPI"]


class NoiseScaleCallbackAPI:
    """Options and result of a ``GradientNoiseScaleCallback``; the adapter adds the hooks.

    Args:
        batch_size: examples per micro-batch per process (default: the adapter's
            reading of the framework's batch).
        log_every, every, decay, confidence, prefix: as
            :class:`~wandb_batchsize.integrations.torch.noise_scale.GradientNoiseScaleMonitor`.
        log_to_wandb: log to W&B (else only :meth:`result`).
        run: a W&B run to log to instead of the framework logger's / ``wandb.run``.
    """

    #: how to get two batch sizes, in the framework's words (for the warning)
    TWO_SIZES_HINT = "gradient accumulation >= 2"

    def __init__(
        self,
        batch_size: int | None = None,
        *,
        log_every: int = 50,
        every: int = 1,
        decay: float | None = 0.99,
        confidence: float = 0.95,
        prefix: str = "gns",
        log_to_wandb: bool = True,
        run: Any | None = None,
    ) -> None:
        super().__init__()  # the framework's callback class
        self.batch_size = batch_size
        self._options = {
            "log_every": log_every,
            "every": every,
            "decay": decay,
            "confidence": confidence,
            "prefix": prefix,
        }
        self.log_to_wandb = log_to_wandb
        self._user_run = run
        self.monitor: Any = None

    def _start_monitor(
        self,
        model: Any,
        batch_size: int | None,
        *,
        accumulation: int | None,
        world: int,
        is_main: bool,
        run: Any = None,
        scaler: Any = None,
    ) -> Any:
        """A new monitor on ``model`` for this training (the old one's hooks removed)."""
        from wandb_batchsize.integrations.torch.noise_scale import GradientNoiseScaleMonitor

        if (accumulation or 1) < 2 and world < 2:
            warnings.warn(
                f"{type(self).__name__} needs two batch sizes: set {self.TWO_SIZES_HINT} "
                "or train on >= 2 processes; nothing will be measured",
                RuntimeWarning,
                stacklevel=3,
            )
        if self.monitor is not None:
            self.monitor.detach()
        self.monitor = GradientNoiseScaleMonitor(
            model,
            batch_size,
            accumulation_steps=accumulation,
            world_size=world,
            loss_reduction="mean",
            scaler=scaler,
            run=self._user_run if self._user_run is not None else run,
            log=self.log_to_wandb and is_main,
            **self._options,
        )
        return self.monitor

    def _finish_monitor(self) -> None:
        if self.monitor is not None:
            self.monitor.finish()

    def result(self) -> Any:
        """The estimate so far, a ``NoiseScaleResult`` (``ValueError`` before any measured step)."""
        if self.monitor is None:
            raise ValueError("no estimate yet: the callback has not seen training start")
        return self.monitor.result()
