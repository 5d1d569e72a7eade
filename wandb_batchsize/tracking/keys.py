"""The W&B keys wandb-batchsize logs, named in one place.

Every logger, reader and dashboard imports its key names from here, so a
renamed metric changes in one line. Keys are namespaced by prefix
(``batch_finder/``, ``susceptibility/``, ...), as W&B's own integrations do;
series logged over training use a step metric of their own
(``define_metric(pattern, step_metric=...)``), never ``_step``.

This module imports nothing: it is safe to use from any layer.
"""

from __future__ import annotations

# -- memory ceiling (``find_batch_size``): run summary, set once ------------------
BATCH_FINDER_PREFIX = "batch_finder"
BATCH_FINDER_OPTIMAL = "batch_finder/optimal_batch_size"
BATCH_FINDER_MAX_FITTING = "batch_finder/max_fitting"
BATCH_FINDER_MODEL_PARAMS = "batch_finder/model_params"
BATCH_FINDER_MODEL_MEMORY_MB = "batch_finder/model_memory_mb"
BATCH_FINDER_PROBES = "batch_finder/probes"  # wandb.Table, one row per probed size
BATCH_FINDER_CAP_REACHED = "batch_finder/cap_reached"  # max_batch_size fitted: ceiling higher
BATCH_FINDER_CONFIRMED = "batch_finder/confirmed"  # training steps ran after the search
BATCH_FINDER_CONFIRM_STEPS = "batch_finder/confirm_steps"
BATCH_FINDER_STEP_DOWNS = "batch_finder/step_downs"  # how many sizes failed confirmation
BATCH_FINDER_STEP_DOWN_SIZES = "batch_finder/step_down_sizes"  # those sizes, in order
BATCH_FINDER_EVAL_BATCH_SIZE = "batch_finder/eval_batch_size"
BATCH_FINDER_EVAL_MAX_FITTING = "batch_finder/eval_max_fitting"
BATCH_FINDER_SCALARS = (
    BATCH_FINDER_OPTIMAL,
    BATCH_FINDER_MAX_FITTING,
    BATCH_FINDER_MODEL_PARAMS,
    BATCH_FINDER_MODEL_MEMORY_MB,
)

# config keys set by the memory search
CONFIG_BATCH_SIZE = "batch_size"
CONFIG_BATCH_SIZE_SOURCE = "batch_size_source"

# -- training monitor: series over the monitor's own step metric ------------------
SUSCEPTIBILITY_PREFIX = "susceptibility"
SUSCEPTIBILITY_STEP = "susceptibility/step"
SUSCEPTIBILITY_K_C = "susceptibility/K_c"
SUSCEPTIBILITY_KAPPA = "susceptibility/kappa"
SUSCEPTIBILITY_ALPHA = "susceptibility/alpha"
SUSCEPTIBILITY_TAU_INT = "susceptibility/tau_int"
SUSCEPTIBILITY_SERIES = (SUSCEPTIBILITY_K_C, SUSCEPTIBILITY_KAPPA, SUSCEPTIBILITY_TAU_INT)

# gradient noise scale
GNS_PREFIX = "gns"
GNS_STEP = "gns/step"
GNS_B_SIMPLE = "gns/B_simple"

# -- custom charts: ``<prefix>/chi_chart`` and ``<prefix>/V_chart`` on the built-in
# line preset (see ``tracking/charts.py``); W&B stores a chart's table as ``<key>_table``
CHI_CHART = "chi_chart"
V_CHART = "V_chart"
CUSTOM_PRESET_CHART = "chart"  # one panel on a custom preset (vega/susceptibility.json)
TABLE_SUFFIX = "_table"


def chart_key(prefix: str, chart: str = CHI_CHART) -> str:
    """``chart_key("susceptibility")`` -> ``"susceptibility/chi_chart"``."""
    return f"{prefix}/{chart}"


def table_key(chart: str) -> str:
    """The key of the table W&B logs with a custom chart: ``"<chart>_table"``."""
    return f"{chart}{TABLE_SUFFIX}"


SUSCEPTIBILITY_CHI_CHART = chart_key(SUSCEPTIBILITY_PREFIX, CHI_CHART)
SUSCEPTIBILITY_V_CHART = chart_key(SUSCEPTIBILITY_PREFIX, V_CHART)

# -- sweep mode (``sweep analyze``): one analysis of many runs ---------------------
SWEEP_PREFIX = "sweep"
SWEEP_K_C = "sweep/K_c"
SWEEP_TABLE = "sweep/table"  # per-batch-size table
SWEEP_CHI_CHART = chart_key(SWEEP_PREFIX, CHI_CHART)
SWEEP_V_CHART = chart_key(SWEEP_PREFIX, V_CHART)

# -- short probe of several batch sizes (``probe_batch_sizes``) --------------------
PROBE_PREFIX = "probe"
PROBE_K_C = "probe/K_c"
PROBE_TABLE = "probe/table"
PROBE_CHI_CHART = chart_key(PROBE_PREFIX, CHI_CHART)
PROBE_V_CHART = chart_key(PROBE_PREFIX, V_CHART)

# -- the combined recommendation ----------------------------------------------------
RECOMMENDATION_PREFIX = "recommendation"
RECOMMENDATION_BATCH_SIZE = "recommendation/batch_size"
RECOMMENDATION_LR = "recommendation/lr"
RECOMMENDATION_ACCUMULATION_STEPS = "recommendation/accumulation_steps"
RECOMMENDATION_SCALARS = (
    RECOMMENDATION_BATCH_SIZE,
    RECOMMENDATION_LR,
    RECOMMENDATION_ACCUMULATION_STEPS,
)

PREFIXES = (
    BATCH_FINDER_PREFIX,
    SUSCEPTIBILITY_PREFIX,
    GNS_PREFIX,
    SWEEP_PREFIX,
    PROBE_PREFIX,
    RECOMMENDATION_PREFIX,
)
