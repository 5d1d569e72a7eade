"""recommend() with a measured critical batch, the rule order, the knee, and honest reasons.

Every input is a real result object: ``CriticalBatchResult`` (a frozen
dataclass built with known numbers), ``analyze_sweep`` / ``analyze`` /
``noise_scale`` on synthetic data, ``ProbeResult`` around a real sweep and a
``MemorySearchResult`` with real ``Probe`` records.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from wandb_batchsize import recommend
from wandb_batchsize.analysis.lr_rules import saturating_lr, surge_lr
from wandb_batchsize.analysis.noise_scale import noise_scale
from wandb_batchsize.analysis.susceptibility import analyze
from wandb_batchsize.analysis.sweep import analyze_sweep
from wandb_batchsize.critical.result import CriticalBatchResult
from wandb_batchsize.memory.result import MemorySearchResult
from wandb_batchsize.memory.search import Probe
from wandb_batchsize.probe.core import ProbeResult
from wandb_batchsize.recommendation.rules import TARGET_RULES


def critical(b_crit=1000.0, interval=(800.0, 1300.0), bracketed=True, kind="sgd", lr_max=0.4):
    """A measurement on S = 50 (1 + B_crit / B) with best lrs on the saturating rule."""
    sizes = (64, 128, 256, 512, 1024, 2048)
    best = {b: saturating_lr(b, lr_max, b_crit) if kind == "sgd" else surge_lr(b, lr_max, b_crit)
            for b in sizes}  # fmt: skip
    return CriticalBatchResult(
        B_crit=b_crit, interval=interval, S_min=50.0, E_min=50.0 * b_crit, B_noise=b_crit,
        bracketed=bracketed, best_lr=best, steps={b: 50 * (1 + b_crit / b) for b in sizes},
        lr_max=lr_max, lr_B_noise=b_crit, optimizer_kind=kind, target=0.1,
        target_source="reference", reference_batch=64,
    )  # fmt: skip


def failed_measurement():
    return CriticalBatchResult(
        B_crit=math.nan, interval=(math.nan, math.nan), S_min=math.nan, E_min=math.nan,
        B_noise=math.nan, bracketed=False, best_lr={}, steps={}, lr_max=math.nan,
        lr_B_noise=math.nan, optimizer_kind="sgd", target=0.1, target_source="user",
        reference_batch=64, warnings=("no batch size reached the target",),
    )  # fmt: skip


def memory(ceiling=4096, timed=True):
    sizes = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096) if timed else ()
    probes = tuple(Probe(batch_size=b, fitted=True, peak_bytes=None, seconds=0.02 + 1e-4 * b)
                   for b in sizes if b <= ceiling)  # fmt: skip
    return MemorySearchResult(
        batch_size=ceiling, max_fitting=ceiling, first_failing=None, probes=probes,
        model_params=10, model_memory_mb=0.1, device="cpu", config={},
    )  # fmt: skip


def steps_sweep(b_crit=600.0):
    """A steps-to-target sweep on S = 40 (1 + B_crit / B), three seeds, 5 % noise."""
    rng = np.random.default_rng(0)
    B = np.repeat([32, 64, 128, 256, 512, 1024, 2048, 4096], 3)
    S = 40 * (1 + b_crit / B) * np.exp(rng.normal(0, 0.05, B.size))
    return analyze_sweep(B, S, metric_kind="steps_to_target")


def loss_sweep(slope=1.0):
    """Final loss at a fixed budget: a sigmoid in log2 B centred at 512 (the knee)."""
    B = np.array([16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
    loss = 1 + 1 / (1 + np.exp(-slope * (np.log2(B) - 9)))
    return analyze_sweep(B, loss)


def gns(b_simple=300.0, inf=False):
    rng = np.random.default_rng(1)
    g2, tr = (0.0, 300.0) if inf else (1.0, b_simple)
    small = g2 + tr / 8 + rng.normal(0, 0.01, 200)
    big = g2 + tr / 64 + rng.normal(0, 0.01, 200)
    return noise_scale(small, big, 8, 64)


def susceptibility():
    return analyze(np.random.default_rng(2).normal(size=400), n_permutations=19)


def probe():
    return ProbeResult(records=(), sweep=loss_sweep(), metric="loss", budget="samples",
                       samples_per_size=4096, framework="torch")  # fmt: skip


def test_the_rule_table_is_ordered_as_documented():
    assert [name for name, _ in TARGET_RULES] == [
        "measured critical batch, knee bracketed",
        "sweep B_crit",
        "measured critical batch, lower bound",
        "below the sweep knee",
        "gradient noise scale alone",
    ]


@pytest.mark.parametrize(
    ("interval", "confidence"),
    [((800.0, 1300.0), "high"), ((500.0, 1500.0), "medium"), ((200.0, 5000.0), "low")],
)
def test_a_measured_critical_batch_decides_with_its_lr_rule(interval, confidence):
    c = critical(interval=interval)
    rec = recommend(2048, noise_scale=gns(), critical=c, log=False)
    assert rec.decided_by == "critical" and rec.confidence == confidence
    assert rec.batch_size == 1000 and rec.accumulation_steps == 1
    # the learning rate is the measurement's saturating rule at the chosen batch
    assert rec.learning_rate == pytest.approx(c.lr_for(1000)) == pytest.approx(0.2)
    assert rec.lr_scaling == "saturating" and rec.lr_rule.lr_max == 0.4
    assert "measured critical batch size B_crit = 1000" in rec.reason
    assert "McCandlish" in rec.reason and rec.signals["B_simple"]["used_for"] == "cross-check"
    assert "differs by a factor 3.3" in rec.reason
    assert rec.signals["critical_B_crit"]["used_for"] == "decided the target; learning rate"


def test_adam_measurement_gives_the_surge_rule_peaking_at_b_noise():
    c = critical(b_crit=512.0, interval=(400.0, 700.0), kind="adam", lr_max=3e-3)
    rec = recommend(4096, critical=c, log=False)
    assert rec.batch_size == 512 and rec.lr_scaling == "surge"
    assert rec.learning_rate == pytest.approx(3e-3)  # the peak of the surge rule
    assert "Li et al. 2024" in rec.reason


def test_an_unbracketed_knee_is_a_lower_bound_and_a_sweep_b_crit_then_decides():
    low = critical(b_crit=400.0, bracketed=False)
    alone = recommend(4096, critical=low, log=False)
    assert alone.decided_by == "critical" and alone.confidence == "low"
    assert "a lower bound" in alone.reason and "extend max_batch_size" in alone.reason
    with_sweep = recommend(4096, critical=low, sweep=steps_sweep(600.0), log=False)
    assert with_sweep.decided_by == "sweep"
    assert with_sweep.signals["critical_B_crit"]["used_for"].startswith("cross-check")
    assert "B_crit >= 400 is a lower bound" in with_sweep.reason
    # a bracketed measurement decides over the sweep, which becomes a cross-check
    both = recommend(4096, critical=critical(), sweep=steps_sweep(600.0), log=False)
    assert both.decided_by == "critical" and both.signals["B_crit"]["used_for"] == "cross-check"
    assert (
        "The sweep B_crit = " in both.reason and "with the measured critical batch" in both.reason
    )


def test_an_unbracketed_b_crit_below_the_grid_is_an_upper_bound():
    # bracketed=False also covers "every size already past the knee" (B_crit < smallest)
    rec = recommend(4096, critical=critical(b_crit=30.0, bracketed=False), log=False)
    assert rec.confidence == "low" and "an upper bound" in rec.reason
    assert "lower bound" not in rec.reason
    crossed = recommend(4096, critical=critical(b_crit=30.0, bracketed=False),
                        sweep=steps_sweep(600.0), log=False)  # fmt: skip
    assert "B_crit <= 30 is an upper bound" in crossed.reason
    assert crossed.signals["critical_B_crit"]["used_for"] == "cross-check (upper bound)"


def test_a_measurement_that_reached_no_target_is_named_and_ignored():
    rec = recommend(256, critical=failed_measurement(), log=False)
    assert rec.decided_by == "memory" and rec.batch_size == 256
    assert rec.signals["critical_B_crit"]["used_for"] == "ignored: no usable B_crit"
    assert "no usable B_crit" in rec.reason
    with pytest.raises(ValueError, match="no usable batch size"):
        recommend(critical=failed_measurement(), log=False)


@pytest.mark.parametrize(("slope", "expected"), [(0.5, 32), (1.0, 128), (3.0, 128)])
def test_the_sweep_knee_gives_a_batch_below_it_on_the_flat_part(slope, expected):
    # chi by central differences on the doubling grid: chi(B) ~ s(x + k) - s(x - k) with
    # s the sigmoid, x = slope * log2(B / 512), k = slope. Relative to the peak at 512:
    # slope 1: 0.82 at 256, 0.48 at 128 -> 128; slope 0.5: 0.94, 0.80, 0.61, 0.43 at
    # 256..32 -> 32; slope 3: 0.55 at 256, 0.05 at 128 -> 128
    sw = loss_sweep(slope)
    assert sw.K_c == 512 and sw.B_crit is None
    rec = recommend(8192, sweep=sw, log=False)
    assert rec.decided_by == "sweep_knee" and rec.confidence == "low"
    assert rec.batch_size == expected < sw.K_c
    assert "sweep K_c = 512" in rec.reason and "not the critical batch" in rec.reason


def test_the_knee_caps_the_goodput_search():
    sw = loss_sweep(2.0)
    rec = recommend(memory(4096), sweep=sw, log=False)
    assert rec.decided_by == "goodput" and rec.batch_size <= 256
    assert "below the sweep knee" in rec.reason
    free = recommend(memory(4096), log=False)  # throughput alone picks the largest
    assert free.batch_size == 4096


def test_b_simple_alone_gives_a_saturating_lr_that_errs_low():
    rec = recommend(4096, noise_scale=gns(300.0), reference_batch=32, reference_lr=0.1, log=False)
    assert rec.decided_by == "noise_scale" and rec.confidence == "low"
    assert rec.batch_size == 304 and rec.lr_scaling == "saturating"
    lr_max = 0.1 * (1 + rec.lr_rule.B_noise / 32)
    assert rec.learning_rate == pytest.approx(saturating_lr(304, lr_max, rec.lr_rule.B_noise))
    assert rec.learning_rate < 0.1 * 304 / 32  # below linear scaling
    assert "err low" in rec.reason and "4-45x" in rec.reason


def test_linear_scaling_is_not_the_default_once_a_critical_batch_is_known():
    known = recommend(4096, sweep=steps_sweep(600.0), reference_batch=32, reference_lr=0.1,
                      log=False)  # fmt: skip
    assert known.lr_scaling == "saturating"
    asked = recommend(4096, sweep=steps_sweep(600.0), reference_batch=32, reference_lr=0.1,
                      lr_scaling="linear", log=False)  # fmt: skip
    assert asked.learning_rate == pytest.approx(0.1 * asked.batch_size / 32)
    assert f"the saturating rule would give {known.learning_rate:.3g}" in asked.reason
    unknown = recommend(4096, reference_batch=32, reference_lr=0.1, log=False)
    assert unknown.lr_scaling == "linear" and "no limit" in unknown.reason
    adam = recommend(4096, reference_batch=32, reference_lr=1e-3, optimizer="adam", log=False)
    assert adam.lr_scaling == "sqrt"
    with pytest.raises(ValueError, match="optimizer"):
        recommend(4096, optimizer="lion", log=False)
    with pytest.raises(ValueError, match="lr_scaling"):
        recommend(4096, lr_scaling="cubic", log=False)


def test_probe_k_c_is_context_only():
    rec = recommend(1024, probe=probe(), log=False)
    assert rec.decided_by == "memory" and rec.signals["probe_K_c"]["used_for"] == "context only"
    assert "probe K_c = 512" in rec.reason and "moves with the budget" in rec.reason
    with pytest.raises(ValueError, match="probe K_c is a knee"):
        recommend(probe=probe(), log=False)
    with pytest.raises(TypeError, match="CriticalBatchResult"):
        recommend(256, critical=42, log=False)


LABELS = {
    "ceiling": "memory ceiling",
    "critical_B_crit": "measured critical batch size",
    "B_crit": "sweep B_crit",
    "sweep_K_c": "sweep K_c",
    "B_simple": "B_simple",
    "susceptibility_K_c": "susceptibility K_c",
    "probe_K_c": "probe K_c",
}


def test_every_signal_given_is_named_with_what_was_done_with_it():
    options = {
        "memory": [None, 96, memory(4096)],
        "critical": [None, critical(), critical(b_crit=300.0, bracketed=False),
                     failed_measurement()],
        "sweep": [None, steps_sweep(), loss_sweep()],
        "noise_scale": [None, gns(), gns(inf=True)],
        "susceptibility": [None, susceptibility()],
        "probe": [None, probe()],
    }  # fmt: skip
    names = list(options)
    checked = raised = 0
    for combo in itertools.product(*options.values()):
        kwargs = dict(zip(names, combo, strict=True))
        expected = set()
        if kwargs["memory"] is not None:
            expected.add("ceiling")
        if kwargs["critical"] is not None:
            expected.add("critical_B_crit")
        if kwargs["sweep"] is not None:
            expected |= {"sweep_K_c"} | ({"B_crit"} if kwargs["sweep"].B_crit else set())
        for key, name in (("B_simple", "noise_scale"), ("susceptibility_K_c", "susceptibility"),
                          ("probe_K_c", "probe")):  # fmt: skip
            if kwargs[name] is not None:
                expected.add(key)
        usable = (
            kwargs["memory"] is not None
            or kwargs["sweep"] is not None
            or (kwargs["critical"] is not None and math.isfinite(kwargs["critical"].B_crit))
            or (kwargs["noise_scale"] is not None and math.isfinite(kwargs["noise_scale"].B_simple))
        )
        try:
            rec = recommend(**kwargs, reference_batch=32, reference_lr=0.1, log=False)
        except ValueError:
            assert not usable, kwargs
            raised += 1
            continue
        assert usable, kwargs
        assert set(rec.signals) == expected, kwargs
        for key in expected:
            assert LABELS[key] in rec.reason, (key, rec.reason)
            assert rec.signals[key]["used_for"], (key, rec.signals[key])
        checked += 1
    assert checked == 3 * 4 * 3 * 3 * 2 * 2 - raised and raised > 0


def test_measured_lr_rule_overrides_the_reference_and_the_optimizer_must_match():
    rec = recommend(2048, critical=critical(), reference_batch=32, reference_lr=0.05, log=False)
    assert (
        rec.learning_rate == pytest.approx(0.2) and "reference_lr = 0.05 was not used" in rec.reason
    )
    with pytest.raises(ValueError, match="measurement used 'sgd'"):
        recommend(2048, critical=critical(), optimizer="adam", log=False)


def test_a_measured_recommendation_is_logged(offline_run):
    from conftest import run_dir_of

    from wandb_batchsize.tracking.offline import read_run

    rec = recommend(memory(4096, timed=False), critical=critical(), noise_scale=gns())
    offline_run.finish()
    logged = read_run(run_dir_of(offline_run))
    assert logged.config["recommendation/batch_size"] == rec.batch_size == 1000
    assert logged.config["recommendation/decided_by"] == "critical"
    assert logged.config["recommendation/lr_scaling"] == "saturating"
    assert logged.config["recommendation/lr"] == pytest.approx(0.2)
    assert logged.summary["recommendation/signals/critical_B_crit"] == 1000.0
    assert logged.summary["recommendation/reason"] == rec.reason
