"""``MonitorAPI``: what every susceptibility monitor and callback exposes.

The framework adapters derive from it (first, before their framework's callback
class) and add only their hooks: the constructor, the parameters and their
checks, the W&B run lookup and the result accessors are all here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from wandb_batchsize.monitor.core import MonitorCore
from wandb_batchsize.monitor.defaults import DEFAULT_DETREND

__all__ = ["CORE_OPTIONS", "MonitorAPI"]

CORE_OPTIONS = ("prefix", "chart_preset", "log_charts", "max_overhead", "max_history", "run")


class MonitorAPI:
    """Susceptibility of the per-step loss, checked every ``check_every`` steps.

    ``check_every`` steps between checks; ``window`` None (all steps, streamed)
    or N (the last N steps); ``detrend`` the analysis' detrending (``"auto"``:
    adapted to the run, see :mod:`wandb_batchsize.monitor.detrend`);
    ``log_to_wandb`` log to the run (results are computed without one too).
    Options: ``prefix``, ``chart_preset``, ``log_charts``, ``max_overhead``,
    ``max_history``, ``run`` (see :class:`MonitorCore`), the adapter's own
    (``ADAPTER_OPTIONS``) and any analysis parameter (``K_min``, ``K_max``,
    ``n_points``, ``min_batches``, ``max_scale``, ``n_permutations``, ``seed`` ...).
    """

    #: keyword options an adapter takes for itself, with their defaults; each
    #: becomes an attribute of that name before :meth:`_setup` runs
    ADAPTER_OPTIONS: ClassVar[Mapping[str, Any]] = {}

    _core: MonitorCore

    def __init__(
        self,
        check_every: int = 500,
        window: int | None = None,
        detrend: Any = DEFAULT_DETREND,
        log_to_wandb: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()  # the framework's callback class, if any
        for name, default in self.ADAPTER_OPTIONS.items():
            setattr(self, name, options.pop(name, default))
        self._user_run = options.pop("run", None)
        self._is_main = True
        self._init_core(check_every, window, detrend, log_to_wandb, {**options, "run": self._run})
        self._setup()

    def _setup(self) -> None:
        """An adapter's own state, once the core exists."""

    def _framework_run(self) -> Any:
        """The run the framework's logger holds (None: ``wandb.run``)."""
        return None

    def _run(self) -> Any:
        """The W&B run of this monitor: nothing off the main process, the user's run,
        else the framework logger's, else (None) the active ``wandb.run``."""
        if not self._is_main:
            return False  # other ranks compute, rank zero logs
        if self._user_run is not None:
            return self._user_run
        return self._framework_run()

    def _init_core(
        self,
        check_every: int,
        window: int | None,
        detrend: Any,
        log_to_wandb: bool,
        options: Mapping[str, Any],
    ) -> None:
        core_options = {k: options[k] for k in CORE_OPTIONS if k in options}
        analysis = {k: v for k, v in options.items() if k not in CORE_OPTIONS}
        self._core = MonitorCore(
            check_every,
            window,
            detrend,
            log_to_wandb,
            name=type(self).__name__,
            analysis_kwargs=analysis,
            **core_options,
        )

    def result(self) -> Any:
        """The analysis of all steps so far (or of the last ``window``): a
        ``SusceptibilityResult``. Raises ``ValueError`` with fewer than 20 finite losses.
        ``result.diagnostics["detrend_choice"]`` says what ``detrend="auto"`` chose."""
        return self._core.result()

    @property
    def history(self) -> list[Any]:
        """One result per check, oldest first (the last ``max_history`` checks)."""
        return list(self._core.history)

    @property
    def history_steps(self) -> list[int]:
        """The trainer's global step of each result in ``history``."""
        return list(self._core.history_steps)

    @property
    def n_steps(self) -> int:
        """Optimizer steps recorded (steps with a non-finite loss included)."""
        return self._core.n_steps

    def values(self) -> np.ndarray:
        """The step losses the next window analysis uses, oldest first (``window=N`` only)."""
        return self._core.values()

    @property
    def check_every(self) -> int:
        return self._core.check_every

    @property
    def window(self) -> int | None:
        return self._core.window

    @property
    def detrend(self) -> Any:
        """The detrend the next result uses (``"auto"`` resolved for the run so far)."""
        return self._core.detrend_in_use()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(check_every={self.check_every}, window={self.window}, "
            f"steps={self.n_steps}, checks={len(self._core.history)})"
        )
