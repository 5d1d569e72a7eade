"""Published-parity curve, input validation and the result's JSON form."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from wandb_batchsize.analysis import BatchSusceptibility, SusceptibilityResult, analyze
from wandb_batchsize.analysis.curve import scale_grid


# ---------------------------------------------------------------- reference
def reference_curve(x, K_min=2, K_max=None, n_points=60, min_batches=10):
    """The published definitions, written plainly (reshape + var, np.gradient, OLS)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    k_lo = max(2, K_min)
    k_hi = n // min_batches if K_max is None else min(K_max, n // min_batches)
    if k_hi <= k_lo:
        k_hi = n // 2
    grid = np.unique(np.floor(np.geomspace(k_lo, k_hi, n_points)).astype(int))
    grid = np.clip(grid, k_lo, k_hi)
    V = np.array([x[: (n // k) * k].reshape(-1, k).mean(axis=1).var(ddof=1) for k in grid])
    valid = np.isfinite(V) & (V > 0)
    lk, lv = np.log10(grid[valid]), np.log10(V[valid])
    chi = np.full(len(grid), np.nan)
    chi[valid] = np.abs(np.gradient(lv, lk))
    masked = chi.copy()
    masked[:2] = np.nan
    masked[-1] = np.nan
    i = int(np.nanargmax(masked))
    kappa = masked[i] / np.nanmedian(chi)
    alpha = np.polyfit(lk, lv, 1)[0]
    return grid, V, chi, float(grid[i]), float(kappa), float(alpha)


def series(kind: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "iid":
        return rng.standard_normal(n)
    if kind == "loss":  # a falling, noisy, positive training-loss-like curve
        t = np.arange(n)
        return 2.3 * np.exp(-t / (n / 3)) + 0.1 + 0.05 * rng.standard_normal(n)
    if kind == "ar":
        e = rng.standard_normal(n)
        x = np.empty(n)
        x[0] = e[0]
        for i in range(1, n):
            x[i] = 0.7 * x[i - 1] + e[i]
        return x
    raise ValueError(kind)


# ---------------------------------------------------------------- grid
def test_grid_matches_the_spec_example():
    g = scale_grid(2000)
    assert len(g) == 47
    assert g[:16].tolist() == list(range(2, 18))
    assert g[16:19].tolist() == [19, 20, 22]
    assert g[-2:].tolist() == [184, 200]


def test_grid_caps_user_kmax_and_falls_back():
    assert scale_grid(1000, K_max=5000)[-1] == 100
    assert scale_grid(1000, K_max=50)[-1] == 50
    # K_max <= K_min -> N // 2
    assert scale_grid(100, K_min=20)[-1] == 50


# ---------------------------------------------------------------- parity
@pytest.mark.parametrize(
    ("kind", "n", "kwargs"),
    [
        ("iid", 2000, {}),
        ("iid", 3571, {}),  # not a multiple of anything
        ("loss", 5003, {}),
        ("ar", 1234, {"K_min": 3, "n_points": 30}),
        ("iid", 997, {"K_max": 40, "min_batches": 5}),
    ],
)
def test_published_parity(kind, n, kwargs):
    x = series(kind, n)
    grid, V, chi, K_c, kappa, alpha = reference_curve(x, **kwargs)
    res = analyze(x, n_permutations=0, **kwargs)
    np.testing.assert_array_equal(res.K_values, grid)
    np.testing.assert_allclose(res.V_values, V, rtol=1e-10)
    np.testing.assert_allclose(res.chi_values, chi, rtol=1e-8, atol=1e-10)
    assert res.K_c == K_c
    assert res.kappa == pytest.approx(kappa, rel=1e-8)
    assert res.alpha == pytest.approx(alpha, rel=1e-10)
    assert res.n == n


def test_parity_ols_standard_error_kept_in_diagnostics():
    x = series("iid", 2000)
    grid, V, *_ = reference_curve(x)
    lk, lv = np.log10(grid), np.log10(V)
    _, cov = np.polyfit(lk, lv, 1, cov="unscaled")
    resid = lv - np.polyval(np.polyfit(lk, lv, 1), lk)
    se_ols = np.sqrt(cov[0, 0] * (resid @ resid) / (len(lk) - 2))
    res = analyze(x, n_permutations=0)
    assert res.diagnostics["alpha_se_ols"] == pytest.approx(se_ols, rel=1e-8)
    # the honest standard error is several times larger (spec: about 5x)
    assert res.alpha_se > 3 * se_ols


# ---------------------------------------------------------------- degenerate
def test_constant_input_is_degenerate_with_a_warning():
    with pytest.warns(RuntimeWarning, match="degenerate"):
        res = analyze(np.full(500, 3.0))
    assert res.kappa == 1.0
    assert res.alpha == -1.0
    assert res.alpha_se == np.inf
    assert res.p_iid == 1.0
    assert not res.is_significant
    assert np.all(res.chi_values == 0)
    assert res.K_c == res.K_values[len(res.K_values) // 2]
    json.dumps(res.to_dict(), allow_nan=False)


def test_fewer_than_five_valid_points_is_degenerate():
    x = np.zeros(400)
    x[::100] = 1.0  # V(K) > 0 only where a block sees a spike differently
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze(x, n_points=4)
    assert res.diagnostics["degenerate"] is True


# ---------------------------------------------------------------- inputs
def test_nan_and_inf_dropped_and_counted():
    x = series("iid", 300)
    y = x.copy()
    y[[5, 17, 200]] = [np.nan, np.inf, -np.inf]
    res = analyze(y, n_permutations=0)
    ref = analyze(x[np.isfinite(y)], n_permutations=0)
    assert res.diagnostics["n_dropped"] == 3
    assert res.n == 297
    np.testing.assert_allclose(res.V_values, ref.V_values)


def test_nan_policy_raise_names_first_bad_index():
    y = series("iid", 300)
    y[42] = np.nan
    y[50] = np.inf
    with pytest.raises(ValueError, match=r"values\[42\]"):
        analyze(y, nan_policy="raise")


def test_too_few_values_says_given_and_needed():
    with pytest.raises(ValueError, match="need at least 20 finite values, got 7"):
        analyze(np.arange(7.0))
    y = np.full(30, np.nan)
    y[:12] = 1.0 + np.arange(12)
    with pytest.raises(ValueError, match=r"got 12 \(18 non-finite dropped\)"):
        analyze(y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"detrend": "cubic"}, "detrend"),
        ({"detrend": 1}, "window"),
        ({"nan_policy": "ignore"}, "nan_policy"),
        ({"n_permutations": -1}, "n_permutations"),
        ({"null": "bootstrap"}, "null"),
        ({"n_points": 1}, "n_points"),
    ],
)
def test_bad_parameters_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        analyze(series("iid", 100), **kwargs)


def test_two_dimensional_input_is_rejected():
    with pytest.raises(ValueError, match="1-D"):
        analyze(np.zeros((10, 10)))


# ---------------------------------------------------------------- classes / JSON
def test_batch_class_feed_matches_analyze():
    x = series("ar", 1500)
    b = BatchSusceptibility(n_permutations=19, seed=3)
    b.feed(x[:10]).feed(x[10:999])
    b.feed(float(x[999]))
    b.feed(x[1000:])
    assert b.n == 1500
    r1 = b.find_critical()
    r2 = analyze(x, n_permutations=19, seed=3)
    assert r1.to_dict() == r2.to_dict()


def test_to_dict_is_strict_json_and_round_trips():
    res = analyze(series("iid", 1000), n_permutations=0)  # p_iid is NaN
    d = res.to_dict()
    assert d["p_iid"] is None
    text = json.dumps(d, allow_nan=False)
    back = SusceptibilityResult.from_dict(json.loads(text))
    np.testing.assert_allclose(back.V_values, res.V_values)
    assert back.K_c == res.K_c
    assert np.isnan(back.p_iid)
    assert back.regime == res.regime


def test_summary_format():
    res = analyze(series("ar", 2000), n_permutations=99)
    text = res.summary()
    assert f"K_c         = {res.K_c:.0f}\n" in text
    assert f"kappa       = {res.kappa:.2f}" in text
    assert f"alpha       = {res.alpha:.3f} ± {res.alpha_se:.3f}" in text
    assert f"p_iid       = {res.p_iid:.4f}" in text
    assert "regime" in text and "significant" in text
    assert "tau_int" in text and "ess" in text and "K_corr" in text
    assert str(res) == text


def test_package_exports():
    import wandb_batchsize as wbs

    assert wbs.analyze is analyze
    assert wbs.SusceptibilityResult is SusceptibilityResult
    for name in ("StreamingSusceptibility", "analyze_sweep", "SweepResult", "Schedule"):
        assert getattr(wbs, name) is getattr(__import__("wandb_batchsize.analysis").analysis, name)


def test_analysis_imports_no_framework():
    import subprocess
    import sys

    code = (
        "import sys, wandb_batchsize.analysis as a; "
        "bad = [m for m in ('wandb', 'torch', 'tensorflow', 'keras', 'lightning') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
