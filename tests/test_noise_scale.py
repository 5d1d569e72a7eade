"""The gradient-noise-scale estimator (numpy): unbiasedness, averaging, confidence band.

Ground truth: linear regression ``y = x.w* + sigma eps`` with Gaussian features
``x ~ N(0, diag(lam))`` and loss ``0.5 (x.w - y)^2``. At weights ``w = w* + delta``
the per-example gradient is ``g = x (x.delta - sigma eps)``, so (Isserlis)

    G         = Lam delta
    Sigma     = (delta' Lam delta + sigma^2) Lam + Lam delta delta' Lam
    tr(Sigma) = (delta' Lam delta + sigma^2) tr(Lam) + |Lam delta|^2
    |G|^2     = |Lam delta|^2
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from wandb_batchsize.analysis.noise_scale import (
    GradientNoiseScale,
    noise_scale,
    noise_scale_estimates,
)


def truth(lam: np.ndarray, delta: np.ndarray, sigma: float) -> tuple[float, float]:
    G = lam * delta
    grad_sq = float(G @ G)
    trace = float((delta @ (lam * delta) + sigma**2) * lam.sum() + grad_sq)
    return grad_sq, trace


def simulate(rng, steps: int, b: int, k: int, lam, delta, sigma):
    """Squared norms per step: mean over k micro-batches of b, and the k*b batch."""
    d = lam.size
    x = rng.normal(size=(steps, k, b, d)) * np.sqrt(lam)
    r = x @ delta - sigma * rng.normal(size=(steps, k, b))
    micro = (x * r[..., None]).mean(axis=2)  # (steps, k, d) micro-batch gradients
    small = (micro**2).sum(-1).mean(1)
    big = (micro.mean(1) ** 2).sum(-1)
    return small, big


LAM = np.linspace(0.5, 2.0, 10)
SIGMA = 1.0


def test_estimates_are_exact_on_expected_norms():
    grad_sq, trace = 0.7, 35.0
    for b_small, b_big in ((1, 2), (8, 32), (16, 4096)):
        g, s = noise_scale_estimates(
            grad_sq + trace / b_small, grad_sq + trace / b_big, b_small, b_big
        )
        assert g == pytest.approx(grad_sq) and s == pytest.approx(trace)


def test_linear_regression_within_15_percent_after_300_steps():
    rng = np.random.default_rng(7)
    delta = rng.normal(0, 0.3, LAM.size)
    grad_sq, trace = truth(LAM, delta, SIGMA)
    small, big = simulate(rng, 300, 8, 4, LAM, delta, SIGMA)
    result = noise_scale(small, big, 8, 32)
    assert result.grad_sq == pytest.approx(grad_sq, rel=0.15)
    assert result.trace_cov == pytest.approx(trace, rel=0.15)
    assert result.B_simple == pytest.approx(trace / grad_sq, rel=0.15)
    lo, hi = result.B_simple_interval
    assert lo < trace / grad_sq < hi and result.is_bounded
    assert result.n_steps == 300 and result.ess == pytest.approx(300)


@pytest.mark.parametrize("scale", [0.3, 0.05])
def test_band_covers_the_truth_at_its_level(scale):
    # 120 independent runs: a 95% band must contain the true B_simple about 95% of the time,
    # both when |G|^2 is well measured and when the band is often unbounded above.
    rng = np.random.default_rng(11)
    delta = rng.normal(0, scale, LAM.size)
    grad_sq, trace = truth(LAM, delta, SIGMA)
    b_true = trace / grad_sq
    hits = 0
    for _ in range(120):
        small, big = simulate(rng, 300, 8, 4, LAM, delta, SIGMA)
        lo, hi = noise_scale(small, big, 8, 32).B_simple_interval
        hits += lo <= b_true <= hi
    assert 0.88 <= hits / 120 <= 0.995


def test_ema_ratio_of_averages_not_average_of_ratios():
    # per-step |G|^2 estimates near zero make per-step ratios explode; the estimator
    # averages numerator and denominator separately.
    rng = np.random.default_rng(3)
    small = 1.0 + 64.0 / 4 + rng.normal(0, 2.0, 400)
    big = 1.0 + 64.0 / 64 + rng.normal(0, 0.3, 400)
    est = GradientNoiseScale(decay=None)
    est.update(small, big, 4, 64)
    r = est.result()
    g, s = noise_scale_estimates(small, big, 4, 64)
    assert r.B_simple == pytest.approx(s.mean() / g.mean())
    assert r.B_simple != pytest.approx(np.mean(s / g), rel=0.05)


def test_streaming_in_chunks_equals_one_update_and_ema_weights():
    rng = np.random.default_rng(5)
    small = 10 + rng.normal(0, 1, 500)
    big = 2 + rng.normal(0, 0.2, 500)
    one = GradientNoiseScale(decay=0.98)
    one.update(small, big, 8, 64)
    chunked = GradientNoiseScale(decay=0.98)
    for start in range(0, 500, 37):
        chunked.update(small[start : start + 37], big[start : start + 37], 8, 64)
    stepwise = GradientNoiseScale(decay=0.98)
    for s, b in zip(small, big, strict=True):
        stepwise.update(s, b, 8, 64)
    r1, r2, r3 = one.result(), chunked.result(), stepwise.result()
    assert r2.B_simple == pytest.approx(r1.B_simple, rel=1e-12)
    assert r3.B_simple == pytest.approx(r1.B_simple, rel=1e-12)
    assert r2.B_simple_interval == pytest.approx(r1.B_simple_interval, rel=1e-9)
    # the EMA's effective sample size tends to (1 + beta) / (1 - beta)
    assert r1.ess == pytest.approx(1.98 / 0.02, rel=0.01)
    # EMA weights: the average follows a change in the truth; equal weights do not
    shifted = GradientNoiseScale(decay=0.9)
    shifted.update(np.r_[small, 20 + small[:100]], np.r_[big, big[:100]], 8, 64)
    assert shifted.result().trace_cov > 1.5 * one.result().trace_cov


def test_serial_correlation_widens_the_band():
    rng = np.random.default_rng(2)
    n = 2000
    # AR(1) noise on the small norm (rho = 0.8): per-step estimates are correlated
    noise = np.zeros(n)
    for t in range(1, n):
        noise[t] = 0.8 * noise[t - 1] + rng.normal(0, 1.0)
    small = 1 + 100 / 8 + noise
    big = 1 + 100 / 64 + rng.normal(0, 0.05, n)
    correlated = noise_scale(small, big, 8, 64)
    independent = noise_scale(1 + 100 / 8 + rng.permutation(noise), big, 8, 64)
    assert correlated.tau > 5 > independent.tau
    assert correlated.interval_ratio > independent.interval_ratio


def test_unmeasurable_gradient_gives_an_unbounded_band():
    rng = np.random.default_rng(4)
    # |G|^2 = 0: pure noise
    small = 100 / 8 + rng.normal(0, 2.0, 300)
    big = 100 / 32 + rng.normal(0, 0.5, 300)
    r = noise_scale(small, big, 8, 32)
    assert math.isinf(r.B_simple_interval[1]) and not r.is_bounded
    assert "gns/B_simple_high" not in r.as_dict()
    assert "B_simple" in r.summary()


def test_input_errors_and_non_finite_values():
    with pytest.raises(ValueError, match="b_small < b_big"):
        noise_scale([1.0, 2.0], [1.0, 1.0], 32, 32)
    with pytest.raises(ValueError, match="no finite"):
        GradientNoiseScale().result()
    with pytest.raises(ValueError, match="decay"):
        GradientNoiseScale(decay=1.5)
    est = GradientNoiseScale(decay=None)
    est.update([10.0, np.nan, 11.0, np.inf], [2.0, 2.0, 2.1, 2.0], 8, 64)
    r = est.result()
    assert r.n_steps == 2 and r.n_dropped == 2
    one = GradientNoiseScale()
    one.update(10.0, 2.0, 8, 64)
    assert math.isnan(one.result().B_simple_interval[0])
