"""``wandb-batchsize sweep``: create, run (offline) and analyse batch-size sweeps."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from wandb_batchsize.cli import UsageError
from wandb_batchsize.cli.sweep_analyze import register_analyze
from wandb_batchsize.tracking.sweeps import DEFAULT_PROGRAM

EPILOG = """\
the loop:
  wandb-batchsize sweep create --max-batch 1024 --metric val/loss -o my_sweep.yaml
  # online, with an account: W&B's own agent
  wandb sweep my_sweep.yaml && wandb agent ENTITY/PROJECT/SWEEP_ID
  wandb-batchsize sweep analyze ENTITY/PROJECT/SWEEP_ID
  # offline, no account: the same YAML, the same program, runs grouped locally
  wandb-batchsize sweep run my_sweep.yaml --group bs-demo
  wandb-batchsize sweep analyze ./wandb --group bs-demo

exit status: 0 on success, 2 on bad input (one-line message on stderr),
1 when runs or the analysis failed.
"""

CREATE_EPILOG = """\
The learning rate follows the batch size through constant parameters lr_scaling,
base_lr, base_batch (and max_lr) that the program applies
(wandb_batchsize.tracking.sweeps.lr_from_config): a W&B grid cannot tie two
parameters. The output is checked against W&B's sweep-config schema. The default
--program is the demo training program installed with the package (an absolute
path, so the YAML runs from any directory); give your own training script instead.

examples:
  wandb-batchsize sweep create --max-batch 1024 > my_sweep.yaml
  wandb-batchsize sweep create --max-batch 512 --min-batch 16 --repeats 3 \\
      --lr-scaling sqrt --base-lr 0.05 --param epochs=2 --program train.py -o my_sweep.yaml
  wandb-batchsize sweep create --max-batch 256 --metric steps_to_target --target 0.55 \\
      --lr-scaling linear --base-lr 0.02 --base-batch 4 --max-lr 0.8 --param max_steps=2000
"""

RUN_EPILOG = """\
Each parameter set runs the YAML's program as a subprocess, given its parameters
as W&B's agent gives them (WANDB_SWEEP_PARAM_PATH, read by wandb.init, and
--key=value arguments), as an offline W&B run (WANDB_MODE=offline unless --mode)
in one group (WANDB_RUN_GROUP). method bayes needs W&B's server: use wandb agent.

examples:
  wandb-batchsize sweep run my_sweep.yaml --group bs-demo --jobs 2
  wandb-batchsize sweep run my_sweep.yaml --dry-run
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="batch-size sweeps: create a W&B sweep config, run it offline, analyse it",
        description="Batch-size sweeps bounded by the memory ceiling, run by W&B's agent "
        "(or offline), analysed in sweep mode (K_c, and B_crit for steps to a target).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="sweep_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: _no_action(parser))
    _register_create(sub)
    _register_run(sub)
    register_analyze(sub)


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# -- create --------------------------------------------------------------------------


def _register_create(sub: Any) -> None:
    p = sub.add_parser(
        "create",
        help="print (or write) a W&B sweep YAML over batch sizes up to the ceiling",
        description="A W&B sweep config whose batch_size takes the powers of two between "
        "--min-batch and --max-batch (the memory ceiling), with a seed per repeat.",
        epilog=CREATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--max-batch", type=int, required=True, help="the ceiling (largest batch)")
    p.add_argument("--min-batch", type=int, default=8, help="smallest batch (default 8)")
    p.add_argument("--batch-sizes", help="explicit comma-separated sizes instead of powers of two")
    p.add_argument("--metric", default="val/loss", help="metric to record (default val/loss)")
    p.add_argument("--goal", default="minimize", help="minimize (default) or maximize")
    p.add_argument(
        "--program",
        default=DEFAULT_PROGRAM,
        help="script the agent runs (default: the installed demo program, "
        "wandb_batchsize/demo/sweep_train.py, by its absolute path)",
    )
    p.add_argument("--repeats", type=int, default=1, help="seeds per batch size (default 1)")
    p.add_argument("--lr-scaling", choices=["linear", "sqrt"], default=None)
    p.add_argument("--base-lr", type=float, default=None, help="lr at --base-batch")
    p.add_argument("--base-batch", type=int, default=None, help="default: the smallest batch")
    p.add_argument("--max-lr", type=float, default=None, help="cap on the scaled lr")
    p.add_argument(
        "--target",
        type=float,
        default=None,
        help="metric target passed to the program (it logs steps_to_target)",
    )
    p.add_argument("--method", default="grid", help="grid (default), random or bayes")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a constant parameter for the program (YAML value); repeatable",
    )
    p.add_argument(
        "--param-values",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a categorical parameter (the grid multiplies it); repeatable",
    )
    p.add_argument("--name", default=None, help="sweep name")
    p.add_argument("--project", default=None, help="W&B project of the sweep")
    p.add_argument("--entity", default=None, help="W&B entity of the sweep")
    p.add_argument("-o", "--output", default=None, help="write the YAML here instead of stdout")
    p.set_defaults(func=cmd_create)


def _split_key_value(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{flag} takes KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text


def _extra_parameters(args: argparse.Namespace) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for item in args.param:
        key, value = _split_key_value(item, "--param")
        extra[key] = {"value": _yaml_value(value)}
    for item in args.param_values:
        key, value = _split_key_value(item, "--param-values")
        values = [_yaml_value(v.strip()) for v in value.split(",") if v.strip()]
        if not values:
            raise UsageError(f"--param-values {key}= needs at least one value")
        extra[key] = {"values": values}
    return extra


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated integers, got {text!r}") from None


def cmd_create(args: argparse.Namespace) -> int:
    from wandb_batchsize.tracking.sweeps import batch_size_sweep, dump_sweep_config

    sizes = _int_list(args.batch_sizes, "--batch-sizes") if args.batch_sizes else None
    try:
        config = batch_size_sweep(
            args.max_batch,
            min_batch=args.min_batch if sizes is None else min([args.min_batch, *sizes]),
            metric=args.metric,
            goal=args.goal,
            program=args.program,
            repeats=args.repeats,
            lr_scaling=args.lr_scaling,
            base_lr=args.base_lr,
            base_batch=args.base_batch,
            method=args.method,
            extra_parameters=_extra_parameters(args),
            batch_sizes=sizes,
            max_lr=args.max_lr,
            target=args.target,
            name=args.name,
            project=args.project,
            entity=args.entity,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    header = (
        "# W&B sweep config made by wandb-batchsize sweep create\n"
        "# online:  wandb sweep THIS.yaml && wandb agent ENTITY/PROJECT/SWEEP_ID\n"
        "# offline: wandb-batchsize sweep run THIS.yaml --group NAME\n"
    )
    text = header + dump_sweep_config(config)
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc}") from None
        sizes_text = ", ".join(str(b) for b in config["parameters"]["batch_size"]["values"])
        print(f"wrote {args.output} (batch sizes {sizes_text})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# -- run -----------------------------------------------------------------------------


def _register_run(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run a sweep YAML's grid/random parameter sets offline, as grouped W&B runs",
        description="Execute a W&B sweep config locally, without a W&B server: each "
        "parameter set runs the config's program as an (offline) W&B run.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", metavar="SWEEP_YAML")
    p.add_argument("--group", default=None, help="W&B group of the runs (default: name-time)")
    p.add_argument(
        "--dir",
        default=None,
        help="WANDB_DIR of the runs: they go to DIR/wandb/ (default: $WANDB_DIR or .)",
    )
    p.add_argument(
        "--count", type=int, default=None, help="number of runs (random sweeps; caps a grid)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random sweeps")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per run before a kill")
    p.add_argument(
        "--mode",
        default="offline",
        choices=["offline", "online", "disabled"],
        help="WANDB_MODE of the runs (default offline)",
    )
    p.add_argument("--project", default=None, help="WANDB_PROJECT of the runs")
    p.add_argument("--dry-run", action="store_true", help="print the parameter sets, run nothing")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from wandb_batchsize.tracking.sweep_runner import (
        LocalSweepError,
        parameter_sets,
        run_sweep_locally,
    )
    from wandb_batchsize.tracking.sweeps import load_sweep_config

    try:
        config = load_sweep_config(args.config)
        sets = parameter_sets(config, count=args.count, seed=args.seed)
    except (OSError, ValueError) as exc:  # SweepConfigError and LocalSweepError included
        raise UsageError(str(exc)) from None
    if args.dry_run:
        for i, params in enumerate(sets, 1):
            print(f"[{i}/{len(sets)}] " + " ".join(f"--{k}={v}" for k, v in params.items()))
        return 0

    def report(outcome: Any, total: int) -> None:
        print(f"[{outcome.index + 1}/{total}] {outcome.describe()}", flush=True)
        if not outcome.ok:
            tail = outcome.log_tail(6)
            if tail:
                print("    " + tail.replace("\n", "\n    "), flush=True)
            print(f"    full log: {outcome.log_path}", flush=True)

    try:
        done = run_sweep_locally(
            config,
            group=args.group,
            wandb_dir=args.dir,
            base_dir=Path(args.config).resolve().parent,
            count=args.count,
            seed=args.seed,
            jobs=args.jobs,
            timeout=args.timeout,
            mode=args.mode,
            project=args.project,
            on_trial=report,
        )
    except LocalSweepError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"{done.n_finished} of {len(done.outcomes)} runs finished"
        + (f", {done.n_failed} failed" if done.n_failed else "")
        + f"; group {done.group!r} in {done.wandb_dir / 'wandb'}"
    )
    where = shlex.quote(str(done.wandb_dir))
    print(f"next: wandb-batchsize sweep analyze {where} --group {shlex.quote(done.group)}")
    return 0 if done.n_finished else 1
