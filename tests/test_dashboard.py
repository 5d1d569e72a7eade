"""The W&B workspace as code: what it shows, what W&B would store, the CLI around it.

Everything here is offline: the workspace is built with wandb-workspaces and
inspected as the JSON view that ``Workspace.save()`` would send. Saving for real
needs an account; only the no-account refusal and the error path are tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import fast_settings, run_dir_of

from wandb_batchsize.cli import main
from wandb_batchsize.tracking import keys
from wandb_batchsize.tracking import workspace as wsp

pytest.importorskip("wandb_workspaces")

# what the issue asks the dashboard to show, by kind of panel
REQUIRED_SCALARS = {
    "batch_finder/optimal_batch_size",
    "batch_finder/max_fitting",
    "batch_finder/model_params",
    "batch_finder/model_memory_mb",
    "recommendation/batch_size",
    "recommendation/lr",
    "recommendation/accumulation_steps",
    "sweep/K_c",
    "probe/K_c",
}
REQUIRED_LINES = {
    ("susceptibility/step", "susceptibility/K_c"),
    ("susceptibility/step", "susceptibility/kappa"),
    ("susceptibility/step", "susceptibility/tau_int"),
    ("gns/step", "gns/B_simple"),
}
REQUIRED_CHART_TABLES = {
    "susceptibility/chi_chart_table",
    "susceptibility/V_chart_table",
    "sweep/chi_chart_table",
    "probe/chi_chart_table",
}
REQUIRED_TABLES = {"batch_finder/probes", "sweep/table", "probe/table"}


def _panels(view: dict) -> list[tuple[str, dict]]:
    sections = view["spec"]["section"]["panelBankConfig"]["sections"]
    return [(s["name"], p) for s in sections for p in s["panels"]]


def _table_key(panel: dict) -> str:
    (run_sets,) = panel["config"]["userQuery"]["queryFields"]
    (summary,) = [f for f in run_sets["fields"] if f["name"] == "summaryTable"]
    return summary["args"][0]["value"]


def _weave_key(panel: dict) -> str:
    return panel["config"]["panel2Config"]["exp"]["fromOp"]["inputs"]["key"]["val"]


def _inventory(view: dict) -> dict[str, set]:
    out: dict[str, set] = {"scalar": set(), "line": set(), "chart": set(), "table": set()}
    for _, panel in _panels(view):
        kind, cfg = panel["viewType"], panel["config"]
        if kind == "Scalar Chart":
            out["scalar"].update(cfg["metrics"])
        elif kind == "Run History Line Plot":
            out["line"].update((cfg["xAxis"], m) for m in cfg["metrics"])
        elif kind == "Vega2":
            out["chart"].add(_table_key(panel))
        elif kind == "Weave":
            out["table"].add(_weave_key(panel))
        else:  # pragma: no cover - a panel type this test does not know
            raise AssertionError(f"unexpected panel type {kind}")
    return out


@pytest.fixture(scope="module")
def view() -> dict:
    return wsp.workspace_json(wsp.build_workspace("my-team", "my-project"))


def test_the_workspace_shows_every_batch_size_key(view):
    assert view["entity"] == "my-team" and view["project"] == "my-project"
    assert view["displayName"] == wsp.DEFAULT_NAME
    got = _inventory(view)
    assert got["scalar"] >= REQUIRED_SCALARS
    assert got["line"] >= REQUIRED_LINES
    assert got["chart"] >= REQUIRED_CHART_TABLES
    assert got["table"] >= REQUIRED_TABLES
    names = [s["name"] for s in view["spec"]["section"]["panelBankConfig"]["sections"]]
    assert any("memory" in n for n in names) and any("monitor" in n for n in names)
    assert any("sweep" in n for n in names)
    # the keys all come from the one module that names them
    constants = {v for k, v in vars(keys).items() if k.isupper() and isinstance(v, str)}
    for key in REQUIRED_SCALARS | REQUIRED_TABLES | {y for _, y in REQUIRED_LINES}:
        assert key in constants, key


def test_line_panels_use_the_step_metrics_and_charts_the_builtin_preset(view):
    for _, panel in _panels(view):
        cfg = panel["config"]
        if panel["viewType"] == "Run History Line Plot":
            assert cfg["xAxis"] in (keys.SUSCEPTIBILITY_STEP, keys.GNS_STEP)
            if cfg["metrics"] == [keys.SUSCEPTIBILITY_K_C]:
                assert cfg["yLogScale"] is True
        if panel["viewType"] == "Vega2":
            assert cfg["panelDefId"] == "wandb/line/v0"
            assert cfg["fieldSettings"]["x"] == "K"
            assert cfg["fieldSettings"]["y"] in ("chi", "V")
    pinned = view["spec"]["section"]["runSets"][0]["runFeed"]["columnPinned"]
    assert "config:batch_size" in pinned and "summary:recommendation/batch_size" in pinned
    settings = view["spec"]["section"]["settings"]
    assert settings["shouldAutoGeneratePanels"] is False


def test_the_json_is_what_wandb_workspaces_reads_back_and_is_reproducible(view):
    from wandb_workspaces.workspaces import Workspace, internal

    loaded = Workspace._from_model(internal.View.model_validate(view))
    assert wsp.workspace_json(loaded) == view
    assert [s.name for s in loaded.sections] == [s.name for s in wsp.DEFAULT_LAYOUT]
    # the same build gives byte-identical JSON (stable panel ids), so it can be diffed
    assert wsp.workspace_json(wsp.build_workspace("my-team", "my-project")) == view
    ids = [p["__id__"] for _, p in _panels(view)]
    assert len(ids) == len(set(ids))
    # the spec string W&B's upsert sends is the "spec" member
    spec_sent = loaded._to_model().spec.model_dump_json(by_alias=True, exclude_none=True)
    assert json.loads(spec_sent) == view["spec"]


def test_a_custom_preset_replaces_each_chart_pair_by_one_panel():
    view = wsp.workspace_json(wsp.build_workspace("e", "p", preset="my-team/susceptibility"))
    charts = [p for _, p in _panels(view) if p["viewType"] == "Vega2"]
    assert {_table_key(p) for p in charts} == {
        "susceptibility/chart_table",
        "probe/chart_table",
        "sweep/chart_table",
    }
    for panel in charts:
        assert panel["config"]["panelDefId"] == "my-team/susceptibility"
        assert set(panel["config"]["fieldSettings"]) == {"K", "V", "chi", "K_c", "is_K_c"}


def test_auto_panels_and_name_are_passed_on():
    view = wsp.workspace_json(
        wsp.build_workspace("e", "p", name="BS", auto_panels=True, layout=wsp.DEFAULT_LAYOUT[:1])
    )
    assert view["displayName"] == "BS"
    assert view["spec"]["section"]["settings"]["shouldAutoGeneratePanels"] is True
    assert len(view["spec"]["section"]["panelBankConfig"]["sections"]) == 1


def test_chart_panels_read_the_tables_the_logger_writes(wandb_env):
    """Log the charts through tracking.charts into a real offline run, then check that
    every dashboard chart panel has the chart's preset, fields and table key."""
    import wandb

    from wandb_batchsize.tracking.charts import log_susceptibility_charts
    from wandb_batchsize.tracking.offline import read_run
    from wandb_batchsize.tracking.run import WandbSink

    result = SimpleNamespace(
        K_values=[2, 4, 8, 16, 32],
        V_values=[1.0, 0.6, 0.3, 0.2, 0.15],
        chi_values=[0.5, 0.8, 1.1, 0.6, 0.4],
        K_c=8,
    )
    run = wandb.init(project="dash", settings=fast_settings())
    sink = WandbSink(run)
    for prefix in (keys.SUSCEPTIBILITY_PREFIX, keys.SWEEP_PREFIX, keys.PROBE_PREFIX):
        assert log_susceptibility_charts(sink, result, prefix=prefix)
    assert log_susceptibility_charts(sink, result, prefix="susceptibility", preset="me/susc")
    run.finish()
    logged = read_run(run_dir_of(run))
    logged_vis = logged.visualizations()

    for preset in (None, "me/susc"):
        view = wsp.workspace_json(wsp.build_workspace("e", "p", preset=preset))
        checked = 0
        for _, panel in _panels(view):
            if panel["viewType"] != "Vega2":
                continue
            table = _table_key(panel)
            chart = table[: -len(keys.TABLE_SUFFIX)]
            if chart not in logged_vis:
                assert preset and not chart.startswith("susceptibility/")
                continue
            spec = logged_vis[chart]["panel_config"]
            assert panel["config"]["panelDefId"] == spec["panelDefId"]
            assert panel["config"]["fieldSettings"] == spec["fieldSettings"]
            (run_sets,) = spec["userQuery"]["queryFields"]
            logged_tables = [f["args"][0]["value"] for f in run_sets["fields"] if f.get("args")]
            assert logged_tables == [table]
            assert table in logged.summary  # the table itself was logged under that key
            checked += 1
        assert checked >= (1 if preset else 6)


# -- credentials ------------------------------------------------------------------


def test_find_credentials(tmp_path):
    assert not wsp.find_credentials({"NETRC": str(tmp_path / "none")})
    assert wsp.find_credentials({"WANDB_API_KEY": "x" * 40}).source == "WANDB_API_KEY"
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    found = wsp.find_credentials({"NETRC": str(netrc)})
    assert found and found.source == str(netrc)
    other = wsp.find_credentials({"NETRC": str(netrc), "WANDB_BASE_URL": "https://wandb.corp"})
    assert not other and other.base_url == "https://wandb.corp"


# -- the command ------------------------------------------------------------------


@pytest.fixture
def no_account(wandb_env, tmp_path, monkeypatch):
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    return tmp_path


def test_dry_run_writes_the_view_json(no_account, capsys):
    out = no_account / "ws.json"
    assert main(["dashboard", "my-team/my-project", "--name", "BS", "--dry-run", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["displayName"] == "BS" and data["entity"] == "my-team"
    assert "5 sections" in capsys.readouterr().err
    assert main(["dashboard", "my-team/my-project", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"] == json.loads(out.read_text())["spec"]


@pytest.mark.parametrize("target", ["my-project", "a/b/c", "/p", "e/ "])
def test_a_bad_target_is_one_line_exit_2(no_account, capsys, target):
    assert main(["dashboard", target, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ENTITY/PROJECT" in err


def test_saving_without_an_account_says_so(no_account, capsys):
    assert main(["dashboard", "my-team/my-project"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and captured.out == ""
    assert "needs a W&B account" in err and "--dry-run" in err and "WANDB_API_KEY" in err


def test_save_prints_the_url_or_one_line_on_failure(no_account, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    saved = []

    def fake_save(workspace):
        saved.append(workspace)
        return "https://wandb.ai/my-team/my-project?nw=abc"

    monkeypatch.setattr(wsp, "save_workspace", fake_save)
    assert main(["dashboard", "my-team/my-project"]) == 0
    assert capsys.readouterr().out.strip() == "https://wandb.ai/my-team/my-project?nw=abc"
    assert saved[0].entity == "my-team" and saved[0].name == wsp.DEFAULT_NAME

    def failing_save(workspace):
        raise RuntimeError("permission denied\nfor entity my-team")

    monkeypatch.setattr(wsp, "save_workspace", failing_save)
    assert main(["dashboard", "my-team/my-project"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "RuntimeError: permission denied for entity" in err


def test_missing_wandb_workspaces_is_a_one_line_error(no_account, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb_workspaces", None)
    monkeypatch.setitem(sys.modules, "wandb_workspaces.workspaces", None)
    monkeypatch.setitem(sys.modules, "wandb_workspaces.reports.v2", None)
    assert main(["dashboard", "e/p", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "wandb-batchsize[workspaces]" in err


def test_importing_the_command_and_keys_stays_light():
    code = (
        "import sys, wandb_batchsize.cli.dashboard, wandb_batchsize.tracking.keys, "
        "wandb_batchsize.tracking.workspace;"
        "print(sorted(m for m in ('wandb', 'wandb_workspaces', 'torch', 'tensorflow') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_save_that_w_and_b_refuses_is_one_line_exit_1(no_account):
    """A real save attempt against a server that is not there (takes ~20 s of retries)."""
    env = {
        **os.environ,
        "WANDB_API_KEY": "k" * 40,
        "WANDB_BASE_URL": "http://127.0.0.1:9",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "wandb_batchsize", "dashboard", "e/p"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "W&B did not save the workspace" in proc.stderr
