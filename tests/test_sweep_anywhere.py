"""The offline sweep flow from any directory (issue 14, items 10 and 11): the train
program ships in the package, templates are found next to their YAML, documented
commands never overwrite a shipped template, and the program runs alone offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wandb_batchsize.tracking.sweep_runner import LocalSweepError, resolve_program
from wandb_batchsize.tracking.sweeps import DEFAULT_PROGRAM, batch_size_sweep

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("torch")


def test_default_program_is_the_installed_one():
    program = Path(batch_size_sweep(64)["program"])
    assert program.is_absolute() and program.is_file() and str(program) == DEFAULT_PROGRAM
    assert program.parent.name == "demo" and program.parent.parent.name == "wandb_batchsize"


def test_template_program_is_found_from_another_directory(tmp_path):
    sweeps = REPO / "sweeps"
    program = yaml.safe_load((sweeps / "bs.yaml").read_text())["program"]
    found = resolve_program(program, [tmp_path, sweeps], anchor=sweeps)
    assert found == sweeps / "train.py"
    elsewhere = tmp_path / "a" / "b"
    elsewhere.mkdir(parents=True)
    (tmp_path / "train.py").write_text("")  # a parent's file outside the YAML's folder
    with pytest.raises(LocalSweepError, match="not found"):
        resolve_program("train.py", [elsewhere], anchor=elsewhere)


def _documented_commands() -> list[str]:
    texts = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    texts += [
        REPO / "wandb_batchsize" / "cli" / "sweep.py",
        REPO / "examples" / "sweep_end_to_end.sh",
    ]
    return [line for path in texts for line in path.read_text().splitlines()]


def test_documented_commands_never_write_a_shipped_template():
    shipped = {p.name for p in (REPO / "sweeps").glob("*.yaml")}
    writes = re.compile(r"(?:>|-o|--output|open\()\s*[\"']?(?:\./)?sweeps/([\w.-]+\.yaml)")
    offending = [line for line in _documented_commands() if (m := writes.search(line)) and
                 m.group(1) in shipped]  # fmt: skip
    assert offending == []


def test_end_to_end_script_writes_only_under_a_relative_out_dir(tmp_path):
    name = f"rel_out_{os.getpid()}"
    env = dict(os.environ, CEILING="64", MIN_BATCH="8", REPEATS="1", N_TRAIN="512")
    proc = subprocess.run(
        ["bash", str(REPO / "examples" / "sweep_end_to_end.sh"), name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = tmp_path / name
    assert (out / "bs.yaml").is_file() and (out / "sweep-bs-demo.json").is_file()
    assert not (REPO / name).exists()


def test_train_program_alone_defaults_to_offline(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        WANDB_DIR=str(tmp_path),
        WANDB_CONFIG_DIR=str(tmp_path / "config"),
        WANDB_CACHE_DIR=str(tmp_path / "cache"),
        WANDB_DATA_DIR=str(tmp_path / "data"),
        NETRC=str(tmp_path / "no-netrc"),
        WANDB_X_DISABLE_STATS="true",
        WANDB_DISABLE_GIT="true",
    )
    argv = ["--batch_size=64", "--n_train=256", "--epochs=1", "--monitor=false"]
    proc = subprocess.run(
        [sys.executable, str(REPO / "sweeps" / "train.py"), *argv],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    notices = [line for line in proc.stderr.splitlines() if "WANDB_MODE is not set" in line]
    assert len(notices) == 1 and "offline" in notices[0]
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
