"""Shared fixtures: hermetic offline W&B runs whose files the tests read back."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

WANDB_ENV_VARS = (
    "WANDB_DIR",
    "WANDB_CACHE_DIR",
    "WANDB_DATA_DIR",
    "WANDB_CONFIG_DIR",
    "WANDB_ARTIFACT_DIR",
)


def fast_settings():
    """Settings that keep an offline test run quick and quiet."""
    import wandb

    return wandb.Settings(
        silent=True, console="off", x_disable_stats=True, disable_git=True, save_code=False
    )


@pytest.fixture
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline W&B confined to a tmp dir; yields the dir that holds ``wandb/``.

    No key, no network: everything a run logs lands in ``<dir>/wandb/offline-run-*``.
    """
    root = tmp_path / "wandb_root"
    root.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    for var in WANDB_ENV_VARS:
        path = root / var.lower()
        path.mkdir()
        monkeypatch.setenv(var, str(root if var == "WANDB_DIR" else path))
    monkeypatch.chdir(tmp_path)
    yield root
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        # the test may have torn wandb down itself
        with contextlib.suppress(Exception):
            wandb.finish()


@pytest.fixture
def offline_run(wandb_env: Path):
    """A started offline run; finish it (``run.finish()``) before reading its files."""
    import wandb

    run = wandb.init(project="wandb-batchsize-tests", settings=fast_settings())
    yield run
    if wandb.run is not None:
        wandb.finish()


def run_dir_of(run) -> Path:
    """The folder of a (finished) run: ``<WANDB_DIR>/wandb/offline-run-...``."""
    return Path(run.dir).parent


def pytest_configure(config):
    # Keep TensorFlow quiet and on the CPU in every test process.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    # wandb's process-wide singleton keeps the settings of the first run of the
    # session; make those absolute, offline and outside the checkout, whichever
    # test comes first. Tests that need their own dirs call wandb.teardown().
    import tempfile

    session_root = Path(tempfile.mkdtemp(prefix="wandb-batchsize-tests-"))
    os.environ["WANDB_MODE"] = "offline"
    os.environ.pop("WANDB_API_KEY", None)
    for var in WANDB_ENV_VARS:
        path = session_root / var.lower()
        path.mkdir()
        os.environ[var] = str(session_root if var == "WANDB_DIR" else path)
