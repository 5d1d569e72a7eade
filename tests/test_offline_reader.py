"""Run files read in process (issue 14, items 8 and 9): the same content as W&B's own
``wandb leet inspect``, many runs per second, and every damaged run folder counted."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import WANDB_ENV_VARS, fast_settings

from wandb_batchsize.cli import main
from wandb_batchsize.tracking import sweep_results as sr
from wandb_batchsize.tracking.offline import read_run, scan_run
from wandb_batchsize.tracking.record_log import read_records

GROUP = "damaged"
SIZES = (8, 16, 32, 64)


def _leet(path: Path, *extra: str) -> str:
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *extra, str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def _plain(value):
    """leet prints NaN and infinities as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def test_same_content_as_wandb_leet_inspect(offline_run):
    import wandb

    run = offline_run
    run.config.update({"extra": "v", "nested": {"a": 1}})
    run.define_metric("s/*", step_metric="s/step")
    big = "x" * 70_000  # one record over two 32 KiB blocks: first, middle and last pieces
    for i in range(300):
        run.log({"s/step": i, "s/loss": 1 / (i + 1), "d": {"x": i}, "nan": float("nan")})
    table = wandb.Table(columns=["K", "chi"], data=[[1, 2.0], [2, 3.0]])
    run.log({"blob": big, "c": wandb.plot_table("wandb/line/v0", table, {"x": "K", "y": "chi"})})
    run.summary.update({"deep": {"a": {"b": 1}}, "gone": 1})
    del run.summary["gone"]
    run.finish()
    folder = Path(run.dir).parent
    ours = read_run(folder)
    run_file = next(folder.glob("run-*.wandb"))

    records = [json.loads(line) for line in _leet(run_file).splitlines() if line.strip()]
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    metrics = [r["metric"] for r in records if r["type"] == "metric"]
    assert _plain(ours.history) == history and len(history) == 301
    assert ours.metrics == metrics
    state = json.loads(_leet(run_file, "--summary"))
    assert _plain(ours.summary) == state["summary"] and "gone" not in ours.summary
    assert {k: v for k, v in ours.config.items() if k != "_wandb"} == state["config"]
    assert (ours.run_id, ours.project, ours.exit_code) == (state["run_id"], state["project"], 0)
    assert ours.visualizations()["c"]["panel_config"]["panelDefId"] == "wandb/line/v0"
    assert ours.table("c_table")["data"] == [[1, 2.0], [2, 3.0]]


@pytest.fixture(scope="module")
def damaged_dir(tmp_path_factory):
    """4 finished runs of one group, a run killed with os._exit(1) mid-run, and copies
    of a finished run whose file is random bytes, empty, bit-flipped or missing."""
    import wandb

    root = tmp_path_factory.mktemp("damaged")
    wandb.teardown()
    env = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        for var in WANDB_ENV_VARS:
            path = root / var.lower()
            path.mkdir()
            mp.setenv(var, str(root if var == "WANDB_DIR" else path))
        for b in SIZES:
            run = wandb.init(
                project="damaged",
                group=GROUP,
                config={"batch_size": b},
                settings=fast_settings(),
                reinit="create_new",
            )
            run.log({"val/loss": 1.0 + 1.0 / b})
            run.finish()
        wandb.teardown()
        env = dict(os.environ)
    killed = textwrap.dedent(
        f"""
        import os, wandb
        run = wandb.init(project="damaged", group={GROUP!r}, config={{"batch_size": 128}},
                         settings=wandb.Settings(silent=True, console="off",
                                                 x_disable_stats=True, disable_git=True))
        for i in range(400):  # past W&B's first 32 KiB block, which it writes out
            run.log({{"val/loss": 2.0, "note": "x" * 100}})
        os._exit(1)
        """
    )
    subprocess.run([sys.executable, "-c", killed], env=env, timeout=120, check=False)
    runs = root / "wandb"
    source = sorted(runs.glob("offline-run-*"))[0]
    data = next(source.glob("run-*.wandb")).read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    for name, content in (
        ("random", os.urandom(4096)),
        ("empty", b""),
        ("flipped", bytes(flipped)),
        ("nofile", None),
    ):
        target = runs / f"offline-run-20260101_000000-{name}"
        shutil.copytree(source, target)
        next(target.glob("run-*.wandb")).unlink()
        if content is not None:
            (target / f"run-{name}.wandb").write_bytes(content)
    time.sleep(1)  # the killed run's W&B process lets go of its file
    yield root
    wandb.teardown()


def test_damaged_files_are_reported_not_raised(damaged_dir):
    runs = {p.name.rsplit("-", 1)[1]: scan_run(p) for p in (damaged_dir / "wandb").iterdir()
            if p.name.startswith("offline-run-")}  # fmt: skip
    assert runs["random"].problem == "not a W&B run file"
    assert runs["empty"].problem == "empty file"
    assert runs["flipped"].problem.startswith("checksum mismatch at byte")
    assert runs["nofile"].problem == "no run-*.wandb file"
    killed = [r for r in runs.values() if r.config.get("batch_size") == 128]
    assert len(killed) == 1 and killed[0].problem is None and killed[0].exit_code is None
    with pytest.raises(Exception, match="cannot read the W&B run at .*: empty file"):
        read_run(damaged_dir / "wandb" / "offline-run-20260101_000000-empty")


def test_a_cut_off_file_reads_to_where_it_ends(damaged_dir, tmp_path):
    source = next(p for p in (damaged_dir / "wandb").glob("offline-run-*") if scan_run(p).finished)
    data = next(source.glob("run-*.wandb")).read_bytes()
    cut = tmp_path / "run-cut.wandb"
    cut.write_bytes(data[:-5])
    log = read_records(cut)
    assert log.problem is None and log.truncated
    assert 0 < len(log.records) < len(read_records(next(source.glob("run-*.wandb"))).records)


def test_sweep_analyze_counts_every_run_folder(damaged_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["sweep", "analyze", str(damaged_dir), "--group", GROUP, "--metric", "val/loss"]
    code = main([*argv, "--no-log", "--out-dir", str(out), "--n-bootstrap", "20"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    assert (
        "skipped 5 of 9 runs: 1 running or killed (no exit record), 1 unreadable (checksum "
        "mismatch), 1 unreadable (empty file), 1 unreadable (no run-*.wandb file), "
        "1 unreadable (not a W&B run file)" in captured.out
    )
    assert captured.out.count("unreadable run folder") == 4
    doc = json.loads((out / f"sweep-{GROUP}.json").read_text())
    assert doc["n_runs_seen"] == 9 and doc["n_runs_used"] == 4 and len(doc["unreadable"]) == 4


def test_many_run_folders_per_second(damaged_dir, tmp_path):
    finished = [p for p in (damaged_dir / "wandb").glob("offline-run-*") if scan_run(p).finished]
    copies = tmp_path / "wandb"
    for i in range(40):
        shutil.copytree(finished[i % len(finished)], copies / f"offline-run-20260101_{i:06d}-c{i}")
    t0 = time.perf_counter()
    runs = sr.offline_runs(tmp_path)
    elapsed = time.perf_counter() - t0
    assert len(runs) == 40 and all(r.state == "finished" for r in runs)
    assert elapsed < 4.0  # two `wandb leet inspect` subprocesses per run took ~2 s per run
