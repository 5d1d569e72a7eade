"""``wandb-batchsize analyze``: the susceptibility analysis of a series or a sweep."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from wandb_batchsize.cli import UsageError
from wandb_batchsize.cli.plot_path import resolve_plot_path
from wandb_batchsize.cli.table_input import read_table

#: online-mode options and their defaults (None in the parser, so a value given
#: in sweep mode can be told apart and refused).
GRID_DEFAULTS = {
    "K_min": 2,
    "K_max": None,
    "n_points": 60,
    "min_batches": 10,
    "detrend": "none",
    "permutations": 199,
}

EPILOG = """\
input formats:
  a CSV or TSV file with a header row   (choose the series with --column)
  a plain file with one number per line
  -                                     read either from standard input

examples:
  wandb-batchsize analyze losses.csv --column loss
  seq 1 1000 | wandb-batchsize analyze - --detrend linear --json
  wandb-batchsize analyze sweep.csv --mode sweep --batch-col batch_size --metric-col loss
  wandb-batchsize analyze losses.csv -c loss --plot chi.png -v

exit status: 0 on success, 2 on bad input (one-line message on stderr).
Online K_c is in logged steps, not samples: see the README before reading it as a batch size.
"""


def _detrend(value: str) -> str | int:
    if value in ("none", "linear", "diff"):
        return value
    try:
        window = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--detrend takes none, linear, diff or a moving-average window (an integer), got {value!r}"
        ) from None
    if window < 2:
        raise argparse.ArgumentTypeError(f"a moving-average window must be >= 2, got {window}")
    return window


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="critical batch scale of per-step losses (online) or of a batch-size sweep",
        description="Batch-size susceptibility analysis. Online mode reads one series of "
        "per-step values (losses) in the order they were produced; sweep mode reads "
        "(batch size, metric) pairs, one per run, repeats allowed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "input", metavar="INPUT", help="CSV/TSV file, plain number list, or - for stdin"
    )
    parser.add_argument(
        "-c", "--column", help="column to analyse in online mode (default: the only one, or 'loss')"
    )
    parser.add_argument(
        "--mode", choices=("online", "sweep"), default="online", help="default: online"
    )
    parser.add_argument(
        "--batch-col", default=None, help="sweep mode: batch-size column (default: batch_size)"
    )
    parser.add_argument(
        "--metric-col",
        default=None,
        help="sweep mode: metric column (default: the other column, or 'loss')",
    )
    grid = parser.add_argument_group("scale grid (online mode)")
    grid.add_argument("--K-min", type=int, default=None, help="smallest block size (default 2)")
    grid.add_argument(
        "--K-max", type=int, default=None, help="largest block size (default N // min-batches)"
    )
    grid.add_argument(
        "--n-points", type=int, default=None, help="points of the log-spaced grid (default 60)"
    )
    grid.add_argument(
        "--min-batches", type=int, default=None, help="fewest blocks at the largest K (default 10)"
    )
    grid.add_argument(
        "--detrend",
        type=_detrend,
        default=None,
        help="none (default), linear, diff, or a moving-average window",
    )
    grid.add_argument(
        "--permutations",
        type=int,
        default=None,
        help="permutations of the calibrated i.i.d. null (default 199; 0 skips it)",
    )
    grid.add_argument(
        "--seed", type=int, default=0, help="seed of the permutation null (default 0)"
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true", help="print the full result as JSON instead of the summary"
    )
    out.add_argument(
        "--plot",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="save a figure to PATH, or into the directory PATH (default name: "
        "susceptibility.png or sweep.png); the extension picks the format; needs matplotlib",
    )
    out.add_argument(
        "-v", "--verbose", action="store_true", help="also print the table of K, V(K), chi(K)"
    )
    parser.set_defaults(func=run)


def _online(args: argparse.Namespace) -> Any:
    from wandb_batchsize.analysis import analyze

    table = read_table(args.input)
    values = table.column(args.column, role="column", default="loss")
    for key, value in GRID_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return analyze(
        values,
        K_min=args.K_min,
        K_max=args.K_max,
        n_points=args.n_points,
        min_batches=args.min_batches,
        detrend=args.detrend,
        n_permutations=args.permutations,
        seed=args.seed,
    )


def _sweep(args: argparse.Namespace) -> Any:
    from wandb_batchsize.analysis import analyze_sweep

    table = read_table(args.input)
    if not table.has_header:
        raise UsageError(
            f"sweep mode needs a header row naming the batch-size and metric columns in {table.source}"
        )
    batch_col = args.batch_col or "batch_size"
    batches = table.column(batch_col, role="batch_col")
    others = [name for name in table.columns if name != batch_col]
    metric_col = args.metric_col or (others[0] if len(others) == 1 else None)
    metrics = table.column(metric_col, role="metric_col", default="loss")
    bad = np.flatnonzero(~(np.isfinite(batches) & (batches > 0)))
    if bad.size:
        raise UsageError(
            f"batch sizes must be positive numbers; data row {bad[0] + 1} of {table.source} "
            f"has {batch_col} = {batches[bad[0]]:g}"
        )
    return analyze_sweep(batches, metrics, seed=args.seed)


def _print_curve(result: Any) -> None:
    if hasattr(result, "K_values"):
        scales, values, label = result.K_values, result.V_values, "V(K)"
    else:
        scales, values, label = result.batch_sizes, result.metric_mean, "metric"
    print(f"\n{'K':>10}  {label:>14}  {'chi':>10}")
    for k, v, c in zip(scales, values, result.chi_values, strict=True):
        mark = "  <- K_c" if float(k) == float(result.K_c) else ""
        print(f"{float(k):>10g}  {float(v):>14.6g}  {float(c):>10.4f}{mark}")


def _save_plot(result: Any, path: Path, mode: str) -> None:
    from wandb_batchsize import plot

    figure = plot.plot_sweep(result) if mode == "sweep" else plot.plot_susceptibility(result)
    try:
        figure.savefig(path, dpi=120, bbox_inches="tight")
    except OSError as exc:
        raise UsageError(f"cannot write the plot to {path}: {exc.strerror or exc}") from None


def _check_options(args: argparse.Namespace) -> None:
    """Contradictory options are an error, not silently ignored."""
    if args.mode == "online" and (args.batch_col or args.metric_col):
        raise UsageError("--batch-col and --metric-col are for --mode sweep")
    if args.mode == "sweep":
        if args.column:
            raise UsageError(
                "--column is for online mode; in sweep mode use --batch-col and --metric-col"
            )
        given = [key for key in GRID_DEFAULTS if getattr(args, key) is not None]
        if given:
            flags = ", ".join("--" + key.replace("_", "-") for key in given)
            raise UsageError(f"{flags}: online-mode options, not used by --mode sweep")
    if args.json and args.verbose:
        raise UsageError("--json and -v both print the curve: the JSON has K_values, V_values")


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    plot_path = None
    if args.plot is not None:  # before the analysis: a bad path fails at once
        default = "sweep.png" if args.mode == "sweep" else "susceptibility.png"
        plot_path = resolve_plot_path(args.plot, default)
    try:
        with warnings.catch_warnings():  # the summary and the JSON carry the warnings
            warnings.simplefilter("ignore", RuntimeWarning)
            result = _sweep(args) if args.mode == "sweep" else _online(args)
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    if args.json:
        print(json.dumps(result.to_dict(), allow_nan=False, indent=2))
    else:
        print(result.summary())
    if args.verbose:
        _print_curve(result)
    if plot_path is not None:
        _save_plot(result, plot_path, args.mode)
        if not args.json:
            print(f"plot written to {plot_path}")
    return 0
