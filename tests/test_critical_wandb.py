"""What measure_critical_batch and CriticalBatchMonitor log to W&B, read back from offline run files."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from conftest import run_dir_of  # noqa: E402
from test_critical_torch import half_mse, measure, regression_model, sample  # noqa: E402

from wandb_batchsize.critical import CriticalBatchMonitor  # noqa: E402
from wandb_batchsize.critical import tracking as keys  # noqa: E402
from wandb_batchsize.tracking.offline import read_run  # noqa: E402


def test_summary_table_and_chart_read_back(offline_run):
    result = measure(regression_model(), max_batch_size=64, repeats=2, log_to_wandb=True)
    offline_run.finish()
    run = read_run(run_dir_of(offline_run))
    s = run.summary
    assert s[keys.B_CRIT] == pytest.approx(result.B_crit)
    assert s[keys.B_CRIT_LOW] == pytest.approx(result.interval[0])
    assert s[keys.B_CRIT_HIGH] == pytest.approx(result.interval[1])
    assert s[keys.S_MIN] == pytest.approx(result.S_min)
    assert s[keys.E_MIN] == pytest.approx(result.E_min)
    assert s[keys.BRACKETED] is result.bracketed
    assert s[keys.SAMPLES_USED] == result.samples_used
    table = run.table(keys.TABLE)
    assert table["columns"] == keys.TABLE_COLUMNS
    assert len(table["data"]) == len(result.table)
    assert [row[0] for row in table["data"]] == [r.batch_size for r in result.table]
    assert [row[2] for row in table["data"]] == [r.steps for r in result.table]
    chart = run.table(f"{keys.CHART}_table")
    measured = [r for r in chart["data"] if r[2] == "measured"]
    fitted = [r for r in chart["data"] if r[2] == "fit"]
    assert {int(r[0]): r[1] for r in measured} == pytest.approx(dict(result.steps))
    assert len(fitted) == 25
    for b, steps, _, log2_b, log10_s in fitted:  # the fitted curve, on log-log columns
        assert steps == pytest.approx(result.steps_for(b))
        assert log2_b == pytest.approx(math.log2(b)) and log10_s == pytest.approx(math.log10(steps))
    vis = run.visualizations()[keys.CHART]
    assert vis["panel_config"]["panelDefId"] == keys.BUILTIN_PRESET
    assert vis["panel_config"]["fieldSettings"] == {
        "x": "log2_batch_size",
        "y": "log10_steps",
        "stroke": "series",
    }


def test_monitor_series_against_its_step_metric(offline_run):
    model = regression_model()
    monitor = CriticalBatchMonitor(
        model,
        sample,
        half_mse,
        lr=1 / 32,
        every=10,
        reference_batch=1,
        max_batch_size=16,
        reference_steps=30,
        max_steps=100,
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    for step in range(1, 21):
        x, y = sample(4)
        opt.zero_grad()
        half_mse(model(x), y).backward()
        opt.step()
        monitor.step(step)
    offline_run.finish()
    run = read_run(run_dir_of(offline_run))
    assert run.history_of(keys.STEP) == [10, 20]
    assert run.history_of(keys.LOCAL_B_CRIT) == pytest.approx(
        [r.B_crit for _, r in monitor.history]
    )
    step_metrics = {m.get("glob_name") or m.get("name"): m.get("step_metric") for m in run.metrics}
    assert step_metrics[f"{keys.PREFIX}/local_*"] == keys.STEP


def test_no_run_logs_nothing_and_never_fails():
    result = measure(regression_model(), max_batch_size=16, repeats=1, log_to_wandb=True)
    assert keys.log_critical_batch(result) is False


def test_custom_preset_spec_is_valid_vega_lite_and_used_with_preset(offline_run):
    import importlib.util
    import json
    from pathlib import Path

    from wandb_batchsize.critical.vega import CRITICAL_BATCH_SPEC

    spec = importlib.util.find_spec("altair")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("altair (dev extra) is not installed: no Vega-Lite v5 schema")
    import jsonschema

    schema_path = (
        Path(spec.submodule_search_locations[0]) / "vegalite/v5/schema/vega-lite-schema.json"
    )
    validator = jsonschema.Draft7Validator(json.loads(schema_path.read_text()))
    assert list(validator.iter_errors(CRITICAL_BATCH_SPEC)) == []
    scales = [
        v["scale"]["type"]
        for v in json.loads(json.dumps(CRITICAL_BATCH_SPEC))["layer"][0]["encoding"].values()
    ]
    assert scales == ["log", "log"]
    result = measure(regression_model(), max_batch_size=16, repeats=1, log_to_wandb=False)
    assert keys.log_critical_batch(result, preset="me/critical-batch")
    offline_run.finish()
    vis = read_run(run_dir_of(offline_run)).visualizations()[keys.CHART]
    assert vis["panel_config"]["panelDefId"] == "me/critical-batch"
    assert vis["panel_config"]["fieldSettings"] == {
        "x": "batch_size",
        "y": "steps",
        "series": "series",
    }
