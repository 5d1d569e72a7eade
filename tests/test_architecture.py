"""The layout docs/architecture.md describes, checked on the source itself."""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wandb_batchsize"
FRAMEWORKS = {"torch", "tensorflow", "keras", "lightning", "pytorch_lightning", "transformers"}
FRAMEWORK_HOMES = ("backends", "integrations")
# demo/ holds the example training programs a sweep runs (a user's script, shipped)
EXAMPLE_PROGRAMS = ("demo",)
MAX_LINES = 450


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_frameworks_are_imported_only_in_backends_and_integrations():
    offenders = {}
    for path in _package_files():
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in FRAMEWORK_HOMES + EXAMPLE_PROGRAMS:
            continue
        found = _imported_roots(path) & FRAMEWORKS
        if found:
            offenders[str(relative)] = sorted(found)
    assert offenders == {}


def test_no_package_file_is_longer_than_the_limit():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in _package_files()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


@pytest.mark.parametrize(
    ("old", "name"),
    [
        ("noise_scale_torch", "GradientNoiseScaleMonitor"),
        ("gns_lightning", "GradientNoiseScaleCallback"),
        ("gns_transformers", "GradientNoiseScaleCallback"),
    ],
)
def test_old_module_names_still_work_and_say_where_to_go(old, name):
    import sys

    import wandb_batchsize as wbs

    sys.modules.pop(f"wandb_batchsize.integrations.{old}", None)
    vars(wbs.integrations).pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = getattr(wbs.integrations, old)  # reachable as an attribute (issue 14, item 14)
    new = importlib.import_module(f"wandb_batchsize.integrations.{old.split('_')[-1]}")
    assert getattr(module, name) is getattr(new, name)
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_framework_packages_expose_their_callbacks():
    import wandb_batchsize as wbs

    assert wbs.integrations.torch.SusceptibilityMonitor is wbs.SusceptibilityMonitor
    assert wbs.integrations.lightning.SusceptibilityCallback.__module__.endswith(
        "lightning.susceptibility"
    )
    assert wbs.integrations.transformers.GradientNoiseScaleCallback.__module__.endswith(
        "transformers.noise_scale"
    )
