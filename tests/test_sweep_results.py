"""Sweep results back into sweep-mode K_c: real offline runs, read as wandb.Api runs.

The runs are logged offline by wandb itself and read back from their files; the
online path is exercised through ``OfflineApiRun``, which exposes the members of a
``wandb.Api`` run (``state``, ``config``, ``summary_metrics``, ``scan_history``)
over those files. wandb is never mocked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import WANDB_ENV_VARS, fast_settings

from wandb_batchsize.tracking import keys
from wandb_batchsize.tracking import sweep_results as sr
from wandb_batchsize.tracking.offline import OfflineRun, read_run

SIZES = (8, 16, 32, 64, 128)
S_MIN, B_NOISE = 100.0, 40.0
GROUP = "bs-test"


def loss_at(b: int, seed: int) -> float:
    """A loss that is flat at small batches and rises past ~40 (steepest near 64)."""
    return 0.5 + 0.6 / (1.0 + math.exp(-(math.log2(b) - 6.0) * 1.5)) + 0.004 * (seed - 0.5)


def steps_at(b: int, seed: int) -> float:
    return S_MIN * (1 + B_NOISE / b) * (1.0 + 0.02 * (seed - 0.5))


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """One offline sweep, logged once for the module: 5 sizes, a second seed at 32,
    runs that must be skipped (failed, no metric, NaN metric), one of another group."""
    import wandb

    root = tmp_path_factory.mktemp("sweep_runs")
    wandb.teardown()  # settings cached by earlier tests' runs would send these runs there
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.delenv("WANDB_API_KEY", raising=False)
        for var in WANDB_ENV_VARS:
            path = root / var.lower()
            path.mkdir()
            mp.setenv(var, str(root if var == "WANDB_DIR" else path))

        def log_run(group, config, rows=(), summary=None, exit_code=0):
            run = wandb.init(
                project="sweep-tests",
                dir=str(root),
                group=group,
                job_type="sweep-run",
                config=config,
                settings=fast_settings(),
                reinit="create_new",
            )
            for row in rows:
                run.log(row)
            for k, v in (summary or {}).items():
                run.summary[k] = v
            run.finish(exit_code=exit_code)

        for b, seed in [(b, 0) for b in SIZES] + [(32, 1)]:
            if True:
                final = loss_at(b, seed)
                rows = [{"val/loss": final + 0.3}, {"val/loss": final - 0.01}, {"val/loss": final}]
                log_run(
                    GROUP,
                    {"batch_size": b, "seed": seed},
                    rows,
                    {"steps_to_target": steps_at(b, seed)},
                )
        log_run(GROUP, {"batch_size": 8, "seed": 2}, [{"val/loss": 9.0}], exit_code=1)
        log_run(GROUP, {"batch_size": 16, "seed": 2}, [{"train/loss": 1.0}])
        log_run(GROUP, {"batch_size": 32, "seed": 2}, [{"val/loss": float("nan")}])
        log_run("other-group", {"batch_size": 64, "seed": 0}, [{"val/loss": 5.0}])
        wandb.teardown()  # the next wandb.setup reads its (test's) environment again
    yield root
    wandb.teardown()


@pytest.fixture(scope="module")
def api_runs(sweep_dir):
    return sr.offline_runs(sweep_dir)


def test_offline_runs_look_like_api_runs(api_runs):
    run = next(r for r in api_runs if r.config.get("batch_size") == 64 and r.group == GROUP)
    assert run.state == "finished"
    assert not any(k.startswith("_") for k in run.config)  # as wandb.Api's run.config
    assert run.config["seed"] in (0, 1)
    assert run.summary_metrics["val/loss"] == pytest.approx(loss_at(64, run.config["seed"]))
    history = list(run.scan_history(keys=["val/loss"]))
    assert len(history) == 3 and set(history[0]) == {"val/loss"}
    assert list(run.scan_history(keys=["val/loss", "absent"])) == []
    failed = next(r for r in api_runs if r.config.get("seed") == 2 and r.config["batch_size"] == 8)
    assert failed.state == "failed"


def test_unfinished_run_state():
    run = OfflineRun(
        path=Path("."),
        run_id="x",
        project="p",
        group="g",
        job_type="",
        name="",
        sweep_id="",
        state="running",
        exit_code=None,
        config={"batch_size": 8},
        summary={"val/loss": 1.0},
        history=[],
    )
    adapted = sr.OfflineApiRun(run)
    assert adapted.state == "running"
    collected = sr.collect_sweep_runs([adapted], metric="val/loss")
    assert collected.skipped == {"running or killed (no exit record)": 1}
    assert collected.records == []


def test_group_selection(api_runs):
    assert len(sr.select_group(api_runs, GROUP)) == 9
    with pytest.raises(LookupError, match="several groups .*choose one with --group"):
        sr.select_group(api_runs, None)
    with pytest.raises(LookupError, match="no runs in group 'nope'; groups found: bs-test"):
        sr.select_group(api_runs, "nope")


def test_collect_skips_and_counts(api_runs):
    collected = sr.collect_sweep_runs(sr.select_group(api_runs, GROUP), metric="val/loss")
    assert len(collected.records) == 6
    assert collected.skipped == {"failed": 1, "without val/loss": 1, "with non-finite val/loss": 1}
    assert collected.skipped_text() == (
        "skipped 3 of 9 runs: 1 failed, 1 with non-finite val/loss, 1 without val/loss"
    )
    per_batch = collected.per_batch()
    assert [row["batch_size"] for row in per_batch] == list(SIZES)
    assert [row["n"] for row in per_batch] == [1, 1, 2, 1, 1]
    assert per_batch[2]["mean"] == pytest.approx((loss_at(32, 0) + loss_at(32, 1)) / 2)
    assert math.isnan(per_batch[0]["se"]) and per_batch[2]["se"] > 0
    # min over the history instead of the summary's last value
    low = sr.collect_sweep_runs(sr.select_group(api_runs, GROUP), metric="val/loss", reduce="min")
    assert np.allclose(np.sort(low.metrics), np.sort(collected.metrics - 0.01))


def test_loss_sweep_analysis(api_runs):
    collected = sr.collect_sweep_runs(sr.select_group(api_runs, GROUP), metric="val/loss")
    result = sr.analyze_collected(collected, n_bootstrap=200)
    assert result.n_runs == 6
    assert list(result.batch_sizes) == list(SIZES)
    assert list(result.counts) == [1, 1, 2, 1, 1]
    assert result.K_c == 64  # the steepest part of the loss curve
    assert result.K_c_interval is not None and result.B_crit is None


def test_steps_to_target_gives_b_crit(api_runs):
    collected = sr.collect_sweep_runs(sr.select_group(api_runs, GROUP), metric="steps_to_target")
    assert sr.metric_kind_for("steps_to_target") == "steps_to_target"
    result = sr.analyze_collected(collected, n_bootstrap=200)
    assert result.diagnostics["metric_kind"] == "steps_to_target"
    assert result.B_crit == pytest.approx(B_NOISE, rel=0.1)
    assert result.S_min == pytest.approx(S_MIN, rel=0.05)
    lo, hi = result.B_crit_interval
    assert lo <= result.B_crit <= hi


def test_too_few_sizes_is_a_clear_error(api_runs):
    runs = [r for r in sr.select_group(api_runs, GROUP) if r.config["batch_size"] <= 32]
    collected = sr.collect_sweep_runs(runs, metric="val/loss")
    with pytest.raises(ValueError, match=r"needs runs at >= 4 distinct batch sizes, got 3"):
        sr.analyze_collected(collected)


def test_analysis_run_logs_chart_table_and_k_c(api_runs, sweep_dir, tmp_path):
    collected = sr.collect_sweep_runs(sr.select_group(api_runs, GROUP), metric="steps_to_target")
    result = sr.analyze_collected(collected, n_bootstrap=100)
    png = tmp_path / "plot.png"
    from wandb_batchsize.plot import plot_sweep

    plot_sweep(result).savefig(png)
    run = sr.log_sweep_analysis(
        result,
        collected,
        source=str(sweep_dir),
        metric_kind="steps_to_target",
        project="sweep-tests",
        group=GROUP,
        mode="offline",
        image=png,
        wandb_dir=tmp_path,
        settings=fast_settings(),
    )
    assert Path(run.dir).is_relative_to(tmp_path)
    logged = read_run(Path(run.dir).parent)
    assert logged.job_type == sr.ANALYSIS_JOB_TYPE and logged.finished
    assert logged.summary[keys.SWEEP_K_C] == result.K_c
    assert logged.summary["sweep/B_crit"] == pytest.approx(result.B_crit)
    table = logged.table(keys.SWEEP_TABLE)
    assert table["columns"] == sr.PER_BATCH_COLUMNS
    assert [row[0] for row in table["data"]] == list(SIZES)
    charts = logged.visualizations()
    assert charts[keys.SWEEP_CHI_CHART]["panel_config"]["panelDefId"] == "wandb/line/v0"
    chi_table = logged.table(keys.table_key(keys.SWEEP_CHI_CHART))
    assert [row[0] for row in chi_table["data"]] == [float(b) for b in SIZES]
    assert logged.summary["sweep/plot"]["format"] == "png"
    # the analysis run is not itself counted as a sweep run on the next analysis
    assert sr.collect_sweep_runs([sr.OfflineApiRun(logged)], metric="sweep/K_c").n_seen == 0


def test_cli_analyze_offline_folder(sweep_dir, tmp_path, capsys, monkeypatch):
    from wandb_batchsize.cli import main

    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "out"
    code = main(
        [
            "sweep",
            "analyze",
            str(sweep_dir),
            "--group",
            GROUP,
            "--out-dir",
            str(out),
            "--n-bootstrap",
            "100",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert "skipped 3 of 9 runs: 1 failed" in text
    assert "K_c    = 64" in text and "<- K_c" in text
    doc = json.loads((out / f"sweep-{GROUP}.json").read_text())
    assert doc["result"]["K_c"] == 64 and doc["n_runs_used"] == 6
    assert doc["skipped"]["failed"] == 1
    assert (out / f"sweep-{GROUP}.png").stat().st_size > 1000
    # the analysis run sits next to the sweep's runs, in its group
    logged_at = text.split("analysis run logged to W&B: ")[1].split()[0]
    analysis = read_run(logged_at)
    assert Path(logged_at).parent == sweep_dir / "wandb"
    assert analysis.group == GROUP and analysis.summary[keys.SWEEP_K_C] == 64
    assert len(sr.select_group(sr.offline_runs(sweep_dir), GROUP)) == 9


def test_cli_analyze_errors(sweep_dir, tmp_path, capsys, monkeypatch):
    from wandb_batchsize.cli import main

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))
    cases = [
        ([str(sweep_dir)], "choose one with --group"),
        ([str(sweep_dir), "--group", "nope"], "no runs in group 'nope'"),
        ([str(tmp_path / "missing")], "neither a folder of W&B runs nor ENTITY/PROJECT/SWEEP_ID"),
        ([str(tmp_path)], "no W&B run folders"),
        ([str(sweep_dir), "--group", "other-group", "--no-log"], "needs runs at >= 4 distinct"),
    ]
    for argv, message in cases:
        assert main(["sweep", "analyze", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_cli_online_without_account_says_so(tmp_path, capsys, monkeypatch):
    """The online path needs a W&B account: with none, one clear line, exit 2."""
    from wandb_batchsize.cli import main

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "analyze", "my-team/my-project/abc123"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a W&B account (wandb login)" in err and len(err.splitlines()) == 1


def test_cli_online_path_with_api_shaped_runs(api_runs, tmp_path, capsys, monkeypatch):
    """Everything after wandb.Api, fed with offline runs in the Api's shape: the metric
    comes from the sweep's config, as it would online."""
    from wandb_batchsize.cli import main

    runs = sr.select_group(api_runs, GROUP)
    sweep = SimpleNamespace(runs=runs, config={"metric": {"name": "steps_to_target"}})

    class OfflineSweepApi:  # what online_sweep needs from wandb.Api: .sweep(path)
        def sweep(self, path):
            assert path == "team/proj/abc123"
            return sweep

    original = sr.online_sweep
    monkeypatch.setattr(sr, "online_sweep", lambda path: original(path, api=OfflineSweepApi()))
    out = tmp_path / "out"
    code = main(
        [
            "sweep",
            "analyze",
            "team/proj/abc123",
            "--out-dir",
            str(out),
            "--no-log",
            "--n-bootstrap",
            "50",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert "metric: steps_to_target (steps_to_target)" in text and "B_crit" in text
    doc = json.loads((out / "sweep-abc123.json").read_text())
    assert doc["result"]["B_crit"] == pytest.approx(B_NOISE, rel=0.1)
    assert doc["source"] == "team/proj/abc123" and doc["n_runs_used"] == 6

    # --json - : the document on stdout, nothing else there
    argv = ["sweep", "analyze", "team/proj/abc123", "--json", "-", "--no-log"]
    assert main([*argv, "--out-dir", str(out), "--n-bootstrap", "50"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["metric"] == "steps_to_target"
    assert "plot written to" in captured.err
