"""The framework-free monitor core: buffering, checks, schedule, W&B plumbing."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import fast_settings, run_dir_of

from wandb_batchsize.analysis import analyze
from wandb_batchsize.monitor import MonitorCore, defaults, pending
from wandb_batchsize.tracking.offline import read_run


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def test_importing_the_core_imports_no_framework_and_no_wandb():
    code = (
        "import sys, wandb_batchsize, wandb_batchsize.monitor as m, wandb_batchsize.integrations._core as c; "
        "wandb_batchsize.SusceptibilityMonitor(window=100).result; "
        "heavy = {'torch', 'tensorflow', 'keras', 'wandb', 'lightning', 'transformers'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_window_mode_checks_on_schedule_and_analyses_the_last_steps():
    x = _noise(1000)
    core = MonitorCore(100, window=300, detrend="linear", log_to_wandb=False, max_overhead=None)
    results = [core.record(float(v)) for v in x]
    assert list(core.history_steps) == list(range(100, 1001, 100))
    assert sum(r is not None for r in results) == 10
    np.testing.assert_array_equal(core.values(), x[-300:])
    expected = analyze(x[-300:], detrend="linear")
    got = core.result()
    assert got.K_c == expected.K_c and got.n == 300
    np.testing.assert_allclose(got.V_values, expected.V_values)
    assert core.history[-1] is got  # the last check is the current result, not recomputed


def test_streaming_equals_the_batch_analysis_of_every_step():
    x = _noise(3000, seed=1)
    core = MonitorCore(500, detrend="none", log_to_wandb=False, max_overhead=None)
    for v in x[:1000]:
        core.record(v)  # numpy scalars
    core.record_many(x[1000:2500])
    for v in x[2500:]:
        core.record(float(v))
    got, expected = core.result(), analyze(x, detrend="none")
    np.testing.assert_array_equal(got.K_values, expected.K_values)
    np.testing.assert_allclose(got.V_values, expected.V_values, rtol=1e-9)
    assert got.K_c == expected.K_c and got.n == 3000
    assert list(core.history_steps) == [500, 1000, 2500, 3000]  # record_many: one check


def test_auto_detrend_is_linear_in_a_window_and_a_moving_average_when_streaming():
    assert MonitorCore(window=100, log_to_wandb=False).detrend == "linear"
    streaming = MonitorCore(log_to_wandb=False)
    assert streaming.detrend == "auto" and streaming._min_values == 20
    assert streaming.detrend_in_use() == "linear"  # nothing seen yet: a short run


def test_checks_before_enough_steps_are_skipped_quietly_and_nonfinite_losses_dropped():
    core = MonitorCore(5, window=50, detrend="none", log_to_wandb=False, max_overhead=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for v in _noise(15):
            assert core.record(v) is None
    assert not core.history
    core.record(float("nan"))
    core.record(float("inf"))
    for v in _noise(10, seed=2):
        core.record(v)
    assert core.n_nonfinite == 2 and core.n_steps == 27
    assert core.history[-1].n == 23 and core.history_steps[-1] == 25
    with pytest.raises(ValueError, match="at least 20"):
        MonitorCore(5, window=50, log_to_wandb=False).result()


def test_micro_batches_are_combined_into_one_step():
    torch = pytest.importorskip("torch")
    core = MonitorCore(1000, window=100, detrend="none", log_to_wandb=False)
    core.add_micro(0.5)
    core.add_micro(0.25)
    core.end_step(reduce="sum")
    core.add_micro(torch.tensor(1.0))
    core.add_micro(torch.tensor(3.0, requires_grad=True))
    core.end_step(reduce="mean")
    core.end_step()  # nothing pending: no step
    np.testing.assert_allclose(core.values(), [0.75, 2.0])
    assert core.n_steps == 2


def test_tensor_losses_wait_on_their_device_and_move_in_one_transfer(monkeypatch):
    torch = pytest.importorskip("torch")
    transfers = []
    real = pending.values_to_host
    monkeypatch.setattr(pending, "values_to_host", lambda t: transfers.append(len(t)) or real(t))
    core = MonitorCore(100, window=400, detrend="none", log_to_wandb=False, max_overhead=None)
    losses = torch.rand(300)
    for i, loss in enumerate(losses):
        core.record(loss.clone().requires_grad_() if i % 2 else loss, step=i + 1)
    assert transfers == [100, 100, 100]  # one stack + copy per check
    np.testing.assert_allclose(core.values(), losses.double().numpy())
    # checks rarer than FLUSH_EVERY: still bounded memory, one transfer per FLUSH_EVERY steps
    transfers.clear()
    rare = MonitorCore(10**9, window=100, detrend="none", log_to_wandb=False)
    for _ in range(defaults.FLUSH_EVERY + 10):
        rare.record(torch.tensor(1.0))
    assert transfers == [defaults.FLUSH_EVERY] and rare._pending.n == 10


def test_expensive_checks_are_spaced_out_to_respect_max_overhead():
    x = _noise(20_000, seed=3)
    core = MonitorCore(100, window=2000, detrend="linear", log_to_wandb=False, max_overhead=0.01)
    for v in x:  # a "training step" of a microsecond: every check is far too expensive
        core.record(float(v))
    assert 1 <= len(core.history) < 20 and core.n_deferred > 0
    assert all(s % 100 == 0 for s in core.history_steps)
    final = core.finish()  # the final check is never skipped
    assert final is not None and core.history_steps[-1] == 20_000


def test_bad_parameters_are_reported_at_construction():
    with pytest.raises(TypeError, match="unknown analysis parameter"):
        MonitorCore(analysis_kwargs={"K_minn": 3}, log_to_wandb=False)
    with pytest.raises(ValueError, match="window"):
        MonitorCore(window=5, log_to_wandb=False)
    with pytest.raises(ValueError, match="check_every"):
        MonitorCore(0, log_to_wandb=False)
    with pytest.raises(ValueError, match="linear"):
        MonitorCore(detrend="linear", log_to_wandb=False)  # streaming cannot detrend linearly
    core = MonitorCore(window=100, analysis_kwargs={"n_points": 20, "max_scale": 50})
    assert core._analyze_kwargs == {"n_points": 20, "detrend": "linear"}


def test_history_is_bounded():
    core = MonitorCore(20, window=40, log_to_wandb=False, max_overhead=None, max_history=3)
    core.record_many(_noise(50))
    for v in _noise(200, seed=4):
        core.record(v)
    assert len(core.history) == 3 and list(core.history_steps) == [200, 220, 240]


def test_without_a_run_or_with_wandb_disabled_results_are_still_computed(wandb_env):
    import wandb

    core = MonitorCore(50, window=100, detrend="none", max_overhead=None)
    for v in _noise(100):
        core.record(v)
    assert core.sink() is None and len(core.history) == 2
    # mode= rather than WANDB_MODE: wandb reads the environment once per process
    run = wandb.init(project="p", mode="disabled")
    core = MonitorCore(50, window=100, detrend="none", max_overhead=None)
    core.record_many(_noise(100))
    assert core.sink() is None and core.finish() is not None
    run.finish()


def test_a_wandb_failure_warns_once_and_training_goes_on(offline_run):
    core = MonitorCore(50, window=100, detrend="none", max_overhead=None, run=offline_run)
    offline_run.finish()  # logging to a finished run fails inside wandb
    with pytest.warns(RuntimeWarning, match="training continues") as caught:
        for v in _noise(300):
            core.record(v)
        final = core.finish()
    assert len([w for w in caught if "training continues" in str(w.message)]) == 1
    assert final is not None and len(core.history) == 6


def test_custom_preset_logs_one_chart_on_that_preset(wandb_env):
    import wandb

    run = wandb.init(project="p", settings=fast_settings())
    core = MonitorCore(100, window=200, detrend="none", chart_preset="me/susceptibility")
    core.record_many(_noise(200))
    run.finish()
    logged = read_run(run_dir_of(run))
    spec = logged.visualizations()["susceptibility/chart"]
    assert spec["panel_config"]["panelDefId"] == "me/susceptibility"
    table = logged.table("susceptibility/chart_table")
    assert table["columns"] == ["K", "V", "chi", "K_c", "is_K_c"]
    assert len(table["data"]) == len(core.history[-1].K_values)


def test_the_shipped_vega_spec_is_valid_vega_lite_once_wandb_fills_it_in():
    import json
    import re

    alt = pytest.importorskip("altair")
    from wandb_batchsize.tracking.charts import CUSTOM_PRESET_FIELDS, VEGA_SPEC_PATH

    text = VEGA_SPEC_PATH.read_text()
    assert set(re.findall(r"\$\{field:(\w+)\}", text)) == set(CUSTOM_PRESET_FIELDS)
    text = re.sub(r"\$\{field:(\w+)\}", r"\1", text).replace("${string:title}", "chi and V")
    spec = json.loads(text)
    spec["data"] = {"values": [{"K": 2, "V": 1.0, "chi": 1.0, "K_c": 2, "is_K_c": True}]}
    alt.VConcatChart.from_dict(spec)  # raises on a schema violation
    assert spec["vconcat"][1]["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"


@pytest.mark.parametrize(
    ("n", "detrend"), [(20, "linear"), (99, "linear"), (400, 80), (3000, 600), (6000, 1000)]
)
def test_auto_detrend_gives_a_result_on_any_run_long_enough_for_the_analysis(n, detrend):
    """Issue 14, item 1: the default used to need 1019 steps; now 20 are enough."""
    x = _noise(n, seed=5) + np.linspace(2.0, 0.0, n)  # a falling loss with noise
    core = MonitorCore(10**6, log_to_wandb=False)
    core.record_many(x)
    final = core.finish()
    assert final is not None and final.diagnostics["detrend"] == detrend
    assert core.detrend_in_use() == detrend
    if n <= 5000:  # the batch analysis of every step, with the detrend chosen for n
        expected = analyze(x, detrend=detrend)
        assert final.K_c == expected.K_c and final.n == expected.n
        assert core._short is not None
    else:  # past 5000 steps: streamed, the first steps' buffer is gone
        assert core._short is None and final.diagnostics["source"] != "batch"
        assert "streamed" in final.diagnostics["detrend_choice"]
    with pytest.raises(ValueError, match="at least 20"):
        MonitorCore(log_to_wandb=False).result()


def test_finish_is_idempotent_and_new_steps_make_a_new_final_result(offline_run):
    core = MonitorCore(50, window=100, detrend="none", max_overhead=None, run=offline_run)
    core.record_many(_noise(100))
    first = core.finish()
    assert core.finish() is first and core.n_checks == 1  # no second check, nothing rewritten
    core.record_many(_noise(50, seed=6))
    second = core.finish()
    assert second is not first and second.n == 100
