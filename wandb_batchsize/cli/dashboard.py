"""``wandb-batchsize dashboard``: a W&B workspace for the batch-size keys, as code."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from wandb_batchsize.cli import UsageError

EPILOG = """\
sections: recommendation (pinned), memory ceiling (batch_finder/*), susceptibility
monitor (K_c, kappa, tau_int, gns/B_simple over their step metrics, chi(K) and V(K)
charts), probe, sweep. Runs-table columns pinned: config batch_size and the K_c /
batch-size summaries.

examples:
  wandb-batchsize dashboard my-team/my-project --dry-run workspace.json   # offline
  wandb-batchsize dashboard my-team/my-project --dry-run | jq .spec       # to stdout
  wandb-batchsize dashboard my-team/my-project --name "Batch size"        # saves (account)

Saving creates a new saved view in the project each time and prints its URL; it
needs W&B credentials (WANDB_API_KEY or `wandb login`). --dry-run never does.
exit status: 0 on success, 2 on bad input or no credentials, 1 if W&B refused the save.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="a W&B workspace showing the batch-size keys (save it, or --dry-run to JSON)",
        description="Build a W&B workspace (saved view) with panels for everything "
        "wandb-batchsize logs, with the wandb-workspaces package. Offline, --dry-run "
        "writes the view W&B would store as JSON; without it the view is saved to W&B.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", metavar="ENTITY/PROJECT", help="where the workspace goes")
    parser.add_argument(
        "--name", default=None, help="workspace name (default: 'Batch size (wandb-batchsize)')"
    )
    parser.add_argument(
        "--dry-run",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="write the workspace JSON to PATH (or stdout when PATH is omitted or -); "
        "no account, no network",
    )
    parser.add_argument(
        "--preset",
        default=None,
        help="name of a custom chart preset made from the shipped vega/susceptibility.json: "
        "show <prefix>/chart panels (as logged with preset=...) instead of chi_chart/V_chart",
    )
    parser.add_argument(
        "--auto-panels",
        action="store_true",
        help="also let W&B add its automatic panels for every other logged key",
    )
    parser.set_defaults(func=run)


def parse_target(target: str) -> tuple[str, str]:
    """``"entity/project"`` -> ``("entity", "project")``; anything else is a UsageError."""
    parts = target.strip().strip("/").split("/")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise UsageError(f"expected ENTITY/PROJECT (e.g. my-team/my-project), got {target!r}")
    return parts[0].strip(), parts[1].strip()


def run(args: argparse.Namespace) -> int:
    entity, project = parse_target(args.target)
    from wandb_batchsize.tracking import workspace as wsp

    try:
        workspace = wsp.build_workspace(
            entity,
            project,
            name=args.name if args.name is not None else wsp.DEFAULT_NAME,
            preset=args.preset,
            auto_panels=args.auto_panels,
        )
    except wsp.WorkspacesMissingError as exc:
        raise UsageError(str(exc).split(" (")[0]) from None
    except ValueError as exc:  # pydantic validation (an emoji in the name, ...)
        raise UsageError(f"invalid workspace: {str(exc).splitlines()[0]}") from None

    if args.dry_run is not None:
        text = json.dumps(wsp.workspace_json(workspace), indent=2) + "\n"
        if args.dry_run == "-":
            sys.stdout.write(text)
        else:
            path = Path(args.dry_run)
            try:
                path.write_text(text)
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
            n_panels = sum(len(s.panels) for s in workspace.sections)
            print(
                f"wrote workspace {workspace.name!r} for {entity}/{project} "
                f"({len(workspace.sections)} sections, {n_panels} panels) to {path}",
                file=sys.stderr,
            )
        return 0

    creds = wsp.find_credentials()
    if not creds:
        raise UsageError(
            f"saving a workspace needs a W&B account and none was found for {creds.base_url} "
            "(no WANDB_API_KEY, no netrc entry): run `wandb login` or set WANDB_API_KEY, "
            "or use --dry-run PATH to write the workspace JSON offline"
        )
    try:
        url = wsp.save_workspace(workspace)
    except Exception as exc:  # noqa: BLE001 - network, auth, permissions: one line, exit 1
        message = " ".join(str(exc).split())[:300]
        print(
            f"wandb-batchsize dashboard: error: W&B did not save the workspace "
            f"({type(exc).__name__}: {message})",
            file=sys.stderr,
        )
        return 1
    print(url)
    return 0
