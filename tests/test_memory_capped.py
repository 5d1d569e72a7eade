"""The real-OOM test: a child process whose address space is capped (RLIMIT_AS).

Each child builds the model, warms up, caps its address space after the build,
runs ``find_batch_size``, trains 20 steps at the size it returned, and then
finds the true maximum by an exhaustive scan that shares no code with the
search (doubling, exact bisection, re-check of the boundary). The child is
``benchmarks/memory_search.py child`` — the same harness the benchmark uses.
No OOM is simulated here: the allocators fail for real.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux features"
)


def _bench():
    spec = importlib.util.spec_from_file_location(
        "memory_search_bench", ROOT / "benchmarks" / "memory_search.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(report: dict) -> None:
    found, true_max = report["found"], report["true_max"]
    assert 100 <= true_max <= 400, report  # the regime the test is sized for
    assert abs(found - true_max) <= 0.03 * true_max, report
    assert report["ooms"] >= 1, report  # the ceiling was reached for real
    assert report["train_ok"] and report["train_steps"] == 20, report
    assert report["batch_size"] <= 0.9 * found, report


@pytest.mark.timeout(240)
def test_torch_search_finds_the_true_maximum_under_a_real_cap():
    report = _bench().run_child("torch", "ours", 64, train_steps=20, timeout=200)
    _check(report)
    assert report["probes"] < report["scan_trials"], report


@pytest.mark.timeout(240)
def test_keras_search_finds_the_true_maximum_under_a_real_cap():
    pytest.importorskip("tensorflow")
    report = _bench().run_child("keras", "ours", 80, train_steps=20, timeout=200)
    _check(report)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_search_without_readings_also_finds_the_maximum(framework):
    report = _bench().run_child(
        framework,
        "ours-noreadings",
        64 if framework == "torch" else 80,
        train_steps=20,
        timeout=600,
    )
    _check(report)
