"""The monitors' defaults, in one place (documented in docs/monitors.md)."""

from __future__ import annotations

__all__ = [
    "AUTO_MOVING_AVERAGE",
    "AUTO_SHORT_RUN",
    "DEFAULT_DETREND",
    "DEFAULT_MAX_OVERHEAD",
    "FLUSH_EVERY",
    "MIN_VALUES",
    "SCALAR_FIELDS",
    "SHORT_RUN_LINEAR",
]

# Largest number of pending (not yet transferred) step losses: with checks rarer
# than this, device losses are moved in one transfer per FLUSH_EVERY steps.
FLUSH_EVERY = 4096
# Fewest values the analysis accepts; checks before that are skipped quietly.
MIN_VALUES = 20

# Default detrending: a training loss is analysed on its fluctuations, not on its
# downward trend. "auto" is "linear" (the trend of the last N steps) with window=N;
# when streaming it adapts to the length of the run (see monitor.detrend): a linear
# fit below SHORT_RUN_LINEAR steps, a centred moving average of n // 5 steps up to
# AUTO_MOVING_AVERAGE, reached at AUTO_SHORT_RUN = 5 * AUTO_MOVING_AVERAGE steps,
# after which the run is streamed with that moving average.
DEFAULT_DETREND = "auto"
AUTO_MOVING_AVERAGE = 1000
AUTO_SHORT_RUN = 5 * AUTO_MOVING_AVERAGE
SHORT_RUN_LINEAR = 100
# Default budget for the time spent in checks, as a fraction of the training time:
# 0.8 %, leaving room for the per-step work (a few microseconds) under 1 % in all.
DEFAULT_MAX_OVERHEAD = 0.008

SCALAR_FIELDS = ("K_c", "kappa", "alpha", "alpha_se", "tau_int", "ess", "K_corr", "p_iid")
