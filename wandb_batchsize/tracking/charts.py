"""chi(K) and V(K) as W&B custom charts.

By default each curve is a chart on W&B's built-in ``wandb/line/v0`` preset, so
it renders in any entity with no set-up. ``vega/susceptibility.json`` (shipped
with the package, see ``VEGA_SPEC_PATH``) is a Vega-Lite preset with log axes
and a K_c marker: add it once as a custom chart preset in W&B, then pass its
name as ``preset=`` to draw both curves in one panel.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

from wandb_batchsize.tracking.run import WandbSink, reraise

BUILTIN_PRESET = "wandb/line/v0"
VEGA_SPEC_PATH = Path(str(resources.files("wandb_batchsize.tracking") / "vega" / "susceptibility.json"))
CURVE_COLUMNS = ["K", "V", "chi", "K_c", "is_K_c"]
# field name in the custom preset -> column of the table
CUSTOM_PRESET_FIELDS = {"K": "K", "V": "V", "chi": "chi", "K_c": "K_c", "is_K_c": "is_K_c"}


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def curve_rows(result: Any) -> list[list[Any]]:
    """One row per scale: K, V (or the sweep metric), chi, K_c, whether this K is K_c.

    Works for a susceptibility result (``K_values``, ``V_values``) and for a sweep
    result (``batch_sizes``, ``metric_mean``). Non-finite values become None.
    """
    if hasattr(result, "K_values"):
        scales, values = result.K_values, result.V_values
    else:
        scales, values = result.batch_sizes, result.metric_mean
    k_c = float(result.K_c)
    return [
        [float(k), _finite_or_none(v), _finite_or_none(c), k_c, bool(float(k) == k_c)]
        for k, v, c in zip(scales, values, result.chi_values, strict=True)
    ]


def curve_table(result: Any) -> Any:
    import wandb

    return wandb.Table(columns=CURVE_COLUMNS, data=curve_rows(result))


def susceptibility_charts(
    result: Any, *, prefix: str, preset: str | None = None, value_label: str = "V(K)"
) -> dict[str, Any]:
    """The charts to log for ``result``: ``{prefix}/chi_chart`` and ``{prefix}/V_chart``
    on the built-in preset, or one ``{prefix}/chart`` on a custom ``preset``."""
    import wandb

    table = curve_table(result)
    k_c = f"K_c = {float(result.K_c):.0f}"
    if preset:
        return {
            f"{prefix}/chart": wandb.plot_table(
                preset, table, CUSTOM_PRESET_FIELDS, {"title": f"chi(K) and {value_label}, {k_c}"}
            )
        }
    return {
        f"{prefix}/chi_chart": wandb.plot_table(
            BUILTIN_PRESET, table, {"x": "K", "y": "chi"}, {"title": f"chi(K), {k_c}"}
        ),
        f"{prefix}/V_chart": wandb.plot_table(
            BUILTIN_PRESET, table, {"x": "K", "y": "V"}, {"title": f"{value_label}, {k_c}"}
        ),
    }


def log_susceptibility_charts(
    sink: WandbSink,
    result: Any,
    *,
    prefix: str = "susceptibility",
    extra: dict[str, Any] | None = None,
    preset: str | None = None,
    value_label: str = "V(K)",
) -> bool:
    """Log the chi(K)/V(K) charts (with ``extra`` scalars in the same row). Never raises."""
    if not sink.enabled:
        return False
    try:
        charts = susceptibility_charts(result, prefix=prefix, preset=preset, value_label=value_label)
    except Exception as exc:  # noqa: BLE001 - a chart must never stop training
        return sink._guard("chart", reraise, exc)
    return sink.log({**(extra or {}), **charts})

