"""The Vega-Lite presets shipped in ``wandb_batchsize/tracking/vega/`` are valid and draw
what they claim: log axes and the K_c marker, with W&B's placeholders or with real data.

The schema is the Vega-Lite v5 JSON schema shipped in ``altair`` 5 (dev extra); the
rendering check uses ``vl-convert-python`` when installed (an offline Vega-Lite
compiler and renderer) and is skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from wandb_batchsize.tracking.charts import (
    CURVE_COLUMNS,
    CUSTOM_PRESET_FIELDS,
    VEGA_SPEC_PATH,
    curve_rows,
)

VEGA_DIR = VEGA_SPEC_PATH.parent
SPECS = sorted(VEGA_DIR.glob("*.json"))
FIELD = re.compile(r"\$\{field:([^}]+)\}")
STRING = re.compile(r"\$\{string:([^}]+)\}")
# the string settings tracking.charts passes with a custom preset
STRING_SETTINGS = {"title"}


def _schema_validator() -> Any:
    spec = importlib.util.find_spec("altair")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("altair (dev extra) is not installed: no Vega-Lite v5 schema")
    path = Path(spec.submodule_search_locations[0]) / "vegalite/v5/schema/vega-lite-schema.json"
    if not path.exists():
        pytest.skip(f"this altair has no Vega-Lite v5 schema ({path}); install altair>=5,<6")
    import jsonschema

    schema = json.loads(path.read_text())
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def validator() -> Any:
    return _schema_validator()


def _errors(validator: Any, spec: dict) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in validator.iter_errors(spec)
    ]


def _dicts(obj: Any):
    if isinstance(obj, dict):
        yield obj
        for value in obj.values():
            yield from _dicts(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _dicts(value)


def _mark_type(view: dict) -> str | None:
    mark = view.get("mark")
    return mark.get("type") if isinstance(mark, dict) else mark


def _substitute(spec: dict, rows: list[dict], title: str) -> dict:
    """What W&B does at render time: placeholders -> column names, data -> the table."""
    text = json.dumps(spec)
    text = FIELD.sub(lambda m: CUSTOM_PRESET_FIELDS[m.group(1)], text)
    text = STRING.sub(lambda m: title if m.group(1) == "title" else m.group(1), text)
    out = json.loads(text)
    assert out["data"] == {"name": "wandb"}, "W&B feeds the table as the data source 'wandb'"
    out["data"] = {"values": rows}
    return out


def _rows() -> list[dict]:
    """A chi/V curve as tracking.charts tables it, plus the run 'name' W&B adds."""
    K = [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]
    result = SimpleNamespace(
        K_values=K,
        V_values=[1.0 / k**0.3 if k < 16 else 2.0 / k for k in K],
        chi_values=[0.3, 0.3, 0.32, 0.4, 0.6, 0.9, 1.2, 1.0, 0.9, 0.95, float("nan")],
        K_c=16,
    )
    rows = [dict(zip(CURVE_COLUMNS, row, strict=True)) for row in curve_rows(result)]
    return [{**row, "name": run} for run in ("run-a", "run-b") for row in rows]


def test_there_is_a_spec():
    assert VEGA_SPEC_PATH in SPECS


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_is_valid_vega_lite_v5_with_placeholders(path, validator):
    spec = json.loads(path.read_text())
    assert "vega-lite/v5" in spec.get("$schema", ""), "declare the Vega-Lite v5 schema"
    assert _errors(validator, spec) == []
    # every placeholder is one the logger fills in
    text = path.read_text()
    assert set(FIELD.findall(text)) <= set(CUSTOM_PRESET_FIELDS), "unknown ${field:...}"
    assert set(STRING.findall(text)) <= STRING_SETTINGS, "unknown ${string:...}"


def test_the_schema_check_does_reject_a_broken_spec(validator):
    spec = json.loads(VEGA_SPEC_PATH.read_text())
    broken = json.loads(json.dumps(spec).replace('"quantitative"', '"quantitive"', 1))
    assert _errors(validator, broken)
    assert _errors(validator, {**spec, "vconcat": "nope"})


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_has_log_axes_and_the_K_c_marker(path):
    spec = json.loads(path.read_text())
    views = [d for d in _dicts(spec) if "mark" in d and "encoding" in d]
    curves = [v for v in views if _mark_type(v) == "line"]
    assert curves, "no line layer"
    for view in curves:  # every curve is drawn against K on a log axis
        x = view["encoding"]["x"]
        assert x["field"] == "${field:K}" and x["scale"]["type"] == "log", x
    v_curves = [v for v in curves if v["encoding"]["y"]["field"] == "${field:V}"]
    assert v_curves and all(v["encoding"]["y"]["scale"]["type"] == "log" for v in v_curves)
    markers = [
        v
        for v in views
        if _mark_type(v) == "rule" and v["encoding"].get("x", {}).get("field") == "${field:K_c}"
    ]
    assert markers, "no K_c rule"
    # one marker with each curve panel (chi and V)
    assert len(markers) >= len({v["encoding"]["y"]["field"] for v in curves})


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_with_real_columns_and_data_is_still_valid(path, validator):
    spec = _substitute(json.loads(path.read_text()), _rows(), "chi(K) and V(K), K_c = 16")
    assert "${" not in json.dumps(spec)
    assert _errors(validator, spec) == []


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_compiles_and_renders_offline(path):
    vlc = pytest.importorskip("vl_convert", reason="vl-convert-python renders Vega-Lite offline")
    v5 = [v for v in vlc.get_vegalite_versions() if v.startswith("5.")]
    if not v5:
        pytest.skip("this vl-convert has no Vega-Lite 5")
    version = max(v5, key=lambda v: tuple(int(p) for p in v.split(".")))
    spec = _substitute(json.loads(path.read_text()), _rows(), "chi(K) and V(K), K_c = 16")

    vega = vlc.vegalite_to_vega(spec, vl_version=version)
    scales = [d for d in _dicts(vega) if d.get("type") == "log" and "domain" in d]
    assert len(scales) >= 2, "the compiled chart has no log scales"
    rules = [d for d in _dicts(vega) if d.get("type") == "rule" and "encode" in d]
    assert rules, "the compiled chart has no K_c rule"

    svg = vlc.vegalite_to_svg(spec, vl_version=version)
    assert svg.startswith("<svg")
    labels = re.findall(r">([^<>]{1,60})</text>", svg)
    assert "chi(K) and V(K), K_c = 16" in labels  # the ${string:title}
    # both K axes are logarithmic: decades 1, 10, 100 labelled, no zero
    assert all(labels.count(t) >= 2 for t in ("1", "10", "100")) and "0" not in labels
