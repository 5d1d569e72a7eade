"""The framework-free math of the critical-batch measurement, on synthetic S(B) with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wandb_batchsize.critical import CriticalBatchResult, saturating_lr
from wandb_batchsize.critical.fit import (
    bootstrap_b_crit,
    fit_lr_max,
    fit_steps,
    geometric_grid,
    knee_bracketed,
    predict_lr,
)
from wandb_batchsize.critical.rules import grid_warnings, optimizer_kind_of

S_MIN, B_NOISE = 40.0, 96.0
GRID = [8, 16, 32, 64, 128, 256, 512, 1024]


def steps_table(noise: float, repeats: int, seed: int, grid=GRID) -> dict[int, list[float]]:
    """S(B) = S_min (1 + B_noise / B), times log-normal noise of ``noise`` (sd of log S)."""
    rng = np.random.default_rng(seed)
    return {
        b: list(S_MIN * (1 + B_NOISE / b) * np.exp(rng.normal(0, noise, repeats))) for b in grid
    }


def test_fit_recovers_s_min_e_min_exactly_without_noise():
    B = np.array(GRID, float)
    fit = fit_steps(B, S_MIN * (1 + B_NOISE / B))
    assert fit.S_min == pytest.approx(S_MIN, rel=1e-6)
    assert fit.E_min == pytest.approx(S_MIN * B_NOISE, rel=1e-6)
    assert fit.B_crit == pytest.approx(B_NOISE, rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_fit_with_noise_lands_near_and_the_interval_covers(seed):
    table = steps_table(0.1, 3, seed)
    B = sorted(table)
    fit = fit_steps(B, [np.median(table[b]) for b in B])
    assert fit.S_min == pytest.approx(S_MIN, rel=0.25)
    assert fit.E_min == pytest.approx(S_MIN * B_NOISE, rel=0.3)
    low, high = bootstrap_b_crit(table, n_boot=300, seed=seed)
    assert low < fit.B_crit < high
    assert low > 0.5 * B_NOISE and high < 2 * B_NOISE


def test_interval_from_residuals_with_one_repeat_covers_most_of_the_time():
    covered = 0
    for seed in range(20):
        table = steps_table(0.08, 1, 100 + seed)
        low, high = bootstrap_b_crit(table, n_boot=100, seed=seed, level=0.9)
        covered += low <= B_NOISE <= high
    assert covered >= 13  # nominal 90 %; residual bootstrap on 8 points is a bit narrow


def test_no_saturation_is_a_lower_bound_with_advice():
    grid = [8, 16, 32, 64]  # all far below B_noise = 96 * 20
    B = np.array(grid, float)
    S = 10 * (1 + 1920 / B)
    fit = fit_steps(B, S)
    status = knee_bracketed(B, S, fit.B_noise)
    assert status == "below"
    text = " ".join(grid_warnings(status, B, grid, "", fit.B_noise))
    assert "lower bound" in text and "max_batch_size=256" in text
    noisy = S * np.exp(np.random.default_rng(0).normal(0, 0.02, S.size))
    low, high = bootstrap_b_crit(dict(zip(grid, noisy[:, None], strict=True)), n_boot=100)
    assert high == math.inf and low > 64  # not bounded by a grid that stops at 64


def test_bracketed_and_all_saturated():
    B = np.array(GRID, float)
    assert knee_bracketed(B, S_MIN * (1 + B_NOISE / B), B_NOISE) == "bracketed"
    S = 50 * (1 + 2 / B)  # the knee at 2, below the grid
    fit = fit_steps(B, S)
    assert knee_bracketed(B, S, fit.B_noise) == "above"
    assert "reference_batch=1" in " ".join(grid_warnings("above", B, GRID, "", fit.B_noise))


def test_grid_and_bad_input():
    assert geometric_grid(8, 100) == [8, 16, 32, 64]
    with pytest.raises(ValueError, match="at least two sizes"):
        geometric_grid(8, 12)
    with pytest.raises(ValueError, match="two batch sizes"):
        fit_steps([8, 8], [10, 11])
    assert all(math.isnan(v) for v in bootstrap_b_crit({8: [3.0]}))


def test_saturating_rules_and_their_fit():
    assert saturating_lr(96, 1.0, 96) == pytest.approx(0.5)
    assert saturating_lr(1e9, 1.0, 96) == pytest.approx(1.0, rel=1e-6)
    assert saturating_lr(96, 0.01, 96, "adam") == pytest.approx(0.01)  # the surge peak
    assert saturating_lr(96 * 16, 0.01, 96, "adam") < saturating_lr(96 * 4, 0.01, 96, "adam")
    with pytest.raises(ValueError, match="sgd' or 'adam"):
        saturating_lr(8, 1, 1, "rmsprop")
    for kind in ("sgd", "adam"):
        best = {b: saturating_lr(b, 0.3, B_NOISE, kind) for b in GRID}
        assert fit_lr_max(best, B_NOISE, kind) == pytest.approx(0.3)
    best = {8: 0.1}
    assert predict_lr(32, best, "sgd") == pytest.approx(0.4)  # linear before B_noise is known
    assert predict_lr(32, best, "adam") == pytest.approx(0.2)  # sqrt
    exact = {b: saturating_lr(b, 0.3, B_NOISE) for b in (8, 16)}
    assert predict_lr(1024, exact, "sgd", B_NOISE) == pytest.approx(
        saturating_lr(1024, 0.3, B_NOISE)
    )


def test_optimizer_kind():
    assert optimizer_kind_of(None) == "sgd"
    assert optimizer_kind_of("AdamW") == "adam"
    assert optimizer_kind_of(type("SGD", (), {})) == "sgd"
    assert optimizer_kind_of(lambda p, lr: None, "adam") == "adam"
    with pytest.raises(ValueError):
        optimizer_kind_of(None, "lion")


def test_result_summary_and_lr_for():
    r = CriticalBatchResult(
        B_crit=96.0,
        interval=(70.0, 130.0),
        S_min=40.0,
        E_min=3840.0,
        B_noise=96.0,
        bracketed=False,
        best_lr={8: 0.02, 64: 0.13},
        steps={8: 520.0, 64: 100.0},
        lr_max=0.3,
        lr_B_noise=96.0,
        optimizer_kind="sgd",
        target=0.5,
        target_source="user",
        reference_batch=8,
        warnings=("the knee is not bracketed",),
    )
    assert r.lr_for(96) == pytest.approx(0.15)
    assert r.steps_for(96) == pytest.approx(80) and r.samples_for(96) == pytest.approx(7680)
    text = r.summary()
    assert "B_crit = 96" in text and "lower bound" in text and "warning:" in text
    with pytest.raises(AttributeError):
        r.B_crit = 1.0  # frozen


def test_the_grid_stops_after_two_sizes_without_gain():
    from wandb_batchsize.critical.runner import _saturated

    steps = {8: [100.0], 16: [52.0], 32: [50.0], 64: [30.0], 128: [29.0], 256: [28.0]}
    sizes = sorted(steps)
    assert _saturated(steps, sizes[:3]) == ""  # 32 barely gains on 16, but one size is not enough
    assert _saturated(steps, sizes[:4]) == ""  # 64 gains again: keep going
    assert _saturated(steps, sizes[:5]) == ""
    note = _saturated(steps, sizes)  # 128 and 256 both within 10 % of 64
    assert "past 64 need no fewer steps" in note and "128: 29, 256: 28" in note
