"""Run a W&B sweep config locally, with no server: ``wandb-batchsize sweep run``.

Each parameter set of the config's grid (or random draws) runs the config's
program as a subprocess, handed its parameters exactly as W&B's agent hands them
(``wandb/wandb_agent.py``, ``Agent._command_run``):

- ``WANDB_SWEEP_PARAM_PATH`` names a YAML file ``{key: {value: v}}``, written at
  ``<WANDB_DIR>/wandb/sweep-<group>/config-<run_id>.yaml``; the program's
  ``wandb.init()`` reads it, so its ``wandb.config`` holds the sweep's values
  (and they are locked against changes, as in a real sweep);
- ``WANDB_RUN_ID`` is set to a fresh id;
- the command is the config's ``command`` (default
  ``${env} ${interpreter} ${program} ${args}``), with the macros expanded by the
  agent's own code (``--batch_size=64 --seed=0 ...`` for ``${args}``).

Differences from the agent, on purpose: the interpreter is this Python
(``sys.executable``, so the same environment is used), runs go to
``WANDB_MODE=offline`` by default, all runs share ``WANDB_RUN_GROUP=<group>``,
and ``WANDB_SWEEP_ID`` is *not* set (no such sweep exists on a server, so a
later ``wandb sync`` of these runs must not point at one). ``bayes`` needs
W&B's controller and is not run locally.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
import secrets
import string
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb_batchsize.tracking.sweeps import parameter_kind, validate_sweep_config

DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
JOB_TYPE = "sweep-run"
_ID_CHARS = string.ascii_lowercase + string.digits


class LocalSweepError(ValueError):
    """A sweep config that cannot run locally (and why)."""


# -- parameter sets ------------------------------------------------------------------


def _flat_parameters(config: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    params = config.get("parameters") or {}
    flat: dict[str, Mapping[str, Any]] = {}
    for name, spec in params.items():
        if parameter_kind(spec) == "nested":
            raise LocalSweepError(
                f"parameter {name!r} is a nested parameter dict, which `sweep run` does not "
                "expand; flatten it or use `wandb sweep` + `wandb agent`"
            )
        flat[name] = spec
    return flat


def _grid_values(name: str, spec: Mapping[str, Any]) -> list[Any]:
    kind = parameter_kind(spec)
    if kind == "constant":
        return [spec["value"]]
    if kind == "categorical":
        return list(spec["values"])
    if kind == "int_uniform":
        return list(range(int(spec["min"]), int(spec["max"]) + 1))
    if kind == "q_uniform":
        lo, hi, q = float(spec["min"]), float(spec["max"]), float(spec.get("q", 1.0))
        count = max(0, math.ceil((hi - lo) / q))
        return [lo + i * q for i in range(count)]  # as numpy.arange(min, max, q)
    raise LocalSweepError(f"{name}: grid search needs discrete parameters, got {kind!r}")


def grid_parameter_sets(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the grid, in W&B's order (parameters sorted by name,
    the first name varying slowest, as ``sweeps/grid_search.py`` iterates)."""
    params = _flat_parameters(config)
    names = sorted(params)
    values = [_grid_values(n, params[n]) for n in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def _sample(name: str, spec: Mapping[str, Any], rng: random.Random) -> Any:
    kind = parameter_kind(spec)
    if kind == "constant":
        return spec["value"]
    if kind == "categorical":
        return rng.choice(list(spec["values"]))
    if kind == "categorical_w_probabilities":
        return rng.choices(list(spec["values"]), weights=spec["probabilities"])[0]
    if kind == "int_uniform":
        return rng.randint(int(spec["min"]), int(spec["max"]))
    if kind == "uniform":
        return rng.uniform(float(spec["min"]), float(spec["max"]))
    if kind == "q_uniform":
        q = float(spec.get("q", 1.0))
        return round(rng.uniform(float(spec["min"]), float(spec["max"])) / q) * q
    if kind == "log_uniform_values":
        lo, hi = math.log(float(spec["min"])), math.log(float(spec["max"]))
        return math.exp(rng.uniform(lo, hi))
    if kind == "normal":
        return rng.gauss(float(spec.get("mu", 0.0)), float(spec.get("sigma", 1.0)))
    raise LocalSweepError(
        f"{name}: distribution {kind!r} is not supported by `sweep run`; "
        "use `wandb sweep` + `wandb agent` for it"
    )


def random_parameter_sets(
    config: Mapping[str, Any], count: int, *, seed: int = 0
) -> list[dict[str, Any]]:
    """``count`` independent draws from the config's distributions (seeded)."""
    if count < 1:
        raise LocalSweepError(f"count must be >= 1, got {count}")
    params = _flat_parameters(config)
    rng = random.Random(seed)
    return [{n: _sample(n, params[n], rng) for n in sorted(params)} for _ in range(count)]


def parameter_sets(
    config: Mapping[str, Any], *, count: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """The parameter sets a local run of ``config`` executes.

    ``grid``: the whole grid (the first ``count`` when given). ``random``:
    ``count`` draws; without ``count``, one per grid point when every parameter
    is discrete (W&B's random search would otherwise go on forever).
    """
    method = config.get("method")
    if method == "grid":
        sets = grid_parameter_sets(config)
        return sets[:count] if count else sets
    if method == "random":
        if count is None:
            try:
                count = len(grid_parameter_sets(config))
            except LocalSweepError:
                raise LocalSweepError(
                    "a random sweep over continuous parameters needs a run count (--count N)"
                ) from None
        return random_parameter_sets(config, count, seed=seed)
    if method == "bayes":
        raise LocalSweepError(
            "method 'bayes' needs W&B's server-side controller; run it with `wandb sweep` + "
            "`wandb agent`, or use method 'grid' or 'random' locally"
        )
    raise LocalSweepError(f"method {method!r} cannot run locally; use 'grid' or 'random'")


# -- running -------------------------------------------------------------------------


def new_run_id() -> str:
    """An 8-character id like W&B's."""
    return "".join(secrets.choice(_ID_CHARS) for _ in range(8))


def default_group(config: Mapping[str, Any]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(config.get("name") or "bs-sweep")).strip("-")
    return f"{base or 'bs-sweep'}-{time.strftime('%Y%m%d-%H%M%S')}"


def resolve_program(program: str, search: Sequence[Path], anchor: Path | None = None) -> Path:
    """The program as the agent would find it from the working directory, else next
    to the sweep YAML (``search``, in order); with the YAML's folder as ``anchor``,
    also a path relative to one of its parent folders that names a file inside it
    (``program: sweeps/train.py`` in ``sweeps/bs.yaml``, run from anywhere)."""
    path = Path(program).expanduser()
    if path.is_absolute():
        if path.exists():
            return path
    else:
        for base in search:
            candidate = base / path
            if candidate.exists():
                return candidate.resolve()
        if anchor is not None:
            anchor = anchor.resolve()
            for base in anchor.parents:
                candidate = (base / path).resolve()
                if candidate.is_file() and candidate.is_relative_to(anchor):
                    return candidate
    where = ", ".join(str(b) for b in search)
    raise LocalSweepError(f"program {program!r} not found (looked in {where})")


def build_command(
    config: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    program: Path | None,
    args_json_file: Path,
) -> list[str]:
    """The command line W&B's agent would build for ``params`` (macros expanded)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    template = list(config.get("command") or DEFAULT_COMMAND)
    template = create_sweep_command([str(c) for c in template])  # ${envvar:NAME}
    sweep_vars: dict[str, Any] = create_sweep_command_args(
        {"args": {k: {"value": v} for k, v in params.items()}}
    )
    sweep_vars["interpreter"] = [sys.executable]
    sweep_vars["program"] = [str(program)] if program is not None else []
    sweep_vars["args_json_file"] = [str(args_json_file)]
    sweep_vars["env"] = (
        ["/usr/bin/env"] if os.name != "nt" and Path("/usr/bin/env").exists() else []
    )
    command: list[str] = []
    for chunk in template:
        if chunk.startswith("${") and chunk.endswith("}"):
            command += [str(c) for c in sweep_vars.get(chunk[2:-1]) or []]
        else:
            command.append(chunk)
    return command


@dataclass(frozen=True)
class TrialOutcome:
    """One local sweep run: its parameters, run id, exit status and log file."""

    index: int
    run_id: str
    params: dict[str, Any]
    returncode: int | None  # None: killed after the timeout
    seconds: float
    command: list[str]
    log_path: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        if self.ok:
            status = "finished"
        elif self.returncode is None:
            status = "timed out"
        else:
            status = f"failed (exit {self.returncode})"
        return f"{shown} -> {status} in {self.seconds:.1f} s (run {self.run_id})"

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").rstrip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass(frozen=True)
class LocalSweep:
    """What ``run_sweep_locally`` did: the group to analyse and each run's outcome."""

    group: str
    wandb_dir: Path
    sweep_dir: Path
    outcomes: list[TrialOutcome] = field(default_factory=list)

    @property
    def n_finished(self) -> int:
        return sum(o.ok for o in self.outcomes)

    @property
    def n_failed(self) -> int:
        return len(self.outcomes) - self.n_finished


def _write_params(path: Path, params: Mapping[str, Any]) -> None:
    """The agent's parameter file: ``wandb_version: 1`` then ``{key: {value: v}}``."""
    from wandb.sdk.lib import config_util

    config_util.save_config_file_from_dict(str(path), {k: {"value": v} for k, v in params.items()})


def run_sweep_locally(
    config: Mapping[str, Any],
    *,
    group: str | None = None,
    wandb_dir: str | Path | None = None,
    base_dir: str | Path | None = None,
    count: int | None = None,
    seed: int = 0,
    jobs: int = 1,
    timeout: float | None = None,
    mode: str | None = "offline",
    project: str | None = None,
    env: Mapping[str, str] | None = None,
    on_trial: Callable[[TrialOutcome, int], None] | None = None,
) -> LocalSweep:
    """Run every parameter set of ``config`` as a W&B run of its program.

    Parameters
    ----------
    config
        A sweep config (validated here against W&B's schema).
    group
        ``WANDB_RUN_GROUP`` of all the runs (default: ``<name>-<timestamp>``).
    wandb_dir
        ``WANDB_DIR`` of the runs: they land in ``<wandb_dir>/wandb/`` (default:
        ``$WANDB_DIR`` or the working directory).
    base_dir
        Where the sweep YAML lives: the program is looked up in the working
        directory first (as the agent does), then here (see :func:`resolve_program`).
    count, seed
        Number of runs (random sweeps; a cap for grids) and the random seed.
    jobs
        Runs at once. With more than one, each run gets ``OMP_NUM_THREADS`` =
        cores / jobs unless the environment sets it.
    timeout
        Seconds before a run is killed (counted as failed).
    mode
        ``WANDB_MODE`` of the runs (``"offline"`` by default; None keeps the
        environment's).
    project
        ``WANDB_PROJECT`` (default: the config's ``project``, if any).
    env
        Extra environment variables for every run.
    on_trial
        Called with each outcome and the total number of runs, as runs end.
    """
    config = validate_sweep_config(config)
    sets = parameter_sets(config, count=count, seed=seed)
    if jobs < 1:
        raise LocalSweepError(f"jobs must be >= 1, got {jobs}")
    root = Path(wandb_dir or os.environ.get("WANDB_DIR") or Path.cwd()).resolve()
    group = group or default_group(config)
    sweep_dir = root / "wandb" / f"sweep-{group}"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    anchor = Path(base_dir).resolve() if base_dir is not None else None
    search = [Path.cwd()] + ([anchor] if anchor is not None else [])
    program = (
        resolve_program(str(config["program"]), search, anchor) if config.get("program") else None
    )
    template = [str(c) for c in (config.get("command") or DEFAULT_COMMAND)]
    if program is None and "${program}" in template:
        raise LocalSweepError("the sweep config has no 'program' for its command's ${program}")

    base_env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SWEEP_ID", "WANDB_RUN_ID")}
    base_env.update({"WANDB_DIR": str(root), "WANDB_RUN_GROUP": group, "WANDB_JOB_TYPE": JOB_TYPE})
    if mode:
        base_env["WANDB_MODE"] = mode
    if project or config.get("project"):
        base_env["WANDB_PROJECT"] = str(project or config["project"])
    if config.get("entity"):
        base_env["WANDB_ENTITY"] = str(config["entity"])
    if jobs > 1 and "OMP_NUM_THREADS" not in base_env:
        # parallel runs share the cores: keep each run's thread pools from oversubscribing
        base_env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    base_env.update(env or {})

    (sweep_dir / "sweep.json").write_text(
        json.dumps({"group": group, "config": config, "runs": len(sets)}, indent=2, default=str)
    )

    def one(index: int, params: dict[str, Any]) -> TrialOutcome:
        run_id = new_run_id()
        param_path = sweep_dir / f"config-{run_id}.yaml"
        _write_params(param_path, params)
        command = build_command(
            config, params, program=program, args_json_file=sweep_dir / f"config-{run_id}.json"
        )
        if "${args_json_file}" in template:
            (sweep_dir / f"config-{run_id}.json").write_text(json.dumps(params))
        run_env = {**base_env, "WANDB_RUN_ID": run_id, "WANDB_SWEEP_PARAM_PATH": str(param_path)}
        log_path = sweep_dir / f"{run_id}.log"
        start = time.perf_counter()
        with log_path.open("w") as log:
            try:
                proc = subprocess.run(
                    command,
                    env=run_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                    check=False,
                )
                code: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                code = None
            except OSError as exc:
                log.write(f"cannot start {command}: {exc}\n")
                code = 127
        return TrialOutcome(
            index, run_id, dict(params), code, time.perf_counter() - start, command, log_path
        )

    outcomes: list[TrialOutcome] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, i, p) for i, p in enumerate(sets)]
        for future in futures:
            outcome = future.result()
            outcomes.append(outcome)
            if on_trial is not None:
                on_trial(outcome, len(sets))
    return LocalSweep(group=group, wandb_dir=root, sweep_dir=sweep_dir, outcomes=outcomes)
