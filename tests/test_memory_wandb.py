"""What find_batch_size records on W&B, read back from offline run files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from conftest import fast_settings, run_dir_of  # noqa: E402
from torch import nn  # noqa: E402

import wandb_batchsize as wbs  # noqa: E402
from wandb_batchsize.tracking import keys, pending  # noqa: E402
from wandb_batchsize.tracking.offline import read_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = (
    keys.BATCH_FINDER_MODEL_PARAMS,
    keys.BATCH_FINDER_MODEL_MEMORY_MB,
    keys.BATCH_FINDER_OPTIMAL,
    keys.BATCH_FINDER_MAX_FITTING,
    keys.BATCH_FINDER_PROBES,
)


class Limit(nn.Module):
    """A simulated budget: the allocator's OOM above ``limit`` samples."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return x


def model(limit: int = 200):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), Limit(limit), nn.Linear(16, 3))


def find(limit: int = 200, **kwargs):
    batch = (torch.randn(4, 8), torch.randint(0, 3, (4,)))
    return wbs.find_batch_size(model(limit), batch, verbose=False, **kwargs)


@pytest.fixture(autouse=True)
def _nothing_left_pending():
    yield
    pending.discard()


def assert_logged(run_data, result):
    assert run_data.config["batch_size"] == result.batch_size
    assert run_data.config["batch_size_source"] == "dynamic_finder"
    for key in SUMMARY_KEYS:
        assert key in run_data.summary, key
    assert run_data.summary[keys.BATCH_FINDER_OPTIMAL] == result.batch_size
    assert run_data.summary[keys.BATCH_FINDER_MAX_FITTING] == result.max_fitting
    assert run_data.summary[keys.BATCH_FINDER_MODEL_PARAMS] == result.model_params
    table = run_data.table(keys.BATCH_FINDER_PROBES)
    assert table["columns"][:4] == ["batch_size", "fitted", "peak_bytes", "seconds"]
    assert [row[0] for row in table["data"]] == [p.batch_size for p in result.probes]
    assert any(row[1] is False for row in table["data"])


def test_logs_to_the_active_run_replacing_an_existing_batch_size(offline_run, capsys):
    offline_run.config.update({"batch_size": 64})
    batch = (torch.randn(4, 8), torch.randint(0, 3, (4,)))
    result = wbs.find_batch_size(model(), batch, verbose=True)  # never crashes on the old value
    assert "replacing batch_size=64" in capsys.readouterr().out
    offline_run.finish()
    assert_logged(read_run(run_dir_of(offline_run)), result)


def test_before_wandb_init_the_next_run_gets_config_and_summary(wandb_env):
    import wandb

    original_init = wandb.init
    result = find()
    assert pending.hook_installed() and pending.pending()
    run = wandb.init(project="t", settings=fast_settings())  # no extra line of user code
    assert not pending.pending() and wandb.init is original_init  # the hook removed itself
    run.finish()
    assert_logged(read_run(run_dir_of(run)), result)
    later = wandb.init(project="t", settings=fast_settings())  # applied once, not again
    later.finish()
    assert "batch_size_source" not in read_run(run_dir_of(later)).config


def test_a_sweep_batch_size_wins(wandb_env, monkeypatch, tmp_path):
    import wandb

    params = tmp_path / "sweep-params.yaml"
    params.write_text("batch_size:\n  value: 48\nlr:\n  value: 0.1\n")
    monkeypatch.setenv("WANDB_SWEEP_ID", "sweep123")
    monkeypatch.setenv("WANDB_SWEEP_PARAM_PATH", str(params))
    monkeypatch.setenv("WANDB_RUN_ID", "run-in-sweep")
    wandb.teardown()  # the agent starts a fresh process: make wandb read the environment again
    try:
        run = wandb.init(project="t", settings=fast_settings())
        assert run.sweep_id == "sweep123" and run.config["batch_size"] == 48
        with pytest.warns(UserWarning, match="sweep set batch_size=48; keeping it"):
            result = find()
        run.finish()
    finally:
        # forget the sweep: later tests must not start their runs inside it
        for var in ("WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH", "WANDB_RUN_ID"):
            monkeypatch.delenv(var)
        wandb.teardown()
    data = read_run(run_dir_of(run))
    assert data.config["batch_size"] == 48
    assert data.config["batch_size_source"] == "sweep"
    assert data.summary[keys.BATCH_FINDER_OPTIMAL] == result.batch_size != 48


def test_no_run_no_login_works_and_logs_nothing(tmp_path):
    code = textwrap.dedent(
        """
        import os, sys, torch
        from torch import nn
        import wandb_batchsize as wbs

        class Limit(nn.Module):
            def forward(self, x):
                if x.shape[0] > 50:
                    raise torch.OutOfMemoryError("CUDA out of memory.")
                return x

        net = nn.Sequential(nn.Linear(8, 4), Limit())
        result = wbs.find_batch_size(net, torch.randn(2, 8), verbose=False)
        print("RESULT", result.max_fitting, result.batch_size)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT), NETRC=str(tmp_path / "none"))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = int(proc.stdout.split("RESULT")[1].split()[0])
    assert 49 <= found <= 50, proc.stdout  # within the 2 % tolerance
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], written  # no wandb/ folder, no settings, nothing


def test_disabled_mode_logs_nothing(monkeypatch, tmp_path):
    from wandb_batchsize.tracking.finder_log import log_result

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)
    result = find(log_to_wandb=False)
    assert log_result(result, verbose=False) == "off"
    assert list(tmp_path.iterdir()) == []


def test_pending_api_for_other_features(wandb_env):
    import wandb

    pending.defer("other-feature", config={"x": 1}, summary={"other/y": 2})
    pending.defer("other-feature", config={"x": 3}, summary={"other/y": 4})  # replaces
    assert [i.source for i in pending.pending()] == ["other-feature"]
    run = wandb.init(project="t", settings=fast_settings())
    run.finish()
    data = read_run(run_dir_of(run))
    assert data.config["x"] == 3 and data.summary["other/y"] == 4
    pending.defer("gone", config={"z": 1})
    pending.discard("gone")
    assert not pending.hook_installed()
