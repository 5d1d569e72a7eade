"""The default detrend, ``"auto"``: one that fits the length of the run seen.

A training loss is analysed on its fluctuations, not on its downward trend, and
how much trend a detrend can take out depends on how many steps there are:

- ``window=N`` (the last N steps): ``"linear"``, the trend of those N steps;
- streaming (``window=None``), with n finite step losses seen so far:
  ``"linear"`` for n < ``SHORT_RUN_LINEAR`` (100: too few steps for a moving
  average to leave anything), else a centred moving average of
  ``w = min(n // 5, AUTO_MOVING_AVERAGE)`` steps. The analysed grid goes up to
  ``K_max = n' / min_batches`` (n' = n - w + 1, ``min_batches = 10``), so the
  window is about twice the largest block size: the moving average removes the
  trend on scales longer than any block, not the block-scale fluctuations.
  At ``AUTO_SHORT_RUN`` = 5000 steps w reaches 1000 and stays there; from then
  on the run is streamed in constant memory with that moving average (the
  monitor keeps the raw values of the first 5000 steps only, 40 kB).

Any run with the analysis' minimum of 20 finite losses gets a result; the choice
is written to ``result.diagnostics["detrend"]`` (the value) and
``["detrend_choice"]`` (why), and to the W&B summary.
"""

from __future__ import annotations

from typing import Any

from wandb_batchsize.monitor.defaults import (
    AUTO_MOVING_AVERAGE,
    AUTO_SHORT_RUN,
    MIN_VALUES,
    SHORT_RUN_LINEAR,
)

__all__ = ["auto_detrend", "describe_auto", "values_needed"]


def auto_detrend(n: int) -> Any:
    """The detrend ``"auto"`` gives a streamed run of ``n`` finite step losses."""
    if n < SHORT_RUN_LINEAR:
        return "linear"
    return min(n // 5, AUTO_MOVING_AVERAGE)


def describe_auto(n: int, window: int | None) -> str:
    """Why ``"auto"`` chose what it did, for the result and the W&B summary."""
    if window is not None:
        return f"auto: linear trend of the last {window} steps (window={window})"
    if n > AUTO_SHORT_RUN:
        return (
            f"auto: streamed with a moving average of {AUTO_MOVING_AVERAGE} steps "
            f"(run of {n} steps, longer than {AUTO_SHORT_RUN})"
        )
    if n < SHORT_RUN_LINEAR:
        return f"auto: linear trend (run of {n} steps, shorter than {SHORT_RUN_LINEAR})"
    return f"auto: moving average of {auto_detrend(n)} steps (n // 5, run of {n} steps)"


def values_needed(detrend: Any) -> int:
    """Fewest finite values the analysis accepts after ``detrend``."""
    if detrend == "auto":
        return MIN_VALUES
    if detrend == "diff":
        return MIN_VALUES + 1
    if isinstance(detrend, int) and not isinstance(detrend, bool):
        return MIN_VALUES + detrend - 1
    return MIN_VALUES
