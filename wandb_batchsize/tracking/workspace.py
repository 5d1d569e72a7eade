"""A W&B workspace (saved view) that shows what wandb-batchsize logs, as code.

The layout is a list of sections, each a list of keys (``tracking/keys.py``):
scalars, line panels over a step metric, custom charts and tables.
:func:`build_workspace` turns it into a ``wandb_workspaces`` ``Workspace``;
:func:`workspace_json` gives the view that ``Workspace.save()`` would send
(``internal.View``: entity, project, display name and the view spec), built
entirely offline, so the dashboard can be inspected and tested without an
account. Only :func:`save_workspace` talks to W&B.

Needs the ``workspaces`` extra (``pip install 'wandb-batchsize[workspaces]'``);
``wandb_workspaces`` is imported inside the functions that use it.
"""

from __future__ import annotations

import hashlib
import netrc
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wandb_batchsize.tracking import keys
from wandb_batchsize.tracking.charts import BUILTIN_PRESET, CUSTOM_PRESET_FIELDS

DEFAULT_NAME = "Batch size (wandb-batchsize)"
DEFAULT_BASE_URL = "https://api.wandb.ai"

# runs-table columns pinned in the workspace: the answer, at a glance, per run
PINNED_COLUMNS = (
    f"config:{keys.CONFIG_BATCH_SIZE}",
    f"summary:{keys.RECOMMENDATION_BATCH_SIZE}",
    f"summary:{keys.BATCH_FINDER_OPTIMAL}",
    f"summary:{keys.SUSCEPTIBILITY_K_C}",
    f"summary:{keys.SWEEP_K_C}",
)


class WorkspacesMissingError(ImportError):
    """``wandb-workspaces`` is missing."""


@dataclass(frozen=True)
class Line:
    """A line panel of ``y`` against the step metric ``x``."""

    y: str
    x: str
    title: str = ""
    log_y: bool = False


@dataclass(frozen=True)
class Chart:
    """A custom chart panel reading the table W&B logged with chart ``key`` (``<key>_table``)."""

    key: str
    fields: Mapping[str, str]
    title: str = ""
    preset: str = BUILTIN_PRESET

    @property
    def table(self) -> str:
        return keys.table_key(self.key)


@dataclass(frozen=True)
class SectionLayout:
    """One workspace section: the keys it shows, by kind of panel."""

    name: str
    scalars: tuple[str, ...] = ()
    lines: tuple[Line, ...] = ()
    charts: tuple[Chart, ...] = ()
    tables: tuple[str, ...] = ()
    pinned: bool = False
    is_open: bool = True
    x_axis: str = "Step"

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key this section reads (charts by their table key)."""
        return (
            *self.scalars,
            *(k for line in self.lines for k in (line.x, line.y)),
            *(c.table for c in self.charts),
            *self.tables,
        )


def curve_charts(prefix: str, chi_title: str, value_title: str) -> tuple[Chart, ...]:
    """The chi and V charts ``tracking.charts.susceptibility_charts`` logs under ``prefix``
    (same preset and fields: x = K, y = chi or V)."""
    return (
        Chart(keys.chart_key(prefix, keys.CHI_CHART), {"x": "K", "y": "chi"}, chi_title),
        Chart(keys.chart_key(prefix, keys.V_CHART), {"x": "K", "y": "V"}, value_title),
    )


DEFAULT_LAYOUT: tuple[SectionLayout, ...] = (
    SectionLayout(
        name="Batch size: recommendation",
        scalars=keys.RECOMMENDATION_SCALARS,
        pinned=True,
    ),
    SectionLayout(
        name="Batch size: memory ceiling",
        scalars=keys.BATCH_FINDER_SCALARS,
        tables=(keys.BATCH_FINDER_PROBES,),
    ),
    SectionLayout(
        name="Batch size: susceptibility monitor",
        lines=(
            Line(
                keys.SUSCEPTIBILITY_K_C, keys.SUSCEPTIBILITY_STEP, "K_c over training", log_y=True
            ),
            Line(keys.SUSCEPTIBILITY_KAPPA, keys.SUSCEPTIBILITY_STEP, "kappa (peak sharpness)"),
            Line(
                keys.SUSCEPTIBILITY_TAU_INT, keys.SUSCEPTIBILITY_STEP, "tau_int (autocorrelation)"
            ),
            Line(keys.GNS_B_SIMPLE, keys.GNS_STEP, "gradient noise scale B_simple", log_y=True),
        ),
        charts=curve_charts(
            keys.SUSCEPTIBILITY_PREFIX,
            "chi(K) = |d log V / d log K|",
            "V(K): variance of block means",
        ),
        x_axis=keys.SUSCEPTIBILITY_STEP,
    ),
    SectionLayout(
        name="Batch size: probe",
        scalars=(keys.PROBE_K_C,),
        charts=curve_charts(keys.PROBE_PREFIX, "probe: chi(B)", "probe: metric against batch size"),
        tables=(keys.PROBE_TABLE,),
    ),
    SectionLayout(
        name="Batch size: sweep",
        scalars=(keys.SWEEP_K_C,),
        charts=curve_charts(keys.SWEEP_PREFIX, "sweep: chi(B)", "sweep: metric against batch size"),
        tables=(keys.SWEEP_TABLE,),
    ),
)


def dashboard_layout(
    layout: Sequence[SectionLayout] = DEFAULT_LAYOUT, *, preset: str | None = None
) -> tuple[SectionLayout, ...]:
    """``layout``, with each section's chi/V chart pair replaced by one ``<prefix>/chart``
    panel on the custom ``preset`` when one is given (``log_susceptibility_charts(preset=...)``
    logs that key instead of the two built-in charts)."""
    if not preset:
        return tuple(layout)
    out = []
    for section in layout:
        prefixes = dict.fromkeys(c.key.split("/", 1)[0] for c in section.charts)
        charts = tuple(
            Chart(
                keys.chart_key(p, keys.CUSTOM_PRESET_CHART),
                dict(CUSTOM_PRESET_FIELDS),
                f"{p}: chi and V against scale",
                preset=preset,
            )
            for p in prefixes
        )
        out.append(replace(section, charts=charts))
    return tuple(out)


def _stable_id(*parts: str) -> str:
    """An 11-character panel id that is the same on every build (W&B ids are random)."""
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:11]


def _import_workspaces() -> tuple[Any, Any]:
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
    except ImportError as exc:
        raise WorkspacesMissingError(
            "the dashboard needs wandb-workspaces: pip install 'wandb-batchsize[workspaces]'"
            f" ({exc})"
        ) from exc
    return ws, wr


def _panels(section: SectionLayout, wr: Any) -> list[Any]:
    panels: list[tuple[str, Any]] = []
    for key in section.scalars:
        panels.append((key, wr.ScalarChart(metric=key, title=key)))
    for line in section.lines:
        panels.append(
            (
                line.y,
                wr.LinePlot(
                    x=line.x,
                    y=[line.y],
                    title=line.title or line.y,
                    title_x=line.x,
                    log_y=True if line.log_y else None,
                ),
            )
        )
    for chart in section.charts:
        query = {
            "id": {},
            "name": {},
            "_defaultColorIndex": {},
            "summaryTable": {"tableKey": chart.table},
        }
        panels.append(
            (
                chart.key,
                wr.CustomChart(
                    query=query,
                    chart_name=chart.preset,
                    chart_fields=dict(chart.fields),
                    chart_strings={"title": chart.title or chart.key},
                ),
            )
        )
    for key in section.tables:
        panels.append((key, wr.WeavePanelSummaryTable(table_name=key)))
    for key, panel in panels:
        panel._id = _stable_id(section.name, type(panel).__name__, key)
    return [panel for _, panel in panels]


def build_workspace(
    entity: str,
    project: str,
    *,
    name: str = DEFAULT_NAME,
    layout: Sequence[SectionLayout] = DEFAULT_LAYOUT,
    preset: str | None = None,
    auto_panels: bool = False,
    pinned_columns: Sequence[str] = PINNED_COLUMNS,
) -> Any:
    """The ``wandb_workspaces.workspaces.Workspace`` for ``layout`` (no network).

    ``auto_panels=False`` keeps the workspace to these sections; True lets the
    W&B app also add its automatic panels for every other logged key.
    """
    if not entity or not project:
        raise ValueError(f"need an entity and a project, got {entity!r} and {project!r}")
    ws, wr = _import_workspaces()
    sections = [
        ws.Section(
            name=s.name,
            panels=_panels(s, wr),
            is_open=s.is_open,
            pinned=s.pinned,
            panel_settings=ws.SectionPanelSettings(x_axis=s.x_axis),
        )
        for s in dashboard_layout(layout, preset=preset)
    ]
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name,
        sections=sections,
        runset_settings=ws.RunsetSettings(pinned_columns=list(pinned_columns)),
        auto_generate_panels=auto_panels,
    )


def workspace_json(workspace: Any) -> dict[str, Any]:
    """The view ``workspace.save()`` would upsert, as JSON-ready data (no network).

    ``{"entity", "project", "displayName", "name", "id", "spec"}``; ``spec`` is
    exactly the view spec W&B stores (``spec.model_dump_json(by_alias=True,
    exclude_none=True)`` in ``wandb_workspaces``). ``name`` and ``id`` are empty
    until W&B assigns them on save. ``wandb_workspaces.workspaces.internal.View
    .model_validate(data)`` reads it back.
    """
    return workspace._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


@dataclass(frozen=True)
class Credentials:
    """Where a W&B API key was found, if anywhere (the key itself is never kept)."""

    source: str | None
    base_url: str = DEFAULT_BASE_URL

    def __bool__(self) -> bool:
        return self.source is not None


def find_credentials(environ: Mapping[str, str] | None = None) -> Credentials:
    """Look for W&B credentials where ``wandb.Api()`` does, with no network call and
    no login prompt: ``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE``, then a netrc
    entry for the host of ``WANDB_BASE_URL`` (file ``$NETRC``, else ``~/.netrc``
    or ``~/_netrc``)."""
    env = os.environ if environ is None else environ
    base_url = env.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        if env.get(var):
            return Credentials(var, base_url)
    path = _netrc_path(env)
    if path is not None and _netrc_has_host(path, base_url):
        return Credentials(str(path), base_url)
    return Credentials(None, base_url)


def _netrc_path(env: Mapping[str, str]) -> Path | None:
    if env.get("NETRC"):
        return Path(env["NETRC"]).expanduser()
    for name in ("~/.netrc", "~/_netrc"):
        path = Path(name).expanduser()
        if path.exists():
            return path
    return None


def _netrc_has_host(path: Path, base_url: str) -> bool:
    host = urlsplit(base_url).netloc
    try:
        creds = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(creds and creds[2])


def save_workspace(workspace: Any) -> str:
    """Save ``workspace`` as a new view in W&B and return its URL (needs an account)."""
    workspace.save()
    try:
        return str(workspace.url)
    except Exception:  # noqa: BLE001 - saved; only the URL could not be formed
        return f"{workspace.entity}/{workspace.project} (view {workspace._internal_name})"
