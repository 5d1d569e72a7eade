"""Sweep mode and schedule rescaling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wandb_batchsize.analysis import (
    Schedule,
    analyze_sweep,
    calculate_adjusted_epochs,
    scale_schedule,
)
from wandb_batchsize.analysis.sweep import fit_mccandlish

SIZES = np.array([16, 32, 64, 128, 256, 512, 1024], dtype=float)


def sigmoid_loss(B):
    # the loss rises sharply around B = 256 (log-scale midpoint)
    return 1.0 + 0.5 / (1.0 + np.exp(-4.0 * (np.log10(B) - np.log10(256))))


# ------------------------------------------------------------ aggregation
def test_repeats_are_aggregated():
    B = [32, 32, 32, 64, 64, 128, 256, 256]
    M = [1.0, 2.0, 3.0, 4.0, 6.0, 5.0, 7.0, 7.0]
    res = analyze_sweep(B, M, n_bootstrap=0)
    np.testing.assert_array_equal(res.batch_sizes, [32, 64, 128, 256])
    np.testing.assert_allclose(res.metric_mean, [2.0, 5.0, 5.0, 7.0])
    np.testing.assert_array_equal(res.counts, [3, 2, 1, 2])
    se = res.metric_se
    assert se[0] == pytest.approx(1.0 / math.sqrt(3))  # sd 1, 3 runs
    assert se[1] == pytest.approx(math.sqrt(2.0) / math.sqrt(2))
    assert np.isnan(se[2])  # a single run has no standard error
    assert se[3] == 0.0
    assert res.n_runs == 8


def test_unsorted_input_is_sorted():
    B = [256, 16, 64, 32, 128]
    res = analyze_sweep(B, sigmoid_loss(np.array(B, float)))
    np.testing.assert_array_equal(res.batch_sizes, [16, 32, 64, 128, 256])


@pytest.mark.parametrize(("sizes", "distinct"), [([32, 32, 64], 2), ([8, 16, 32, 8, 16, 32], 3)])
def test_fewer_than_four_distinct_sizes_raises(sizes, distinct):
    with pytest.raises(ValueError, match=f"need at least 4 distinct batch sizes, got {distinct}"):
        analyze_sweep(sizes, np.ones(len(sizes)))


def test_nan_metrics_dropped_and_counted():
    B = [16, 32, 64, 128, 256, 256]
    M = [1.0, 1.1, float("nan"), 1.3, 1.6, 1.5]
    with pytest.raises(ValueError, match="got 3"):
        analyze_sweep(B[:4], M[:4])  # 16, 32, 128 are left
    res = analyze_sweep(B, M, n_bootstrap=50)
    assert res.diagnostics["n_dropped"] == 1
    assert res.n_runs == 5
    with pytest.raises(ValueError, match=r"metrics\[2\]"):
        analyze_sweep(B, M, nan_policy="raise")


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="same length"):
        analyze_sweep([1, 2, 3, 4], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        analyze_sweep([0, 2, 3, 4], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="metric_kind"):
        analyze_sweep([1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0], metric_kind="accuracy")


# ------------------------------------------------------------ chi, K_c, kappa
def test_chi_peak_definitions():
    M = sigmoid_loss(SIZES)
    res = analyze_sweep(SIZES, M)
    chi = np.abs(np.gradient(M, np.log10(SIZES)))
    chi[0] = chi[-1] = 0.0
    np.testing.assert_allclose(res.chi_values, chi)
    assert res.K_c == 256
    assert res.kappa == pytest.approx(chi.max() / np.median(chi))
    alpha = np.polyfit(np.log10(SIZES), np.log10(M), 1)[0]
    assert res.alpha == pytest.approx(alpha)
    assert res.K_c_interval is None  # no repeats
    assert res.B_crit is None and res.S_min is None


def test_bootstrap_interval_with_repeats():
    rng = np.random.default_rng(0)
    B = np.repeat(SIZES, 4)
    M = sigmoid_loss(B) + 0.01 * rng.standard_normal(B.size)
    res = analyze_sweep(B, M, n_bootstrap=300, seed=1)
    lo, hi = res.K_c_interval
    assert lo <= res.K_c <= hi
    assert lo >= 128
    assert hi <= 512
    json.dumps(res.to_dict(), allow_nan=False)
    assert "K_c" in res.summary()


# ------------------------------------------------------------ McCandlish
def test_mccandlish_fit_recovers_known_parameters():
    rng = np.random.default_rng(2)
    s_min, b_noise = 2000.0, 300.0
    B = np.repeat(SIZES, 3)
    S = s_min * (1 + b_noise / B) * np.exp(0.03 * rng.standard_normal(B.size))
    res = analyze_sweep(B, S, metric_kind="steps_to_target", n_bootstrap=200)
    assert res.B_crit == pytest.approx(b_noise, rel=0.15)
    assert res.S_min == pytest.approx(s_min, rel=0.1)
    lo, hi = res.B_crit_interval
    assert lo < b_noise < hi
    assert "B_crit" in res.summary()
    json.dumps(res.to_dict(), allow_nan=False)


def test_mccandlish_from_samples_without_repeats():
    s_min, b_noise = 500.0, 100.0
    S = s_min * (1 + b_noise / SIZES)
    res = analyze_sweep(SIZES, S * SIZES, metric_kind="samples_to_target")
    assert res.B_crit == pytest.approx(b_noise, rel=1e-4)
    assert res.S_min == pytest.approx(s_min, rel=1e-4)
    assert res.diagnostics["B_crit_interval_method"] == "delta method on log B_noise"


def test_fit_mccandlish_exact_data():
    s_min, b_noise, _ = fit_mccandlish(SIZES, 100 * (1 + 64 / SIZES))
    assert (s_min, b_noise) == pytest.approx((100, 64), rel=1e-6)


# ------------------------------------------------------------ schedules
def test_calculate_adjusted_epochs_is_the_published_rule():
    assert calculate_adjusted_epochs(100, 256, 64) == 400
    assert calculate_adjusted_epochs(10, 256, 512) == 50  # floor of 50 epochs
    assert calculate_adjusted_epochs(90, 3, 2) == 135
    assert calculate_adjusted_epochs(101, 1, 2) == max(50, round(101 / 2))  # banker's rounding
    doc = calculate_adjusted_epochs.__doc__
    assert "neither" in doc and "16x" in doc


def test_scale_schedule_keeps_what_it_says():
    s = scale_schedule(10, 256, 64, keep="samples")
    assert isinstance(s, Schedule)
    assert (s.epochs, s.steps_factor, s.lr) == (10, 4.0, None)
    u = scale_schedule(10, 256, 64, keep="updates")
    assert (u.epochs, u.steps_factor) == (2.5, 1.0)
    c = scale_schedule(10, 256, 64, keep="critical", critical_batch=128)
    assert c.epochs == pytest.approx(10 * (1 + 64 / 128) / (1 + 256 / 128))
    assert "McCandlish" in c.reason


def test_scale_schedule_learning_rate_rules():
    assert scale_schedule(1, 256, 1024, reference_lr=0.1, lr_scaling="linear").lr == pytest.approx(
        0.4
    )
    assert scale_schedule(1, 256, 1024, reference_lr=0.1, lr_scaling="sqrt").lr == pytest.approx(
        0.2
    )
    assert scale_schedule(1, 256, 1024, reference_lr=0.1).lr == 0.1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"keep": "critical"}, "critical_batch"),
        ({"keep": "tokens"}, "keep"),
        ({"lr_scaling": "cubic", "reference_lr": 0.1}, "lr_scaling"),
        ({"lr_scaling": "linear"}, "reference_lr"),
    ],
)
def test_scale_schedule_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scale_schedule(10, 256, 64, **kwargs)
    with pytest.raises(ValueError, match="actual_batch"):
        scale_schedule(10, 256, 0)
