"""Throughput of reading offline run folders for ``wandb-batchsize sweep analyze``.

Writes the "## Offline sweep analysis" section of BENCHMARKS.md (others are kept).

    python benchmarks/sweep_reader.py              # 10 and 100 runs, ~3 minutes
    python benchmarks/sweep_reader.py --no-write   # print the section only

Ten offline runs are logged with wandb (each: 300 history rows of a sweep run's
keys, a custom chart with its table, summary values), then copied to make 100
run folders. Measured, in the same run: the previous reader (``wandb leet
inspect --json`` in a subprocess, twice per run, four threads: kept below as
``old_read_run``, for this benchmark only), the in-process reader
(``tracking.sweep_results.offline_runs``), and the whole ``sweep analyze --no-log``
command in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, machine, publish  # noqa: E402

sys.path.insert(0, str(ROOT))
SECTION = "## Offline sweep analysis"
GROUP = "bench"


# ------------------------------------------------- the previous reader (baseline only)
def _inspect(path: Path, *extra: str) -> str:
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *extra, str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout


def old_read_run(run_dir: Path) -> dict:
    """What ``tracking.offline.read_run`` did before issue 14 (config, history, summary)."""
    run_file = sorted(run_dir.glob("run-*.wandb"))[0]
    history, config = [], {}
    for line in _inspect(run_file).splitlines():
        record = json.loads(line) if line.strip() else {}
        kind = record.get("type")
        if kind == "history":
            history.append(record["history"].get("item", {}))
        elif kind == "config":
            config.update(record["config"].get("update", {}))
    state = json.loads(_inspect(run_file, "--summary"))
    return {"config": {**config, **state.get("config", {})}, "history": history, **state}


def old_offline_runs(root: Path) -> list[dict]:
    dirs = sorted((root / "wandb").glob("offline-run-*"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(old_read_run, dirs))


# ------------------------------------------------------------------ measurement
def log_runs(root: Path, n: int) -> None:
    """``n`` offline runs shaped like a batch-size sweep's, in ``root/wandb``."""
    import wandb

    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(root))
    settings = wandb.Settings(
        silent=True, console="off", x_disable_stats=True, disable_git=True, save_code=False
    )
    for i in range(n):
        b = 8 * 2 ** (i % 5)
        run = wandb.init(
            project="bench",
            group=GROUP,
            config={"batch_size": b, "seed": i // 5},
            settings=settings,
            reinit="create_new",
        )
        for step in range(300):
            run.log({"train/step": step, "train/loss": 1.0 / (step + 1) + b / 1e3})
        table = wandb.Table(columns=["K", "chi"], data=[[k, 1.0 / k] for k in range(2, 40)])
        chart = wandb.plot_table("wandb/line/v0", table, {"x": "K", "y": "chi"})
        run.log({"val/loss": 0.5 + b / 1e3, "susceptibility/chi_chart": chart})
        run.finish()
    wandb.teardown()


def copies(source: Path, target: Path, n: int) -> None:
    runs = sorted((source / "wandb").glob("offline-run-*"))
    for i in range(n):
        shutil.copytree(
            runs[i % len(runs)], target / "wandb" / f"offline-run-20260101_{i:06d}-c{i}"
        )


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cli_seconds(root: Path) -> float:
    cmd = [sys.executable, "-m", "wandb_batchsize", "sweep", "analyze", str(root), "--group",
           GROUP, "--metric", "val/loss", "--no-log", "--out-dir", str(root / "out")]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return timed(lambda: subprocess.run(cmd, env=env, capture_output=True, check=True))


def rows(n: int, root: Path) -> list[str]:
    from wandb_batchsize.tracking import offline_sweep

    def new() -> None:
        offline_sweep._READ_CACHE.clear()
        assert len(offline_sweep.offline_runs(root)) == n

    old_s = timed(lambda: old_offline_runs(root))
    new_s = min(timed(new) for _ in range(3))
    cli_s = min(cli_seconds(root) for _ in range(2))
    line = (
        f"| {n} | {old_s:.1f} | {n / old_s:.1f} | {new_s:.2f} | {n / new_s:,.0f} | "
        f"{old_s / new_s:,.0f}x | {cli_s:.2f} | {n / cli_s:.1f} |"
    )
    print(line, flush=True)
    return [line]


def section() -> str:
    head = machine()
    with tempfile.TemporaryDirectory(prefix="wbs-sweep-bench-") as tmp:
        base = Path(tmp) / "logged"
        log_runs(base, 10)
        size = sum(f.stat().st_size for f in (base / "wandb").glob("offline-run-*/run-*.wandb"))
        table = []
        for n in (10, 100):
            root = Path(tmp) / f"n{n}"
            copies(base, root, n)
            table += rows(n, root)
    return "\n".join(
        [
            SECTION,
            "",
            f"`python benchmarks/sweep_reader.py` on {head}.",
            "",
            "Reading the run folders of an offline sweep (`sweep analyze ./wandb --group G`): "
            "10 offline runs logged by wandb 0.31 (300 history rows, a custom chart and its "
            f"table, summary; {size / 10 / 1024:.0f} KiB of run file each), copied to make "
            "100 folders. *Previous*: two `wandb leet inspect --json` subprocesses per run, "
            "4 threads (one pass). *Now*: the run file's records parsed in process "
            "(`tracking/record_log.py`; min of 3). *CLI*: `wandb-batchsize sweep analyze "
            "... --no-log` end to end in a fresh process (import, read, analysis, JSON and "
            "plot; min of 2).",
            "",
            "| runs | previous s | previous runs/s | now s | now runs/s | speed-up | "
            "CLI s | CLI runs/s |",
            "|---|---|---|---|---|---|---|---|",
            *table,
            "",
        ]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    publish(SECTION, section(), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
