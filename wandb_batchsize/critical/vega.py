"""A Vega-Lite preset for ``critical_batch/chart``: steps vs batch size, log-log, fit as a line.

Add it once as a W&B custom chart preset (fields ``batch_size``, ``steps``,
``series``; string field ``title``) and pass its name as
``log_critical_batch(result, preset=...)``. Without it the chart is drawn on
the built-in line preset with log-valued columns.
"""

from __future__ import annotations

import json
from pathlib import Path

CRITICAL_BATCH_SPEC: dict = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
    "description": "wandb-batchsize: steps to target vs batch size (log-log), measured and fitted",
    "title": "${string:title}",
    "data": {"name": "wandb"},
    "width": 400,
    "height": 260,
    "layer": [
        {
            "transform": [{"filter": "datum['${field:series}'] == 'fit'"}],
            "mark": {"type": "line", "strokeDash": [4, 4]},
            "encoding": {
                "x": {
                    "field": "${field:batch_size}",
                    "type": "quantitative",
                    "scale": {"type": "log"},
                    "title": "batch size",
                },
                "y": {
                    "field": "${field:steps}",
                    "type": "quantitative",
                    "scale": {"type": "log"},
                    "title": "steps to target",
                },
            },
        },
        {
            "transform": [{"filter": "datum['${field:series}'] == 'measured'"}],
            "mark": {"type": "point", "filled": True, "size": 60},
            "encoding": {
                "x": {
                    "field": "${field:batch_size}",
                    "type": "quantitative",
                    "scale": {"type": "log"},
                },
                "y": {"field": "${field:steps}", "type": "quantitative", "scale": {"type": "log"}},
                "tooltip": [
                    {"field": "${field:batch_size}", "type": "quantitative", "title": "batch"},
                    {"field": "${field:steps}", "type": "quantitative", "title": "steps"},
                ],
            },
        },
    ],
}


def write_spec(path: str | Path) -> Path:
    """Write :data:`CRITICAL_BATCH_SPEC` as JSON (to paste into W&B's custom chart editor)."""
    path = Path(path)
    path.write_text(json.dumps(CRITICAL_BATCH_SPEC, indent=2) + "\n")
    return path
