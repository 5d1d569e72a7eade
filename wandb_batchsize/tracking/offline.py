"""Read what a W&B run logged, from its local files, in process.

A wandb 0.31 run keeps everything (config, history, summary, chart specs) in
``run-<id>.wandb``; no ``config.yaml`` or ``wandb-summary.json`` is written in
offline mode. The file is W&B's record log (:mod:`.record_log`); its records are
W&B's own protobuf ``Record`` messages. What is built from them matches what
``wandb leet inspect --json`` shows: history rows with dotted keys for nested
values (``{"d": {"x": 1}}`` is ``"d.x"``), config and summary as nested dicts
(summary without ``_wandb``), metric definitions with protobuf field names.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb_batchsize.tracking.record_log import read_records

#: names W&B gives run folders: ``run-<date>_<time>-<id>``, ``offline-`` first offline.
RUN_DIR = re.compile(r"^(offline-)?run-\d{8}_\d{6}-.+$")


NO_RUN_RECORD = "no run record (stopped before W&B wrote one out)"


class RunFileError(RuntimeError):
    """A run folder that cannot be read."""


def _run_file(run_dir: Path) -> Path:
    if run_dir.is_file():
        return run_dir
    files = sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise RunFileError(f"no run-*.wandb file in {run_dir}")
    return files[0]


def _value(item: Any) -> Any:
    """The value of a config, summary or history item (history items may be typed)."""
    kind = item.WhichOneof("value") if "value" in item.DESCRIPTOR.oneofs_by_name else None
    if kind == "none":
        return None
    if kind == "json":
        return json.loads(item.json)
    if kind is not None:
        return getattr(item, kind)
    return json.loads(item.value_json) if item.value_json else None


def _path(item: Any) -> list[str]:
    return list(item.nested_key) or [item.key]


def _set(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        child = tree.get(key)
        if not isinstance(child, dict):
            child = tree[key] = {}
        tree = child
    tree[path[-1]] = value


def _remove(tree: dict[str, Any], path: list[str]) -> None:
    for key in path[:-1]:
        tree = tree.get(key)
        if not isinstance(tree, dict):
            return
    tree.pop(path[-1], None)


def _apply(tree: dict[str, Any], record: Any) -> None:
    """A config or summary record's updates and removals, applied to ``tree``."""
    for item in record.update:
        _set(tree, _path(item), _value(item))
    for item in record.remove:
        _remove(tree, _path(item))


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
    problem: str | None = None  # why the run file could not be read to its end
    truncated: bool = False  # the file ends inside a record (the writer was stopped)

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
            known = sorted(
                k for k, v in self.summary.items() if isinstance(v, dict) and "path" in v
            )
            raise KeyError(f"no table logged under {key!r}; tables in this run: {known}")
        return json.loads((self.files_dir / ref["path"]).read_text())

    def history_of(self, key: str) -> list[Any]:
        """Values of ``key`` in the order they were logged (rows without it skipped)."""
        return [row[key] for row in self.history if key in row]

    def visualizations(self) -> dict[str, Any]:
        """Custom-chart specs recorded in config (``_wandb.visualize``), by chart key."""
        wandb_cfg = self.config.get("_wandb", {})
        vis = wandb_cfg.get("visualize", {}) if isinstance(wandb_cfg, dict) else {}
        flat = {
            k[len("_wandb.visualize.") :]: v
            for k, v in self.config.items()
            if k.startswith("_wandb.visualize.")
        }
        return {**vis, **flat}


def scan_run(run_dir: str | Path) -> OfflineRun:
    """Read one run folder (or run file) as far as it can be read; never raises for a
    damaged file: ``problem`` then says why reading stopped (see :func:`read_run`)."""
    from google.protobuf.json_format import MessageToDict

    path = Path(run_dir)
    try:
        run_file = _run_file(path)
    except RunFileError:
        run_file = None
    folder = path.parent if path.is_file() else path
    log = read_records(run_file) if run_file else None
    info: Any = None
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    exit_code: int | None = None
    for record in log.records if log else []:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({".".join(_path(i)): _value(i) for i in record.history.item})
        elif kind == "summary":
            _apply(summary, record.summary)
        elif kind == "config":
            _apply(config, record.config)
        elif kind == "run":
            info = record.run
            _apply(config, info.config)
            _apply(summary, info.summary)
        elif kind == "metric":
            metrics.append(MessageToDict(record.metric, preserving_proto_field_name=True))
        elif kind == "exit":
            exit_code = int(record.exit.exit_code)
    summary.pop("_wandb", None)
    state = "running" if exit_code is None else "finished" if exit_code == 0 else "failed"
    problem = "no run-*.wandb file" if log is None else log.problem
    return OfflineRun(
        path=folder,
        run_id=info.run_id if info else "",
        project=info.project if info else "",
        group=info.run_group if info else "",
        job_type=info.job_type if info else "",
        name=info.display_name if info else "",
        sweep_id=info.sweep_id if info else "",
        state=state,
        exit_code=exit_code,
        config=config,
        summary=summary,
        history=history,
        metrics=metrics,
        problem=problem if problem or info else NO_RUN_RECORD,
        truncated=bool(log and log.truncated),
    )


def _unfinished(run: OfflineRun) -> bool:
    """The run has not recorded its end and its file is not damaged: W&B's core process
    may still be writing it (``run.finish()`` can return first, and under load the
    records can land seconds later, long after the file was created)."""
    return run.exit_code is None and run.problem in (None, NO_RUN_RECORD)


def read_run(run_dir: str | Path, *, settle: float = 10.0) -> OfflineRun:
    """Read one run folder (``wandb/offline-run-*`` or ``wandb/run-*``) or run file;
    ``RunFileError`` (one line) if its file is missing or damaged.

    A run with no exit record yet is read again, for up to ``settle`` seconds, until
    it has one (W&B writes the file from another process, and a just-finished run's
    records can land a moment after ``finish()``). A finished run is read once.
    """
    run = scan_run(run_dir)
    deadline = time.monotonic() + settle
    while _unfinished(run) and time.monotonic() < deadline:
        time.sleep(0.05)
        run = scan_run(run_dir)
    if run.problem:
        raise RunFileError(f"cannot read the W&B run at {run.path}: {run.problem}")
    return run


def iter_run_dirs(root: str | Path) -> Iterator[Path]:
    """Run folders under ``root`` (a ``wandb`` dir, its parent, or one run folder):
    every folder named as W&B names them, with or without a run file."""
    root = Path(root)
    if any(root.glob("run-*.wandb")):
        yield root
        return
    for base in (root, root / "wandb"):
        for child in sorted(base.glob("*run-*")):
            if RUN_DIR.match(child.name) and child.is_dir() and not child.is_symlink():
                yield child


def latest_run_dir(root: str | Path) -> Path:
    """The most recently written run folder (with a run file) under ``root``."""
    dirs = [d for d in iter_run_dirs(root) if any(d.glob("run-*.wandb"))]
    if not dirs:
        raise RunFileError(f"no W&B run folders under {root}")
    return max(dirs, key=lambda d: _run_file(d).stat().st_mtime)
