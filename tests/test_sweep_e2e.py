"""The whole offline loop on CPU: sweep create -> sweep run -> sweep analyze.

The real program (``sweeps/train.py`` on ``examples/tiny_task.py``) runs once per
batch size as an offline W&B run, given its parameters the way W&B's agent gives
them; the analysis reads the run files back. No account, no server, no mocks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from wandb_batchsize.cli import main
from wandb_batchsize.tracking import keys
from wandb_batchsize.tracking.sweep_results import offline_runs

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("torch")


@pytest.fixture
def quick_runs(wandb_env, monkeypatch):
    """Child runs inherit these: offline, no system stats, no git, no code saving."""
    monkeypatch.setenv("WANDB_X_DISABLE_STATS", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.setenv("WANDB_SAVE_CODE", "false")
    yield wandb_env
    import wandb

    wandb.teardown()  # the analysis run's settings must not outlive this test's WANDB_DIR


def test_create_run_analyze_offline(quick_runs, tmp_path, capsys):
    sweep_yaml = tmp_path / "bs.yaml"
    assert (
        main(
            [
                "sweep",
                "create",
                "--max-batch",
                "128",
                "--min-batch",
                "8",
                "--base-lr",
                "0.1",
                "--program",
                str(REPO / "sweeps" / "train.py"),
                "--param",
                "epochs=1",
                "--param",
                "n_train=2048",
                "--name",
                "e2e",
                "-o",
                str(sweep_yaml),
            ]
        )
        == 0
    )
    config = yaml.safe_load(sweep_yaml.read_text())
    assert config["parameters"]["batch_size"]["values"] == [8, 16, 32, 64, 128]

    assert main(["sweep", "run", str(sweep_yaml), "--group", "e2e", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "5 of 5 runs finished" in out, out

    runs = [r.offline_run for r in offline_runs(quick_runs)]  # read once; analyze reuses the reads
    assert sorted(r.config["batch_size"] for r in runs) == [8, 16, 32, 64, 128]
    for run in runs:
        assert run.finished and run.group == "e2e" and run.job_type == "sweep-run"
        assert run.config["lr"] == 0.1 and run.config["n_train"] == 2048
        assert run.summary["val/loss"] > 0 and run.history_of("train/loss")
    smallest = next(r for r in runs if r.config["batch_size"] == 8)
    assert keys.SUSCEPTIBILITY_K_C in smallest.summary  # the monitor ran in the program

    results = tmp_path / "results"
    assert (
        main(
            [
                "sweep",
                "analyze",
                str(quick_runs),
                "--group",
                "e2e",
                "--out-dir",
                str(results),
                "--n-bootstrap",
                "100",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "metric: val/loss (loss), 5 runs used" in out
    doc = json.loads((results / "sweep-e2e.json").read_text())
    result = doc["result"]
    assert result["batch_sizes"] == [8, 16, 32, 64, 128]
    assert result["K_c"] in (16, 32, 64)  # interior: the ends are masked
    means = result["metric_mean"]
    assert means[-1] > means[0]  # a fixed sample budget hurts the largest batch
    assert (results / "sweep-e2e.png").stat().st_size > 1000

    analysis = [r.offline_run for r in offline_runs(quick_runs) if r.job_type == "sweep-analysis"]
    assert len(analysis) == 1 and analysis[0].group == "e2e"
    assert analysis[0].summary[keys.SWEEP_K_C] == result["K_c"]
    assert analysis[0].table(keys.SWEEP_TABLE)["data"][0][0] == 8
