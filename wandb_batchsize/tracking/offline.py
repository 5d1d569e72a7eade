"""Read what a W&B run logged, from its local files, with W&B's own reader.

A wandb 0.31 run keeps everything (config, history, summary, chart specs) in
``run-<id>.wandb``; no ``config.yaml`` or ``wandb-summary.json`` is written in
offline mode. ``wandb leet inspect --json`` prints that transaction log, so we
read it through the real W&B tool rather than a parser of our own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class RunFileError(RuntimeError):
    """A run folder that cannot be read."""


def _inspect(path: Path, *extra: str) -> str:
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *extra, str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RunFileError(f"cannot read W&B run at {path}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _run_file(run_dir: Path) -> Path:
    if run_dir.is_file():
        return run_dir
    files = sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise RunFileError(f"no run-*.wandb file in {run_dir}")
    return files[0]


@dataclass
class OfflineRun:
    """What one run logged: config, summary, history rows and metric definitions."""

    path: Path
    run_id: str
    project: str
    group: str
    job_type: str
    name: str
    sweep_id: str
    state: str
    exit_code: int | None
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def files_dir(self) -> Path:
        return self.path / "files"

    @property
    def finished(self) -> bool:
        return self.exit_code == 0

    def table(self, key: str) -> dict[str, Any]:
        """The last logged ``wandb.Table`` under ``key`` (a chart's table is ``<key>_table``).

        Returns ``{"columns": [...], "data": [[...], ...]}`` as W&B stored it.
        """
        ref = self.summary.get(key)
        if not isinstance(ref, dict) or "path" not in ref:
            known = sorted(k for k, v in self.summary.items() if isinstance(v, dict) and "path" in v)
            raise KeyError(f"no table logged under {key!r}; tables in this run: {known}")
        return json.loads((self.files_dir / ref["path"]).read_text())

    def history_of(self, key: str) -> list[Any]:
        """Values of ``key`` in the order they were logged (rows without it skipped)."""
        return [row[key] for row in self.history if key in row]

    def visualizations(self) -> dict[str, Any]:
        """Custom-chart specs recorded in config (``_wandb.visualize``), by chart key."""
        wandb_cfg = self.config.get("_wandb", {})
        vis = wandb_cfg.get("visualize", {}) if isinstance(wandb_cfg, dict) else {}
        flat = {k[len("_wandb.visualize.") :]: v for k, v in self.config.items()
                if k.startswith("_wandb.visualize.")}
        return {**vis, **flat}


def read_run(run_dir: str | Path) -> OfflineRun:
    """Read one run folder (``wandb/offline-run-*`` or ``wandb/run-*``)."""
    path = Path(run_dir)
    run_file = _run_file(path)
    if path.is_file():
        path = path.parent
    info: dict[str, Any] = {}
    config: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    exit_code: int | None = None
    for line in _inspect(run_file).splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        kind = record.get("type")
        body = record.get(kind, {}) if kind else {}
        if kind == "run":
            info = body
            config.update(body.get("config", {}).get("update", {}))
        elif kind == "config":
            config.update(body.get("update", {}))
            for key in body.get("remove", []) or []:
                config.pop(key, None)
        elif kind == "history":
            history.append(body.get("item", {}))
        elif kind == "metric":
            metrics.append(body)
        elif kind == "exit":
            exit_code = int(body.get("exit_code", 0))
    state_doc = json.loads(_inspect(run_file, "--summary"))
    return OfflineRun(
        path=path,
        run_id=info.get("run_id", ""),
        project=info.get("project", ""),
        group=info.get("run_group", ""),
        job_type=info.get("job_type", ""),
        name=info.get("display_name", ""),
        sweep_id=info.get("sweep_id", ""),
        state=state_doc.get("state", ""),
        exit_code=exit_code,
        config={**config, **state_doc.get("config", {})},
        summary=state_doc.get("summary", {}),
        history=history,
        metrics=metrics,
    )


def iter_run_dirs(root: str | Path) -> Iterator[Path]:
    """Run folders under ``root`` (a ``wandb`` dir, its parent, or one run folder)."""
    root = Path(root)
    if any(root.glob("run-*.wandb")):
        yield root
        return
    for base in (root, root / "wandb"):
        for child in sorted(base.glob("*run-*")):
            if child.is_dir() and not child.is_symlink() and any(child.glob("run-*.wandb")):
                yield child


def latest_run_dir(root: str | Path) -> Path:
    """The most recently written run folder under ``root``."""
    dirs = list(iter_run_dirs(root))
    if not dirs:
        raise RunFileError(f"no W&B run folders under {root}")
    return max(dirs, key=lambda d: _run_file(d).stat().st_mtime)
