"""The shared W&B plumbing: an offline run is read back from its files."""

from __future__ import annotations

import warnings

import pytest
from conftest import fast_settings, run_dir_of

from wandb_batchsize.tracking.offline import iter_run_dirs, read_run
from wandb_batchsize.tracking.run import WandbSink, active_run


def test_offline_run_is_read_back(wandb_env):
    import wandb

    run = wandb.init(project="p", group="g1", config={"lr": 0.1}, settings=fast_settings())
    sink = WandbSink(run)
    sink.define_step_metric("susceptibility/*", "susceptibility/step")
    for step in (10, 20, 30):
        sink.log({"susceptibility/step": step, "susceptibility/K_c": step / 10})
    table = wandb.Table(columns=["K", "chi"], data=[[2, 1.0], [4, 2.0]])
    sink.log({"chart": wandb.plot_table("wandb/line/v0", table, {"x": "K", "y": "chi"})})
    sink.summary_update({"final/K_c": 3.0})
    sink.config_update({"batch_size": 64})
    run.finish()

    logged = read_run(run_dir_of(run))
    assert logged.finished and logged.group == "g1"
    assert logged.config["lr"] == 0.1 and logged.config["batch_size"] == 64
    assert logged.history_of("susceptibility/K_c") == [1.0, 2.0, 3.0]
    assert logged.history_of("susceptibility/step") == [10, 20, 30]
    assert logged.summary["final/K_c"] == 3.0
    assert logged.table("chart_table")["data"] == [[2, 1.0], [4, 2.0]]
    assert logged.visualizations()["chart"]["panel_config"]["panelDefId"] == "wandb/line/v0"
    step_metrics = {m.get("glob_name"): m.get("step_metric") for m in logged.metrics}
    assert step_metrics["susceptibility/*"] == "susceptibility/step"
    # W&B keeps the first WANDB_DIR of the process, so list the folder the run used
    assert run_dir_of(run) in list(iter_run_dirs(run_dir_of(run).parent))


def test_no_run_means_no_logging(wandb_env):
    assert active_run() is None
    sink = WandbSink()
    assert not sink.enabled and not sink.log({"a": 1})


def test_disabled_mode_counts_as_no_run(wandb_env):
    import wandb

    run = wandb.init(project="p", mode="disabled")
    assert active_run() is None
    run.finish()


def test_a_failing_run_warns_once_and_never_raises(offline_run):
    sink = WandbSink(offline_run)
    offline_run.finish()  # logging to a finished run fails inside wandb
    with pytest.warns(RuntimeWarning, match="training continues"):
        assert sink.log({"a": 1}) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sink.log({"a": 2}) is False
