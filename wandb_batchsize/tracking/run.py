"""The live W&B run, and a sink that never lets a W&B failure stop training."""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Mapping
from typing import Any


def active_run() -> Any | None:
    """Return the current, enabled ``wandb`` run, or None.

    wandb is not imported here if the user never imported it: without the
    module there can be no run. A ``mode="disabled"`` run counts as no run.
    """
    wandb = sys.modules.get("wandb")
    if wandb is None:
        return None
    run = getattr(wandb, "run", None)
    if run is None or getattr(run, "disabled", False):
        return None
    try:
        if run.settings.mode == "disabled":
            return None
    except Exception:  # noqa: BLE001 - an odd run object is no reason to fail
        pass
    return run


def in_sweep(run: Any) -> bool:
    """True when ``run`` was started by a W&B sweep agent."""
    try:
        return bool(run.sweep_id)
    except Exception:  # noqa: BLE001
        return False


class WandbSink:
    """Logs to one W&B run; a failure warns once per sink and is then swallowed.

    Every method returns True when W&B accepted the call. Training code calls
    these from callbacks, so nothing here may raise.
    """

    def __init__(self, run: Any | None = None, *, name: str = "wandb-batchsize") -> None:
        self.run = run if run is not None else active_run()
        self.name = name
        self._warned = False
        self._step_metrics: set[tuple[str, str]] = set()

    @property
    def enabled(self) -> bool:
        return self.run is not None

    def _guard(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> bool:
        if self.run is None:
            return False
        try:
            fn(*args, **kwargs)
            return True
        except Exception as exc:  # noqa: BLE001 - W&B must never stop training
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{self.name}: W&B {what} failed ({type(exc).__name__}: {exc}); "
                    "training continues, further W&B errors from this callback are silent.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return False

    def define_step_metric(self, pattern: str, step_metric: str) -> bool:
        """Plot keys matching ``pattern`` (e.g. ``"susceptibility/*"``) against ``step_metric``."""
        key = (pattern, step_metric)
        if key in self._step_metrics:
            return True

        def define() -> None:
            self.run.define_metric(step_metric, hidden=False)
            self.run.define_metric(pattern, step_metric=step_metric)

        ok = self._guard("define_metric", define)
        if ok:
            self._step_metrics.add(key)
        return ok

    def log(self, data: Mapping[str, Any], *, commit: bool | None = None) -> bool:
        return self._guard("log", lambda: self.run.log(dict(data), commit=commit))

    def summary_update(self, data: Mapping[str, Any]) -> bool:
        def update() -> None:
            for key, value in data.items():
                self.run.summary[key] = value

        return self._guard("summary update", update)

    def config_update(self, data: Mapping[str, Any], *, allow_val_change: bool = True) -> bool:
        return self._guard(
            "config update",
            lambda: self.run.config.update(dict(data), allow_val_change=allow_val_change),
        )


def table_cell(value: Any) -> Any:
    """A value for a ``wandb.Table`` cell: a non-finite float becomes None (an empty cell)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def reraise(exc: Exception) -> None:
    """For ``WandbSink._guard(what, reraise, exc)``: report an error caught outside it."""
    raise exc
