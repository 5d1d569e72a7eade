"""Offline run folders shaped as ``wandb.Api`` runs, for ``sweep analyze``.

Every run folder under the given root is returned, readable or not: a folder
whose run file is missing, empty, not a W&B file or corrupt becomes a run in
state ``unreadable`` with its reason (:attr:`OfflineApiRun.skip_reason`), and a
run with no exit record (still running, or killed) is ``running``; the sweep
analysis counts both among the skipped runs instead of losing them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from wandb_batchsize.tracking.offline import OfflineRun, iter_run_dirs, scan_run

ANALYSIS_JOB_TYPE = "sweep-analysis"
NO_EXIT = "running or killed (no exit record)"
_AT_BYTE = re.compile(r" at byte \d+")  # one reason for all runs damaged alike


def _api_state(run: OfflineRun) -> str:
    """The ``wandb.Api`` state of an offline run: ``finished`` (exit 0), ``failed``
    (non-zero exit), ``running`` (no exit recorded: still running, or killed before
    it could record one, which the server would later call ``crashed``), or
    ``unreadable`` (a run file that is missing or damaged)."""
    if run.problem:
        return "unreadable"
    if run.exit_code is None:
        return "running"
    return "finished" if run.exit_code == 0 else "failed"


class OfflineApiRun:
    """An offline run folder with the members of a ``wandb.apis.public.Run`` that
    the sweep analysis uses: ``id``, ``name``, ``group``, ``job_type``, ``state``,
    ``config`` (plain values, no ``_wandb``), ``summary_metrics`` and
    ``scan_history(keys=...)``; plus ``skip_reason`` when it cannot be used."""

    def __init__(self, run: OfflineRun) -> None:
        self._run = run
        self.id = run.run_id
        self.name = run.name or run.run_id or run.path.name
        self.group = run.group
        self.job_type = run.job_type
        self.project = run.project
        self.state = _api_state(run)
        self.config = {k: v for k, v in run.config.items() if not k.startswith("_")}
        self.summary_metrics = dict(run.summary)

    @property
    def path(self) -> Path:
        return self._run.path

    @property
    def offline_run(self) -> OfflineRun:
        """Everything the run logged, as ``tracking.offline.scan_run`` read it."""
        return self._run

    @property
    def problem(self) -> str | None:
        """Why the run file could not be read (None when it could)."""
        return self._run.problem

    @property
    def skip_reason(self) -> str | None:
        """Why the sweep analysis cannot use this run whatever its data, or None."""
        if self._run.problem:
            return f"unreadable ({_AT_BYTE.sub('', self._run.problem)})"
        return NO_EXIT if self.state == "running" else None

    def scan_history(self, keys: Sequence[str] | None = None, **_: Any) -> Iterator[dict]:
        """History rows in order; with ``keys``, only rows holding all of them, with
        only those keys (as ``wandb.Api``'s ``scan_history`` returns them)."""
        for row in self._run.history:
            if keys is None:
                yield dict(row)
            elif all(k in row for k in keys):
                yield {k: row[k] for k in keys}

    def __repr__(self) -> str:
        return f"<OfflineApiRun {self.id} group={self.group!r} state={self.state}>"


# run folder -> (size and mtime of its run file, what was read): a file that has not
# changed is not read again when a sweep is analysed again in one process
_READ_CACHE: dict[Path, tuple[tuple[int, int], OfflineRun]] = {}


def _file_stamp(run_dir: Path) -> tuple[int, int] | None:
    files = sorted(run_dir.glob("run-*.wandb"))
    if not files:
        return None
    stat = files[0].stat()
    return (stat.st_size, stat.st_mtime_ns)


def _read_cached(run_dir: Path) -> OfflineRun:
    key = run_dir.resolve()
    stamp = _file_stamp(key)
    hit = _READ_CACHE.get(key)
    if hit is not None and stamp is not None and hit[0] == stamp:
        return hit[1]
    run = scan_run(key)
    if stamp is not None and (run.exit_code is not None or run.problem):  # will not change
        _READ_CACHE[key] = (stamp, run)
    return run


def offline_runs(root: str | Path) -> list[OfflineApiRun]:
    """Every run folder under ``root`` (a ``wandb`` dir or its parent), read in process
    from its run file (:func:`tracking.offline.scan_run`); never raises for a damaged
    file (such runs are ``unreadable``, with the reason)."""
    return [OfflineApiRun(_read_cached(d)) for d in iter_run_dirs(root)]


def wandb_root(folder: str | Path) -> Path:
    """The folder that holds ``wandb/`` for a path given as a sweep's run folder."""
    path = Path(folder).resolve()
    if path.name == "wandb" and not (path / "wandb").is_dir():
        return path.parent
    return path


def select_group(runs: Sequence[OfflineApiRun], group: str | None) -> list[OfflineApiRun]:
    """The runs of ``group``; without one, all runs, if they share a single group.

    The sweep-analysis runs that ``sweep analyze`` logs are left out. Unreadable runs
    whose group is unknown are kept in any selection (they are counted as skipped)
    and do not count as a group of their own.
    """
    runs = [r for r in runs if r.job_type != ANALYSIS_JOB_TYPE]
    unknown = [r for r in runs if r.problem and not r.group]
    known = [r for r in runs if not (r.problem and not r.group)]
    if group is not None:
        chosen = [r for r in known if r.group == group]
        if not chosen:
            groups = sorted({r.group for r in known if r.group})
            raise LookupError(
                f"no runs in group {group!r}; groups found: {', '.join(groups) or 'none'}"
            )
        return chosen + unknown
    groups = sorted({r.group or "" for r in known})
    if len(groups) > 1:
        shown = ", ".join(g or "(no group)" for g in groups)
        raise LookupError(f"runs from several groups ({shown}): choose one with --group")
    return known + unknown


def local_sweep_config(folder: str | Path, group: str | None) -> dict[str, Any]:
    """The sweep config that ``sweep run`` recorded for ``group``
    (``<root>/wandb/sweep-<group>/sweep.json``), or ``{}``."""
    if not group:
        return {}
    root = wandb_root(folder)
    for base in (root / "wandb", root):
        path = base / f"sweep-{group}" / "sweep.json"
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                return {}
            config = doc.get("config") if isinstance(doc, dict) else None
            return config if isinstance(config, dict) else {}
    return {}
