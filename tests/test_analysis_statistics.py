"""Honest statistics on synthetic data with known answers (spec, "Validation cases")."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from wandb_batchsize.analysis import analyze
from wandb_batchsize.analysis.curve import block_variances_many, curve_stats, scale_grid
from wandb_batchsize.analysis.gaussian_null import _simulate_full, _simulate_hybrid


def ar1(n: int, rho: float, seed: int) -> np.ndarray:
    e = np.random.default_rng(seed).standard_normal(n + 2000)
    return lfilter([1.0], [1.0, -rho], e)[2000:]


def iid(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


# ------------------------------------------------------------ false positives
def false_positive_run(n: int, seeds) -> dict:
    res = [analyze(iid(n, 10_000 + s), seed=s) for s in seeds]
    p = np.array([r.p_iid for r in res])
    return {
        "significant": float(np.mean([r.is_significant for r in res])),
        "p_below_05": float(np.mean(p < 0.05)),
        "iid_label": float(np.mean([r.regime == "iid" for r in res])),
        "mean_p": float(p.mean()),
    }


@pytest.mark.parametrize("n", [2000, 10_000])
def test_false_positive_rate_fast(n):
    out = false_positive_run(n, range(20))
    assert out["significant"] <= 0.05  # at most 1 of 20
    assert out["p_below_05"] <= 0.15  # 3 of 20: a smoke test, the slow test calibrates
    assert out["iid_label"] >= 0.95
    assert 0.3 < out["mean_p"] < 0.7  # p-values spread over (0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("n", [2000, 10_000])
def test_false_positive_rate_200_seeds(n):
    out = false_positive_run(n, range(200))
    assert out["significant"] <= 0.05
    assert 0.02 <= out["p_below_05"] <= 0.08  # calibrated: P(p < 0.05) ~ 0.05
    assert out["iid_label"] >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("dist", ["gauss", "exponential"])
def test_gaussian_null_calibrated_on_long_iid_series(dist):
    n = 60_000  # above PERMUTATION_MAX_N: the fast Gaussian null is used
    ps, sig = [], 0
    for s in range(200):
        rng = np.random.default_rng(20_000 + s)
        x = rng.standard_normal(n) if dist == "gauss" else rng.exponential(size=n)
        r = analyze(x, seed=s)
        assert r.diagnostics["null_method"] == "gaussian"
        ps.append(r.p_iid)
        sig += r.is_significant
    assert 0.02 <= np.mean(np.array(ps) < 0.05) <= 0.08
    assert sig / 200 <= 0.05


def test_hybrid_gaussian_null_matches_full_simulation():
    n = 30_000
    K = scale_grid(n)
    full = _simulate_full(n, K, 300, np.random.default_rng(1), "none")
    fast = _simulate_hybrid(n, K, 600, np.random.default_rng(2))
    for i, name in enumerate(("T", "kappa", "alpha")):
        qf = np.quantile(full[i], [0.5, 0.9])
        qh = np.quantile(fast[i], [0.5, 0.9])
        np.testing.assert_allclose(qh, qf, rtol=0.12, err_msg=name)


# ------------------------------------------------------------ alpha, regime
def test_iid_alpha_close_to_minus_one_at_1e5():
    res = analyze(iid(100_000, 1), n_permutations=0)
    assert abs(res.alpha + 1) < 0.1
    assert res.regime == "iid"


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_alpha_se_matches_monte_carlo_sd(rho):
    n = 4000
    alphas, ses = [], []
    for s in range(150):
        r = analyze(ar1(n, rho, s), n_permutations=0)
        alphas.append(r.alpha)
        ses.append(r.alpha_se)
    sd = np.std(alphas, ddof=1)
    assert np.median(ses) == pytest.approx(sd, rel=0.2)
    # the published OLS formula is several times too small
    r = analyze(ar1(n, rho, 0), n_permutations=0)
    assert r.diagnostics["alpha_se_ols"] < sd / 3


@pytest.mark.parametrize("rho", [0.5, 0.8, 0.95])
def test_ar1_regime_is_correlated(rho):
    res = analyze(ar1(20_000, rho, 3))
    assert res.regime in ("correlated", "weakly-correlated")
    assert res.p_iid < 0.01
    assert res.diagnostics["p_iid_ttest"] <= 1.0


def test_anti_correlated_series():
    res = analyze(ar1(20_000, -0.5, 4))
    assert res.regime == "anti-correlated"
    assert res.tau_int == pytest.approx(1 / 3, rel=0.2)


# ------------------------------------------------------------ tau_int, K_corr
@pytest.mark.parametrize(("rho", "n"), [(0.5, 100_000), (0.8, 100_000), (0.95, 200_000)])
def test_tau_int_within_20_percent(rho, n):
    true = (1 + rho) / (1 - rho)
    for seed in range(3):
        res = analyze(ar1(n, rho, seed), n_permutations=0)
        assert res.tau_int == pytest.approx(true, rel=0.2)
        assert res.ess == pytest.approx(n / res.tau_int)
        assert res.diagnostics["tau_int_converged"]


def test_iid_tau_int_is_one_and_k_corr_is_one():
    res = analyze(iid(50_000, 5), n_permutations=0)
    assert res.tau_int == pytest.approx(1.0, abs=0.1)
    assert res.K_corr == 1.0


def test_k_corr_stable_across_n():
    medians = []
    for n in (2000, 8000, 32_000):
        k = [analyze(ar1(n, 0.9, s), n_permutations=0).K_corr for s in range(25)]
        medians.append(np.median(k))
    assert max(medians) / min(medians) < 1.3, medians
    # and close to the exact AR(1) value (K V(K) reaches 90 % of its plateau at ~94)
    assert 94 / 1.3 < np.median(medians) < 94 * 1.3


# ------------------------------------------------------------ peaks, detrending
def test_sine_period_100_gives_k_c_near_period():
    # amplitude 2 (variance 2) in unit noise; at amplitude 1 the published K_c is in
    # range in ~93 % of seeds (the top of the grid is noisy).
    t = np.arange(10_000)
    for seed in range(10):
        rng = np.random.default_rng(seed)
        phase = rng.uniform(0, 2 * np.pi)
        x = 2 * np.sin(2 * np.pi * t / 100 + phase) + rng.standard_normal(t.size)
        res = analyze(x, n_permutations=99, seed=seed)
        assert 100 / 3 < res.K_c < 300
        assert res.is_significant


def test_linear_trend_removed_by_detrend():
    rng = np.random.default_rng(7)
    x = np.linspace(3.0, 1.0, 5000) + rng.standard_normal(5000)
    raw = analyze(x)
    assert raw.p_iid < 0.01  # the trend dominates V(K)
    flat = analyze(x, detrend="linear")
    assert flat.regime == "iid"
    assert flat.p_iid > 0.05
    assert flat.diagnostics["detrend"] == "linear"


def test_moving_average_detrend_on_a_falling_loss():
    rng = np.random.default_rng(8)
    t = np.arange(8000)
    x = 2.0 * np.exp(-t / 1500) + 0.3 * rng.standard_normal(t.size)
    assert analyze(x).p_iid < 0.01
    res = analyze(x, detrend=200)
    assert res.n == 8000 - 200 + 1
    assert res.p_iid > 0.05  # the surrogates get the same high-pass filter


def test_diff_detrend_turns_a_random_walk_into_iid_steps():
    x = np.cumsum(iid(5000, 9))
    assert analyze(x, n_permutations=0).regime == "correlated"
    res = analyze(x, detrend="diff")
    assert res.n == 4999
    assert res.regime == "iid"


# ------------------------------------------------------------ mechanics
def test_curve_only_mode():
    res = analyze(iid(3000, 1), n_permutations=0)
    assert np.isnan(res.p_iid)
    assert res.is_significant is False
    assert res.diagnostics["null_method"] == "none"
    assert 0 <= res.diagnostics["p_iid_ttest"] <= 1


def test_seeded_and_reproducible():
    x = ar1(3000, 0.3, 2)
    a, b = analyze(x, seed=5), analyze(x, seed=5)
    assert a.to_dict() == b.to_dict()
    assert analyze(x, seed=None).K_c == a.K_c


def test_sequential_stopping_only_when_clearly_not_significant():
    res = analyze(iid(5000, 11), seed=1)
    d = res.diagnostics
    if d["null_stopped_early"]:
        assert d["n_null"] < 199
        assert res.p_iid >= 10 / 199
    res = analyze(ar1(5000, 0.5, 1), seed=1)
    assert res.diagnostics["n_null"] == 199
    assert res.p_iid == pytest.approx(1 / 200)


def test_null_kappa_is_what_significance_is_judged_against():
    res = analyze(ar1(4000, 0.9, 6), seed=2)
    q95 = res.diagnostics["kappa_null_q95"]
    assert res.is_significant == (res.p_iid < 0.05 and res.kappa > q95)


def test_vectorised_curve_stats_equal_row_by_row():
    n = 1500
    K = scale_grid(n)
    Y = np.random.default_rng(3).standard_normal((6, n))
    V = block_variances_many(Y, K)
    many = curve_stats(K, V)
    for i in range(6):
        one = curve_stats(K, V[i])
        assert one.K_c[0] == many.K_c[i]
        assert one.kappa[0] == pytest.approx(many.kappa[i])
        assert one.alpha[0] == pytest.approx(many.alpha[i])
