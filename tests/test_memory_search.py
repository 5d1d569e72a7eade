"""The framework-free strategy, on a simulated memory budget (search logic only).

A simulated budget is fine for the search logic; the handling of real OOMs is
tested in test_memory_capped.py and test_memory_distributed.py.
"""

from __future__ import annotations

import random
import sys

import pytest

from wandb_batchsize.memory.meters import parse_bytes
from wandb_batchsize.memory.search import (
    CeilingSearch,
    ProbeOutcome,
    accumulation_for,
    apply_safety,
    fit_headroom,
    run_search,
)


def simulated(true_max, *, per=1 << 20, base=64 << 20, readings=True, bias=1.0, noise=0.0, seed=0):
    """A device whose step needs ``base + per * B`` bytes and fits up to ``true_max``."""
    rng = random.Random(seed)
    budget = base + per * (true_max + 0.5)
    calls: list[int] = []

    def probe(b: int) -> ProbeOutcome:
        calls.append(b)
        need = base + per * b
        if need > budget:
            return ProbeOutcome(False, error="simulated OOM")
        if not readings:
            return ProbeOutcome(True)
        peak = int(need * bias * (1 + rng.uniform(-noise, noise)))
        return ProbeOutcome(True, peak_bytes=peak, headroom_bytes=int(budget - peak))

    return probe, calls


@pytest.mark.parametrize("true_max", [2, 3, 7, 37, 100, 127, 257, 300, 399, 1000, 3000, 4095])
@pytest.mark.parametrize("readings", [True, False])
def test_found_within_tolerance_of_the_true_maximum(true_max, readings):
    probe, calls = simulated(true_max, readings=readings)
    out = run_search(probe, CeilingSearch(2, 4096, tolerance=0.02))
    assert out.max_fitting <= true_max < out.first_failing
    assert (true_max - out.max_fitting) <= 0.02 * true_max + 1e-9
    assert len(calls) == len(set(calls)), "a size was probed twice"
    assert out.stopped == "converged"


@pytest.mark.parametrize("true_max", [37, 127, 300, 1000])
def test_readings_need_fewer_probes_and_ooms_than_doubling(true_max):
    with_readings = run_search(simulated(true_max)[0], CeilingSearch(2, 4096))
    without = run_search(simulated(true_max, readings=False)[0], CeilingSearch(2, 4096))
    assert len(with_readings.probes) < len(without.probes)
    assert with_readings.oom_events <= 2
    assert with_readings.predicted is not None and without.predicted is None


@pytest.mark.parametrize("bias", [0.85, 0.95, 1.1, 1.25])
def test_biased_or_noisy_readings_still_converge(bias):
    for true_max in (50, 300, 2000):
        probe, _ = simulated(true_max, bias=bias, noise=0.03, seed=true_max)
        out = run_search(probe, CeilingSearch(2, 4096))
        assert out.max_fitting <= true_max < out.first_failing
        assert true_max - out.max_fitting <= 0.02 * true_max + 1e-9
        assert len(out.probes) <= 16


def test_tolerance_zero_bisects_to_the_exact_boundary():
    for true_max in (5, 300, 1234):
        out = run_search(simulated(true_max)[0], CeilingSearch(2, 4096, tolerance=0))
        assert (out.max_fitting, out.first_failing) == (true_max, true_max + 1)


def test_max_batch_size_fits():
    probe, calls = simulated(10_000)
    out = run_search(probe, CeilingSearch(2, 512))
    assert out.max_fitting == 512 and out.first_failing is None
    assert out.stopped == "max_batch_size fits" and max(calls) == 512


def test_min_batch_size_does_not_fit():
    out = run_search(simulated(1)[0], CeilingSearch(2, 512))
    assert out.max_fitting is None and out.first_failing == 2
    assert out.stopped == "min_batch_size does not fit"


def test_max_probes_stops_the_search():
    out = run_search(simulated(3000, readings=False)[0], CeilingSearch(2, 4096, max_probes=5))
    assert len(out.probes) == 5 and out.stopped == "max_probes reached"


def test_deterministic_given_the_outcomes():
    """Ranks fed the same (all-reduced) outcomes ask for the same sizes."""
    a = run_search(simulated(321, noise=0.02, seed=1)[0], CeilingSearch(2, 4096))
    b = run_search(simulated(321, noise=0.02, seed=1)[0], CeilingSearch(2, 4096))
    assert [p.batch_size for p in a.probes] == [p.batch_size for p in b.probes]


def test_probe_errors_propagate_unchanged():
    boom = ValueError("a bug in the data pipeline")

    def probe(b):
        if b > 8:
            raise boom
        return ProbeOutcome(True)

    with pytest.raises(ValueError) as info:
        run_search(probe, CeilingSearch(2, 4096))
    assert info.value is boom


def test_probe_records_carry_the_readings():
    out = run_search(simulated(100)[0], CeilingSearch(2, 4096))
    fitted = [p for p in out.probes if p.fitted]
    assert all(p.peak_bytes and p.seconds >= 0 and p.phase for p in fitted)
    assert {p.phase for p in out.probes} <= {"ramp", "predict", "verify", "bisect"}
    assert out.probes[0].as_dict()["batch_size"] == 2


def test_affine_fit_recovers_slope_and_ceiling():
    per, budget = 3_000_000, 1_000_000_000
    points = [(b, budget - (50_000_000 + per * b)) for b in (2, 16, 64, 128)]
    fit = fit_headroom(points)
    assert fit.slope == pytest.approx(per)
    assert fit.ceiling == pytest.approx((budget - 50_000_000) / per)
    assert fit_headroom([(4, 10), (4, 11)]) is None  # one distinct size
    assert fit_headroom([(4, 100), (8, 200)]) is None  # memory not growing


def test_invalid_arguments():
    with pytest.raises(ValueError, match="min_batch_size"):
        CeilingSearch(0, 10)
    with pytest.raises(ValueError, match="max_batch_size"):
        CeilingSearch(16, 8)
    with pytest.raises(ValueError, match="tolerance"):
        CeilingSearch(2, 8, tolerance=0.7)


def test_safety_factor_and_rounding():
    assert apply_safety(768, safety_factor=0.9, multiple_of=1) == 691  # the seed's example
    assert apply_safety(768, safety_factor=0.9, multiple_of=8) == 688
    assert apply_safety(768, safety_factor=0.9, multiple_of=32) == 672
    assert apply_safety(12, safety_factor=0.9, multiple_of=8) == 8
    assert apply_safety(7, safety_factor=0.9, multiple_of=8) == 6  # below one multiple
    assert apply_safety(2, safety_factor=0.5, multiple_of=8, min_batch_size=2) == 2
    assert apply_safety(4096, safety_factor=0.9, ceiling_found=False) == 4096
    with pytest.raises(ValueError):
        apply_safety(10, safety_factor=1.5)


@pytest.mark.parametrize(
    ("effective", "ceiling", "expected"),
    [(1024, 300, (256, 4)), (100, 300, (100, 1)), (300, 300, (300, 1)), (1000, 64, (50, 20))],
)
def test_accumulation_for(effective, ceiling, expected):
    micro, steps = accumulation_for(effective, ceiling)
    assert (micro, steps) == expected
    assert micro <= ceiling and micro * steps == effective


def test_accumulation_for_a_prime_effective_batch():
    micro, steps = accumulation_for(1021, 100)
    assert micro <= 100 and micro * steps >= 1021 and micro * steps - 1021 < steps
    with pytest.raises(ValueError, match="effective_batch"):
        accumulation_for(0, 10)


def test_parse_bytes():
    assert parse_bytes("24GiB") == 24 * 2**30
    assert parse_bytes("1.5 GB") == 1_500_000_000
    assert parse_bytes("800MiB") == 800 * 2**20
    assert parse_bytes(12345) == 12345
    assert parse_bytes(None) is None
    for bad in ("lots", "-1GiB", 0, "12 parsecs"):
        with pytest.raises(ValueError):
            parse_bytes(bad)


def test_importing_the_memory_package_imports_no_framework():
    import subprocess

    code = (
        "import sys, wandb_batchsize, wandb_batchsize.memory, wandb_batchsize.keras;"
        "print([m for m in ('torch', 'tensorflow', 'keras', 'wandb') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
