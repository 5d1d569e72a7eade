"""``wandb-batchsize sweep analyze``: sweep-mode K_c of a W&B sweep or of run folders."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from wandb_batchsize.cli import UsageError

ANALYZE_EPILOG = """\
SOURCE is ENTITY/PROJECT/SWEEP_ID (online, through wandb.Api: needs an account) or
a folder of W&B run folders (a wandb/ dir or its parent; offline, read from the
run files), with --group naming the runs' group.

Finished runs only: crashed, failed, killed or running runs, and run folders whose
run file is missing, empty or damaged, are skipped and counted (each unreadable
folder is listed with its reason). Repeats per batch size are averaged (mean, standard error). With a
steps/samples-to-target metric, B_crit of S = S_min (1 + B_noise / B) is fitted.
The metric defaults to the sweep config's (online: the sweep's; offline: the one
`sweep run` recorded in wandb/sweep-GROUP/sweep.json), else val/loss.
The analysis is also logged as a W&B run (job_type sweep-analysis) with the chi(B)
chart, the per-batch table and sweep/K_c: for a folder, an offline run next to the
sweep's runs and in their group (unless WANDB_MODE/--mode say otherwise); --no-log
to skip.

examples:
  wandb-batchsize sweep analyze my-team/my-project/abc123de
  wandb-batchsize sweep analyze ./wandb --group bs-demo --plot sweep.png --json sweep.json
  wandb-batchsize sweep analyze ./wandb --group bs-steps --metric steps_to_target
"""


# -- analyze -------------------------------------------------------------------------


def register_analyze(sub: Any) -> None:
    """Add ``sweep analyze`` to the ``sweep`` subparsers."""
    p = sub.add_parser(
        "analyze",
        help="sweep-mode K_c (and B_crit) of a W&B sweep, online or from offline run folders",
        description="Collect (batch_size, metric) from the finished runs of a sweep, "
        "aggregate repeats, and run the sweep-mode analysis.",
        epilog=ANALYZE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="SOURCE", help="ENTITY/PROJECT/SWEEP_ID or a run folder")
    p.add_argument("--group", default=None, help="group of the offline runs to analyse")
    p.add_argument(
        "--metric",
        default=None,
        help="metric key (default: the sweep config's metric, else val/loss)",
    )
    p.add_argument(
        "--reduce",
        default="last",
        choices=["last", "min", "max"],
        help="value per run: summary/last (default), or min/max over its history",
    )
    p.add_argument(
        "--kind",
        default=None,
        choices=["loss", "steps_to_target", "samples_to_target"],
        help="metric kind (default: from the metric name); *_to_target fits B_crit",
    )
    p.add_argument("--batch-key", default="batch_size", help="config key of the batch size")
    p.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help="write the result JSON here (default sweep-<label>.json; - for stdout)",
    )
    p.add_argument(
        "--plot",
        default=None,
        metavar="PATH",
        help="write the figure here (default sweep-<label>.png)",
    )
    p.add_argument("--out-dir", default=".", help="folder of the default JSON and plot files")
    p.add_argument("--no-log", action="store_true", help="do not log an analysis run to W&B")
    p.add_argument("--project", default=None, help="W&B project of the analysis run")
    p.add_argument(
        "--mode",
        default=None,
        choices=["online", "offline", "disabled"],
        help="W&B mode of the analysis run (default: $WANDB_MODE if set, else offline for "
        "a folder and W&B's default for an online sweep)",
    )
    p.set_defaults(func=cmd_analyze)


def _label(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "sweep"


def _fmt(value: Any, digits: int = 4) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{value:.{digits}g}" if math.isfinite(value) else "-"


def _print_report(result: Any, collected: Any, kind: str) -> None:
    print(f"metric: {collected.metric} ({kind}), {len(collected.records)} runs used")
    if collected.skipped:
        print(collected.skipped_text())
    for folder, problem in sorted(collected.unreadable.items()):
        print(f"  unreadable run folder {folder}: {problem}")
    print(f"{'batch':>8} {'runs':>5} {'mean':>11} {'se':>10} {'chi':>10}")
    for b, n, m, se, chi in zip(
        result.batch_sizes,
        result.counts,
        result.metric_mean,
        result.metric_se,
        result.chi_values,
        strict=True,
    ):
        mark = "  <- K_c" if float(b) == float(result.K_c) else ""
        print(
            f"{int(b):>8} {int(n):>5} {_fmt(m, 6):>11} {_fmt(se, 3):>10} {_fmt(chi, 4):>10}{mark}"
        )
    print(result.summary())


def _save_figure(result: Any, path: Path, title: str) -> Any:
    try:
        from wandb_batchsize.plot import plot_sweep
    except ImportError as exc:
        raise UsageError(
            f"the plot needs matplotlib ({exc}); pip install 'wandb-batchsize[plot]'"
        ) from None
    figure = plot_sweep(result, title=title)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120, bbox_inches="tight")
    except OSError as exc:
        raise UsageError(f"cannot write the plot to {path}: {exc}") from None
    return figure


def cmd_analyze(args: argparse.Namespace) -> int:
    from wandb_batchsize.tracking import sweep_results as sr

    source = args.source
    is_folder = Path(source).exists()
    sweep_config: dict[str, Any] = {}
    project = entity = None
    if is_folder:
        runs_all = sr.offline_runs(source)
        if not runs_all:
            raise UsageError(f"no W&B run folders under {source}")
        try:
            runs = sr.select_group(runs_all, args.group)
        except LookupError as exc:
            raise UsageError(str(exc)) from None
        project = next((r.project for r in runs if r.project), None)
        group = args.group or next((r.group for r in runs if r.group), None)
        sweep_config = sr.local_sweep_config(source, group)  # written by `sweep run`
        label = group or _label(Path(source).resolve().name)
    elif sr.SWEEP_PATH.match(source):
        if args.group:
            raise UsageError("--group applies to offline run folders, not to an online sweep")
        entity, project, sweep_id = source.split("/")
        group = None
        try:
            runs, sweep_config = sr.online_sweep(source)
        except Exception as exc:  # noqa: BLE001 - no key, no network, no such sweep
            raise UsageError(
                f"cannot read sweep {source} through wandb.Api ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
                "reading an online sweep needs a W&B account (wandb login) and network access"
            ) from None
        label = sweep_id
    else:
        raise UsageError(f"{source!r} is neither a folder of W&B runs nor ENTITY/PROJECT/SWEEP_ID")

    metric = args.metric or (sweep_config.get("metric") or {}).get("name") or "val/loss"
    kind = args.kind or sr.metric_kind_for(metric)
    collected = sr.collect_sweep_runs(
        runs, metric=metric, reduce=args.reduce, batch_key=args.batch_key
    )
    try:
        result = sr.analyze_collected(
            collected, metric_kind=kind, n_bootstrap=args.n_bootstrap, seed=args.seed
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    to_stdout = args.json == "-"
    out_dir = Path(args.out_dir)
    doc = sr.analysis_document(result, collected, source=source, metric_kind=kind)
    if to_stdout:
        print(json.dumps(doc, allow_nan=False, indent=2))
    else:
        _print_report(result, collected, kind)
    json_path = out_dir / f"sweep-{label}.json" if args.json is None else Path(args.json)
    if not to_stdout:
        try:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(doc, allow_nan=False, indent=2) + "\n")
        except OSError as exc:
            raise UsageError(f"cannot write {json_path}: {exc}") from None
    plot_path = out_dir / f"sweep-{label}.png" if args.plot is None else Path(args.plot)
    _save_figure(result, plot_path, title=f"Batch-size sweep {label}: {metric}")
    info = sys.stderr if to_stdout else sys.stdout
    if not to_stdout:
        print(f"json written to {json_path}", file=info)
    print(f"plot written to {plot_path}", file=info)

    if not args.no_log:
        mode = args.mode or os.environ.get("WANDB_MODE") or ("offline" if is_folder else None)
        try:
            run = sr.log_sweep_analysis(
                result,
                collected,
                source=source,
                metric_kind=kind,
                project=args.project or project,
                entity=entity,
                group=group if is_folder else f"sweep-{label}",
                mode=mode,
                image=plot_path,
                wandb_dir=sr.wandb_root(source) if is_folder else None,
            )
        except Exception as exc:  # noqa: BLE001 - the analysis stands without W&B
            print(
                f"warning: could not log the analysis run to W&B ({type(exc).__name__}: {exc})",
                file=sys.stderr,
            )
            return 0
        offline = getattr(run, "offline", False) or mode == "offline"
        where = Path(run.dir).parent if offline or not getattr(run, "url", None) else run.url
        if mode != "disabled":
            print(f"analysis run logged to W&B: {where}", file=info)
    return 0
